"""Stage 1's recipe: :class:`OperatorConfig` and its sections (model, loss, optimiser, data).

The dataclass defaults are the ``fast`` preset (``eid/configs/operator/fast.yaml``), what ``eid train-operator``
uses unless told otherwise; the ``paper`` preset spells out the authors' recipe field by field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from eid.data.scale import parse_white
from eid.errors import EIDError


@dataclass
class OperatorModelConfig:
    """The operator and its network sizes. Defaults are the ``fast`` preset's: the scattering operator with
    small networks (the ``paper`` preset: the authors' CycleGAN, 11,378,179 + 2,764,737 parameters per G / D).

    ``kind``: ``cyclegan`` (``G_AB``/``G_BA``, the authors') or ``scattering`` (the physically structured
    :class:`eid.physics.ScatteringHaze`). CycleGAN only: ``blocks``, ``n_down`` and ``residual``
    (generators output ``clip(x + 2 tanh(h(x)))``, same parameters, instead of the authors' ``tanh(h(x))``,
    which is blind to the input's brightness and contrast; see :mod:`eid.models.generators`). Scattering
    only: ``scales`` of its UNets, ``transmission`` (``shared``/``per_channel``), ``airlight``
    (``global``/``veil``), ``t_min`` and ``residual_bound`` (0 = no residual ``r(x)``).
    """

    kind: str = "scattering"
    channels: int = 3
    width: int = 16
    blocks: int = 3
    n_down: int = 2
    residual: bool = True
    scales: int = 3
    transmission: str = "shared"
    airlight: str = "global"
    t_min: float = 0.05
    residual_bound: float = 0.0
    disc_width: int = 16
    disc_strides: tuple[int, ...] = (2, 2, 2, 1)
    #: ``instance`` (the authors') or ``none``, which lets D see haze's global change of brightness and
    #: contrast (:class:`eid.models.PatchGANDiscriminator`).
    disc_norm: str = "none"

    def __post_init__(self) -> None:
        from eid.physics.loading import OPERATOR_KINDS

        if self.kind not in OPERATOR_KINDS:
            raise EIDError(
                f"operator kind {self.kind!r} is not valid; use one of {', '.join(OPERATOR_KINDS)}"
            )


@dataclass
class OperatorLossConfig:
    """Weights of the generator loss terms (``lambda_param``, ``lambda_density``, ``density_min`` and
    ``lambda_dcp``, ``lambda_dcp_pair``: scattering operator only, see :mod:`eid.training.scattering`)."""

    lambda_cyc: float = 10.0
    lambda_id: float = 1.0
    lambda_param: float = 1.0
    lambda_density: float = 10.0
    density_min: float = 0.1
    lambda_dcp: float = 0.0
    lambda_dcp_pair: float = 0.0


@dataclass
class OperatorOptimConfig:
    """Adam for both G and D; LR constant until ``decay_start`` (fraction of the run), then linear to 0."""

    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    decay_start: float = 0.5


@dataclass
class OperatorDataConfig:
    """Crops: resize the shorter side to ``load_size`` (upstream 1.12 x crop), random ``crop``, flip.

    ``white`` is the stored value read as 1.0 (:func:`eid.data.io.read_image`); the dehazer and
    ``eid dehaze`` read images on the same scale as the operator learned.
    """

    crop: int = 64
    load_size: int | None = None
    flip: bool = True
    batch_size: int = 4
    white: str | float = "dtype"
    #: The clear folders stage 1 was trained on (recorded by ``eid train-operator``); stage 2 uses them
    #: for its adversarial prior.
    clear: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.white = parse_white(self.white)


@dataclass
class OperatorConfig:
    """Everything that defines a stage-1 run (saved in the checkpoint, ``config.yaml`` and ``operator.yaml``)."""

    #: The defaults of fields before they became the ``fast`` preset's (they were the authors'). A saved run config
    #: lacks only fields added after it was written, and was made with these values (:func:`eid.config.saved_config`).
    SAVED_DEFAULTS: ClassVar[dict[str, Any]] = {
        "model": {"kind": "cyclegan", "width": 64, "blocks": 9, "residual": False, "disc_width": 64, "disc_norm": "instance"},
        "loss": {"lambda_id": 5.0},
        "data": {"crop": 256, "load_size": 286, "batch_size": 1},
        "epochs": 200, "max_steps": None, "checkpoint_every_n_batches": 500, "checkpoint_every_n_epochs": 10, "log_every": 10,
    }  # fmt: skip
    #: Fields older runs saved that are machine settings now, not part of the recipe (dropped when such a run
    #: is loaded; :func:`eid.config.saved_config`).
    REMOVED_FIELDS: ClassVar[dict[str, str]] = {
        "winograd": "it is a machine setting now: fit_operator(..., winograd=...)",
        "channels_last": "it is a machine setting now: fit_operator(..., channels_last=...)",
    }

    model: OperatorModelConfig = field(default_factory=OperatorModelConfig)
    loss: OperatorLossConfig = field(default_factory=OperatorLossConfig)
    optim: OperatorOptimConfig = field(default_factory=OperatorOptimConfig)
    data: OperatorDataConfig = field(default_factory=OperatorDataConfig)
    buffer_size: int = 50
    epochs: int | None = None
    max_steps: int | None = 300
    seed: int = 0
    checkpoint_every_n_batches: int = 100
    checkpoint_every_n_epochs: int = 0
    log_every: int = 5
