"""The EID dehazer ``f_theta``: a residual deepinv ``UNet`` with one fixed output mapping.

.. math::

    f_\\theta(y) = \\operatorname{clip}_{[0,1]}\\big(z + \\mathrm{UNet}_\\theta(z)\\big),\\qquad
    z = y \\ (\\texttt{hazy}),\\quad z = H^\\dagger(y) \\ (\\texttt{pinv})\\quad\\text{or}\\quad
    z = \\mathrm{DCP}(y) \\ (\\texttt{dcp})

With ``head: affine`` the UNet's output is a gain and an offset per channel instead, computed at its own
resolution and bilinearly up-sampled (:math:`\\uparrow`):

.. math::

    f_\\theta(y) = \\operatorname{clip}_{[0,1]}\\big((1 + \\uparrow a_\\theta(z))\\, z + \\uparrow b_\\theta(z)\\big),

the form of the scattering model's inverse :math:`x = z/t - A(1/t - 1)` with a smooth transmission and airlight.
Below full resolution (``unshuffle: 2`` or ``4``) it keeps the full-resolution detail of ``z`` and adds no
block pattern, which a residual put back by ``pixel_shuffle`` does. ``input: hazy`` is the paper's Fig. 3; ``input: pinv`` is the authors' code (``H^dagger`` of stage 1: the
CycleGAN's ``G_BA``, the scattering operator's physical inversion, or the exact ASM inverse);
``input: dcp`` starts from the dark channel prior's estimate, so that where DCP is already strong
(atmospheric haze) the network refines it instead of starting from the hazy image. With ``dcp`` the
UNet's output layer starts at zero, so training starts from ``f = clip(z)``, DCP's estimate itself, rather
than from it plus a random residual (measured on the natural benchmark; ``pinv``, the ``paper`` preset's
input, keeps the authors' random start until measured). The output mapping is a clamp to ``[0,1]`` whose backward pass
is the identity (straight-through, ``output: clamp_st``) so pixels that overshoot still get a
gradient; ``output: clamp`` is the plain clamp (zero gradient outside). There is no per-image
min-max normalisation (the authors' ``N01``), and the *same* forward is used in training and at test
time. With ``unshuffle: r > 1`` the UNet runs on the space-to-depth image (``pixel_unshuffle``:
``C r^2`` channels at ``H/r x W/r``) and its output is put back with ``pixel_shuffle``, so no layer
runs at full resolution (:math:`\\mathrm{UNet}` is replaced by :math:`S_r^{-1}\\circ\\mathrm{UNet}\\circ S_r`,
the residual unchanged). With ``norm: none`` and zero padding the dehazer is local: each output
pixel depends only on inputs within :attr:`DehazerNet.receptive_radius`, so tiles and video frames are
processed exactly as the whole image (:mod:`eid.inference.tiling`). The pseudo-inverse of a measured
``y`` is computed without an autograd graph; in the equivariance branch (``y`` carries a graph) it
keeps the graph so the gradient reaches ``T_g f(y)`` (frozen operator weights get no gradient
because they do not require one).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from deepinv.models import Reconstructor, UNet
from torch import nn

from eid.errors import EIDError
from eid.models.dehazer_config import DehazerConfig, unet_receptive_radius

__all__ = [
    "DehazerConfig",
    "DehazerNet",
    "count_parameters",
    "unet_receptive_radius",
]


def _norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        groups = max(g for g in range(1, 9) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    return nn.InstanceNorm2d(channels, affine=True)


def _swap_norms(module: nn.Module, kind: str) -> None:
    """Replace deepinv's BatchNorm2d layers by ``kind`` norms (same affine parameter count)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, _norm_layer(kind, child.num_features))
        else:
            _swap_norms(child, kind)


def clamp_straight_through(x: torch.Tensor) -> torch.Tensor:
    """``clip(x, 0, 1)`` in the forward pass, identity in the backward pass."""
    return x + (x.clamp(0.0, 1.0) - x).detach()


class DehazerNet(Reconstructor):
    """``f_theta(y, physics)``: residual UNet on the hazy image or on ``physics.A_dagger(y)``.

    :param DehazerConfig config: architecture; keyword arguments override its fields.

    >>> f = DehazerNet(DehazerConfig(channels=3, scales=2, width=4))
    >>> f(torch.rand(1, 3, 12, 10)).shape
    torch.Size([1, 3, 12, 10])
    """

    def __init__(self, config: DehazerConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        config = config or DehazerConfig()
        if overrides:
            config = DehazerConfig(**{**config.__dict__, **overrides})
        self.config = config
        unet_channels = config.channels * config.unshuffle**2
        affine = config.head == "affine"
        self.unet = UNet(
            in_channels=unet_channels,
            out_channels=2 * config.channels if affine else unet_channels,
            residual=not affine,
            circular_padding=config.circular_padding,
            batch_norm=config.norm != "none",
            scales=config.scales,
            channels_per_scale=[config.width * 2**k for k in range(config.scales)],
        )
        if config.norm in ("group", "instance"):
            _swap_norms(self.unet, config.norm)
        if config.input == "dcp":
            from eid.baselines.dcp import DarkChannelPrior

            self.dcp = DarkChannelPrior(
                grey_airlight=config.dcp_airlight == "grey",
                set_weight=config.dcp_set_weight,
                channels=config.channels,
            )
        if config.input == "dcp" or affine:  # start exactly at f = clip(z) and learn its correction
            nn.init.zeros_(self.unet.Conv_1x1.weight)
            nn.init.zeros_(self.unet.Conv_1x1.bias)

    @property
    def channels(self) -> int:
        """Image channels in and out (1 or 3), whatever the UNet sees after space-to-depth."""
        return self.config.channels

    @property
    def multiple(self) -> int:
        """The size multiple H and W need: ``r * 2^(scales-1)`` (space-to-depth, then pooling)."""
        return self.config.unshuffle * 2 ** (self.config.scales - 1)

    @property
    def working_scale(self) -> int:
        """Image pixels per pixel of the widest layers (the space-to-depth factor): a tile's memory goes with
        its area divided by the square of it, so the default tile grows with it (:mod:`eid.inference.tile_plan`)."""
        return self.config.unshuffle

    @property
    def receptive_radius(self) -> int | None:
        """``R``: each output pixel depends only on inputs within ``R`` pixels, or ``None`` if not local.

        Local means no per-image statistics (``norm: none``), zero padding (circular padding wraps
        around the image) and the hazy image as input (``H^dagger`` and DCP are not bounded here).
        """
        return self.network_receptive_radius if self.config.input == "hazy" else None

    @property
    def local_radius(self) -> int | None:
        """``R`` once the norm statistics are fixed and circular padding is unrolled (exact tiling of a
        group-norm model, :mod:`eid.inference.exact_tiling`); ``None`` unless the input is the hazy image."""
        return self.network_local_radius if self.config.input == "hazy" else None

    @property
    def network_receptive_radius(self) -> int | None:
        """:attr:`receptive_radius` of :meth:`from_network_input`, on its input ``z`` whatever that is."""
        c = self.config
        return None if c.norm != "none" or c.circular_padding else self.network_local_radius

    @property
    def network_local_radius(self) -> int:
        """:attr:`local_radius` of :meth:`from_network_input` on ``z``. Space-to-depth by ``r`` scales the UNet's
        radius by ``r`` and adds ``r - 1`` for the block grid."""
        c = self.config
        upsampling = c.head == "affine"  # the bilinear up-sampling reads one more UNet pixel
        return c.unshuffle * (unet_receptive_radius(c.scales) + upsampling) + c.unshuffle - 1

    @property
    def needs_physics(self) -> bool:
        """Whether ``forward`` needs the operator (``input: pinv``)."""
        return self.config.input == "pinv"

    def network_input(self, y: torch.Tensor, physics: Any = None) -> torch.Tensor:
        """``z = y``, ``H^dagger(y)`` or ``DCP(y)``; no autograd graph unless ``y`` carries one."""
        if self.config.input == "dcp":
            with torch.set_grad_enabled(y.requires_grad and torch.is_grad_enabled()):
                return self.dcp(y)
        if not self.needs_physics:
            return y
        if physics is None:
            raise EIDError(
                "this dehazer takes the pseudo-inverse H^dagger(y) as input; pass the operator (physics)"
            )
        if y.requires_grad:
            return physics.A_dagger(y)
        with torch.no_grad():
            return physics.A_dagger(y)

    def forward(self, y: torch.Tensor, physics: Any = None, **kwargs: Any) -> torch.Tensor:
        """Dehaze ``y`` (``(B,C,H,W)`` in ``[0,1]``, any size); returns ``(B,C,H,W)`` in ``[0,1]``."""
        return self.from_network_input(self.network_input(y, physics))

    def from_network_input(self, z: torch.Tensor) -> torch.Tensor:
        """``f`` given its network input ``z`` (from :meth:`network_input`), so ``H^dagger(y)`` can be reused."""
        if self.config.head == "affine":
            x = self._affine(z)
        else:
            x = self.unet(z) if self.config.unshuffle == 1 else self._unet_at_low_resolution(z)
        return clamp_straight_through(x) if self.config.output == "clamp_st" else x.clamp(0.0, 1.0)

    def _affine(self, z: torch.Tensor) -> torch.Tensor:
        """``(1 + a) z + b`` with ``(a, b)`` from the UNet at ``1/r`` resolution, bilinearly up-sampled; the
        field is padded like the convolutions (circularly or by replication), so borders stay consistent. Under
        autocast the field is up-sampled in ``z``'s precision: a bf16 gain and offset would round every output pixel
        to 8 bits of mantissa, and the CPU's bf16 up-sampling is the slower one."""
        r, (h, w), c = self.config.unshuffle, z.shape[-2:], self.config.channels
        mode = "circular" if self.config.circular_padding else "replicate"
        field = F.pad(self._unet_on_blocks(z).to(z.dtype), (1, 1, 1, 1), mode=mode)
        field = F.interpolate(field, scale_factor=r, mode="bilinear", align_corners=False)
        field = field[..., r : r + h, r : r + w]
        return z * (1 + field[:, :c]) + field[:, c:]

    def _unet_at_low_resolution(self, z: torch.Tensor) -> torch.Tensor:
        """``S_r^{-1}(UNet(S_r(z)))``, cropped back to ``z``'s size."""
        r, (h, w) = self.config.unshuffle, z.shape[-2:]
        return F.pixel_shuffle(self._unet_on_blocks(z), r)[..., :h, :w]

    def _unet_on_blocks(self, z: torch.Tensor) -> torch.Tensor:
        """``UNet(S_r(z))`` at ``1/r`` resolution; a side that is not a multiple of ``r`` is edge-padded first."""
        r, (h, w) = self.config.unshuffle, z.shape[-2:]
        return self.unet(F.pixel_unshuffle(F.pad(z, (0, -w % r, 0, -h % r), mode="replicate"), r))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
