"""Stage 2's recipe: :class:`EIDConfig`, and the two rules that complete it from the stage-1 run (its read
scale, :func:`with_operator_white`; its clear folders for the adversarial prior, :func:`with_prior`)."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from eid.data.scale import parse_white
from eid.errors import EIDError
from eid.losses.metrics import LOSS_NORMS
from eid.models.dehazer_config import DehazerConfig
from eid.transforms import parse_group

SCHEDULES = ("cosine", "constant")
DENSITIES = ("fixed", "per_image")
HAZES = ("learned", "observed")
ANALYTIC_OPERATOR = "asm"
"""``operator`` of the analytic oracle (:class:`~eid.physics.ASMHaze`)."""
NO_OPERATOR = "none"
"""``operator`` of a run that needs none (``haze: observed``)."""
NAMED_OPERATORS = (ANALYTIC_OPERATOR, NO_OPERATOR)
"""The ``operator`` values that name no stage-1 run folder."""


@dataclass
class EIDConfig:
    """Everything that defines a stage-2 run (saved in ``dehazer.yaml`` and in every checkpoint). The defaults are
    the ``fast`` preset (``eid/configs/dehazer/fast.yaml``), what ``eid train`` uses unless told otherwise.

    :param str operator: ``asm`` (analytic oracle), the path of a stage-1 run folder, or ``none``: no operator, for
        ``haze: observed``, which needs none (a dehazer trained from hazy images alone, no clear images either).
    :param float asm_transmission: constant ``t`` of the ASM oracle when the data carry no per-image
        parameters (``None`` = read them from the batch).
    :param float asm_airlight: constant airlight of the ASM oracle (same rule).
    :param str group: transformation group (:func:`eid.transforms.build_group`).
    :param int n_trans: transformed copies per image in the equivariance term.
    :param float alpha: weight of the equivariance term (authors: 1).
    :param str loss_norm: ``l2`` or ``l1`` for both terms.
    :param bool detach: stop the gradient through the equivariance target ``T_g f(y)``.
    :param bool transform_physics: transform a per-image transmission map with the image.
    :param str density: ``fixed`` (the learned operator as it is) or ``per_image``: a scattering operator's
        transmission raised to a density fitted to each hazy image (:class:`~eid.physics.PerImageDensity`;
        needs ``model.input`` ``dcp`` or ``pinv``, the estimate the density is fitted to).
    :param tuple density_range: the smallest and largest per-image density searched.
    :param float density_spread: the equivariance term re-hazes ``T_g f(y)`` at each image's density times
        ``spread ** u``, ``u ~ U(-1, 1)`` (1 = the image's own density; a scattering operator only, ignored
        with a warning for others; :meth:`~eid.physics.PerImageDensity.at`).
    :param str haze: the operator of both stage-2 terms: ``learned`` (the stage-1 operator ``H``, with
        ``density``) or ``observed``: each hazy image's own transmission and airlight as the dark channel prior
        reads them (:class:`~eid.physics.ObservedHaze`, with ``model.dcp_airlight``'s airlight); ``H`` is then
        used only for its recorded clear set and ``H^dagger``.
    :param DehazerConfig model: architecture of ``f_theta``.
    :param float lr: Adam learning rate; ``weight_decay`` its L2 term (Adam, as the authors).
    :param str schedule: ``cosine`` (per step, to 0 at the end of the run) or ``constant``.
    :param int epochs: epochs when ``max_steps`` is ``None``; ``max_steps``: training batches.
    :param int batch_size: images per batch; ``crop``: random square crop side (0 = whole images).
    :param bool checkpoint_operator: recompute a learned operator's activations in the backward pass
        instead of storing them (less memory, one more operator forward per call).
    :param float adversarial_weight: weight of the adversarial prior (0 = off; needs clear images).
    :param float background_weight: weight of the background prior (0 = off; needs clear images): each output's
        ``background_quantile`` pulled to the clear images' median one (:class:`~eid.losses.BackgroundPrior`).
    :param tuple clear: the unpaired clear folders of the prior (:func:`with_prior` fills it in).
    :param float disc_lr: learning rate of its discriminator.
    :param str disc_norm: its normalisation, ``instance`` (the authors') or ``none``, which lets it see
        brightness and contrast and works on crops too small for instance norm
        (:class:`~eid.models.PatchGANDiscriminator`).
    :param int seed: seeds the data order, crops and the group's generator.
    :param int checkpoint_every_n_batches: refresh ``checkpoints/last.ckpt`` this often (and at epoch ends).
    :param int checkpoint_every_n_epochs: keep an ``epochNNNN.ckpt`` snapshot this often (0 = never).
    :param white: the stored value read as 1.0 (:func:`eid.data.io.read_image`); ``None`` = the learned
        operator's (its ``data.white``), else ``dtype``. ``eid dehaze`` reads images on this scale too.
    """

    #: The defaults of fields before they became the ``fast`` preset's. A saved run config lacks only fields added
    #: after it was written, and was made with these values (:func:`eid.config.saved_config`).
    SAVED_DEFAULTS: ClassVar[dict[str, Any]] = {
        "max_steps": None,
        "adversarial_weight": 0.0,
        "disc_norm": "instance",
    }
    #: Fields older runs saved that are machine settings now, not part of the recipe (dropped when such a run
    #: is loaded; :func:`eid.config.saved_config`).
    REMOVED_FIELDS: ClassVar[dict[str, str]] = {
        "winograd": "it is a machine setting now: fit_eid(..., winograd=...)",
    }

    operator: str = ANALYTIC_OPERATOR
    asm_transmission: float | None = None
    asm_airlight: float | None = None
    group: str = "rot90"
    n_trans: int = 1
    alpha: float = 1.0
    loss_norm: str = "l2"
    detach: bool = False
    transform_physics: bool = True
    density: str = "fixed"
    density_range: tuple[float, float] = (0.25, 4.0)
    density_spread: float = 1.0
    haze: str = "learned"
    model: DehazerConfig = field(default_factory=DehazerConfig)
    lr: float = 5e-4
    weight_decay: float = 0.0
    schedule: str = "cosine"
    epochs: int | None = 10
    max_steps: int | None = 300
    batch_size: int = 8
    crop: int = 64
    checkpoint_operator: bool = False
    adversarial_weight: float = 0.05
    background_weight: float = 0.0
    background_quantile: float = 0.1
    clear: tuple[str, ...] = ()
    disc_lr: float = 2e-4
    disc_norm: str = "none"
    seed: int = 0
    checkpoint_every_n_batches: int = 100
    checkpoint_every_n_epochs: int = 0
    white: str | float | None = None

    @property
    def uses_clear(self) -> bool:
        """Whether a prior from unpaired clear images is on (adversarial or background)."""
        return self.adversarial_weight > 0 or self.background_weight > 0

    @property
    def operator_run(self) -> str | None:
        """The stage-1 run folder ``operator`` names (``None`` for the analytic oracle and for no operator)."""
        return None if self.operator in NAMED_OPERATORS else self.operator

    def __post_init__(self) -> None:
        parse_group(self.group)
        if self.background_weight < 0 or not 0 < self.background_quantile < 1:
            raise EIDError(
                f"background_weight {self.background_weight} must be at least 0 and background_quantile "
                f"{self.background_quantile} within (0, 1); fix the config"
            )
        if self.white is not None:
            self.white = parse_white(self.white)
        if self.loss_norm not in LOSS_NORMS:
            raise EIDError(
                f"loss_norm {self.loss_norm!r} is not valid; use one of {', '.join(LOSS_NORMS)}"
            )
        if self.schedule not in SCHEDULES:
            raise EIDError(
                f"schedule {self.schedule!r} is not valid; use one of {', '.join(SCHEDULES)}"
            )
        if self.density_spread < 1:
            raise EIDError(
                f"density_spread {self.density_spread} must be at least 1 (1 = the image's own density)"
            )
        if self.density not in DENSITIES:
            raise EIDError(
                f"density {self.density!r} is not valid; use one of {', '.join(DENSITIES)}"
            )
        if self.haze not in HAZES:
            raise EIDError(f"haze {self.haze!r} is not valid; use one of {', '.join(HAZES)}")
        if self.haze == "observed" and (self.density != "fixed" or self.density_spread != 1):
            raise EIDError(
                "haze: observed reads each image's haze from it; density and density_spread apply to a "
                "learned operator, so set density: fixed and density_spread: 1 (or haze: learned)"
            )
        if self.operator == NO_OPERATOR and (self.haze != "observed" or self.model.input == "pinv"):
            raise EIDError(
                "no operator: only haze: observed (each image's own DCP maps) trains without one, with model.input "
                "hazy or dcp; give --operator (a stage-1 run folder, a shipped model or 'asm') or use such a preset "
                "(natural)"
            )
        if self.density == "per_image" and self.model.input == "hazy":
            raise EIDError(
                "density: per_image fits each image's density to the dehazer's input estimate; "
                "set model.input to dcp or pinv, or use density: fixed"
            )
        if self.model.norm == "batch" and self.batch_size < 8:
            raise EIDError(
                f"batch norm with batch_size {self.batch_size} gives train/test mismatch; use batch_size >= 8 "
                "or model.norm group/instance/none"
            )


def with_operator_white(cfg: EIDConfig) -> EIDConfig:
    """``cfg`` with its read scale set: by default the learned operator's, which learned the haze on that scale.

    An explicit scale that differs from the operator's is refused: ``H`` would see images it was not trained on.
    """
    from eid.physics.learned import operator_white, read_operator_config

    run = cfg.operator_run
    trained = "dtype" if run is None else operator_white(read_operator_config(run))
    if cfg.white is None:
        return dataclasses.replace(cfg, white=trained)
    if cfg.white != trained and run is not None:
        raise EIDError(
            f"white {cfg.white} differs from the operator's ({trained}), the scale it learned the haze on; "
            "drop --white or retrain the operator with it"
        )
    return cfg


def with_prior(
    cfg: EIDConfig, clear: list[str | Path] | None = None, prior: bool = True
) -> EIDConfig:
    """``cfg`` with its priors from clear images (adversarial, background) resolved: on (the preset's weights) with
    ``clear``, else with the clear folders recorded by stage 1, else off; ``prior=False`` turns them off.

    A recorded folder that has gone is an error naming it and both remedies, not a silent fallback; ``clear`` given to
    a config without a prior weight is a warning.
    """
    if prior and clear and not cfg.uses_clear:
        warnings.warn(
            "--clear is not used: the config's adversarial_weight and background_weight are 0; set one in a "
            "--config file to train with a prior",
            stacklevel=2,
        )
    off = dataclasses.replace(cfg, adversarial_weight=0.0, background_weight=0.0, clear=())
    if not prior or not cfg.uses_clear:
        return off
    if clear:
        return dataclasses.replace(cfg, clear=tuple(str(Path(c).resolve()) for c in clear))
    recorded: list[str] = []
    if cfg.operator_run is not None:
        from eid.physics.learned import read_operator_config

        recorded = list(read_operator_config(cfg.operator_run).get("data", {}).get("clear", []))
    for folder in recorded:
        if not _names_something(folder):
            raise EIDError(
                f"{folder}: the clear images stage 1 recorded for the adversarial prior are gone; pass --clear DIR "
                "with unpaired clear images, or --no-prior"
            )
    if not recorded:
        return off
    return dataclasses.replace(cfg, clear=tuple(recorded))


def _names_something(pattern: str) -> bool:
    """Whether a recorded folder (or glob) still names something on disk."""
    import glob

    return Path(pattern).exists() or bool(glob.glob(pattern))
