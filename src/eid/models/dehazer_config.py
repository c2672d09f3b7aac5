"""The dehazer's architecture as data: :class:`DehazerConfig` (the ``model`` section of a stage-2 config and of
``dehazer.yaml``) and the receptive radius of its UNet, which decides whether tiles can be exact."""

from __future__ import annotations

from dataclasses import dataclass

from eid.errors import EIDError

__all__ = [
    "DCP_AIRLIGHTS",
    "HEADS",
    "INPUTS",
    "NORMS",
    "OUTPUTS",
    "DehazerConfig",
    "unet_receptive_radius",
]

INPUTS = ("hazy", "pinv", "dcp")
DCP_AIRLIGHTS = ("colour", "grey")
NORMS = ("batch", "group", "instance", "none")
OUTPUTS = ("clamp_st", "clamp")
HEADS = ("residual", "affine")


@dataclass
class DehazerConfig:
    """Architecture of ``f_theta`` (saved in ``dehazer.yaml`` under ``model``).

    :param int channels: image channels (1 grey, 3 colour); set from the data.
    :param str input: ``hazy`` (``f(y) = g(y)``), ``pinv`` (``f(y) = g(H^dagger(y))``) or ``dcp``
        (``f(y) = g(DCP(y))``).
    :param str dcp_airlight: with ``input: dcp``, the dark channel prior's airlight: ``colour`` (its picked
        pixel's, He et al.) or ``grey`` (that colour's mean; :class:`~eid.baselines.dcp.DarkChannelPrior`).
    :param float dcp_set_weight: with ``input: dcp``, the weight of the training images' mean airlight in each
        image's (``A = w A_set + (1 - w) A_image``; stage 2 estimates ``A_set`` from its hazy images and saves it
        with the weights). 0: each image's own.
    :param int scales: UNet scales (5 = the authors' 34,527,171 parameters at width 64, RGB).
    :param int width: channels at the first scale, doubled at each scale (authors: 64).
    :param str norm: ``batch`` (needs batch >= 8), ``group`` (8 groups), ``instance`` or ``none``.
    :param str output: ``clamp_st`` (clamp, straight-through gradient) or ``clamp``.
    :param bool circular_padding: circular instead of zero padding in every 3x3 conv (authors: on).
    :param int unshuffle: space-to-depth factor ``r`` before the UNet (1: none; 2 or 4: the UNet runs
        at ``1/r`` resolution on ``C r^2`` channels, about ``r^2`` times fewer FLOPs at equal width).
    :param str head: how the UNet's output makes the image: ``residual`` (``x = z + UNet(z)``, the authors')
        or ``affine``: a gain and an offset per channel at the UNet's resolution, bilinearly up-sampled,
        ``x = (1 + a) z + b`` (the form of the scattering model's inverse; no block pattern from ``r``).
    """

    channels: int = 3
    input: str = "hazy"
    dcp_airlight: str = "colour"
    dcp_set_weight: float = 0.0
    scales: int = 3
    width: int = 16
    norm: str = "group"
    output: str = "clamp_st"
    circular_padding: bool = True
    unshuffle: int = 1
    head: str = "residual"

    def __post_init__(self) -> None:
        for name, valid in (
            ("input", INPUTS),
            ("dcp_airlight", DCP_AIRLIGHTS),
            ("norm", NORMS),
            ("output", OUTPUTS),
            ("head", HEADS),
        ):
            if getattr(self, name) not in valid:
                raise EIDError(
                    f"dehazer {name} {getattr(self, name)!r} is not valid; use one of {', '.join(valid)}"
                )
        if self.scales < 2 or self.width < 1 or self.channels not in (1, 3) or self.unshuffle < 1:
            raise EIDError(
                f"dehazer needs scales >= 2, width >= 1, 1 or 3 channels and unshuffle >= 1 (got {self.scales}, "
                f"{self.width}, {self.channels}, {self.unshuffle}); fix the model section of the config"
            )
        if not 0 <= self.dcp_set_weight <= 1 or (self.dcp_set_weight and self.input != "dcp"):
            raise EIDError(
                f"dehazer dcp_set_weight {self.dcp_set_weight} needs input: dcp and a value within [0, 1]; "
                "fix the model section of the config"
            )


def unet_receptive_radius(scales: int) -> int:
    """Receptive radius of deepinv's ``UNet`` with ``scales`` scales, in input pixels (an upper bound).

    At scale ``k`` (resolution ``2^-k``) a 3x3 conv adds ``2^k``, the 2x2 max-pool to scale ``k+1`` and the
    nearest 2x up-sampling back each at most ``2^k``. The deepest path has two convs per encoder scale,
    and per decoder scale a pool, an up-sampling, the up-conv and two convs:

    .. math:: R = \\sum_{k=0}^{S-1} 2\\cdot 2^k + \\sum_{k=0}^{S-2} 5\\cdot 2^k = 2(2^S-1) + 5(2^{S-1}-1)

    >>> unet_receptive_radius(3), unet_receptive_radius(5)
    (29, 137)
    """
    return 2 * (2**scales - 1) + 5 * (2 ** (scales - 1) - 1)
