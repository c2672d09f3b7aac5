"""Learned haze physics: the frozen CycleGAN generators of stage 1 as a deepinv ``Physics``.

``A(x) = G_AB(x)`` is the pseudo-hazing operator H (clear -> hazy) and ``A_dagger(y) = G_BA(y)`` its
pseudo-inverse H^dagger (hazy -> clear). Images are in ``[0, 1]`` outside and ``[-1, 1]`` inside the
generators; :func:`to_gan_range` / :func:`from_gan_range` are the only place in ``eid`` doing that conversion.

Saved as ``operator.safetensors`` (tensors only) + ``operator.yaml`` (the full stage-1 config) through
:mod:`eid.weights`; nothing is ever unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from deepinv.physics import Physics
from torch import nn

from eid.data.scale import White, parse_white
from eid.errors import EIDError
from eid.run_layout import OPERATOR as OPERATOR_STEM
from eid.weights import load_weights, save_weights

_PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".pkl", ".pickle", ".bin")


def to_gan_range(x: torch.Tensor) -> torch.Tensor:
    """``[0, 1] -> [-1, 1]``: ``2x - 1``.

    >>> to_gan_range(torch.tensor([0.0, 0.5, 1.0])).tolist()
    [-1.0, 0.0, 1.0]
    """
    return x * 2 - 1


def from_gan_range(z: torch.Tensor) -> torch.Tensor:
    """``[-1, 1] -> [0, 1]``: ``(z + 1) / 2``.

    >>> from_gan_range(torch.tensor([-1.0, 0.0, 1.0])).tolist()
    [0.0, 0.5, 1.0]
    """
    return (z + 1) / 2


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


def apply_generator(generator: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run a ``[-1,1]`` generator on ``x`` in ``[0,1]`` of any size (reflect-padded to its multiple, cropped back)."""
    padded, h, w = _pad_to_multiple(x, getattr(generator, "multiple", 1))
    return from_gan_range(generator(to_gan_range(padded)))[..., :h, :w]


def save_operator(
    run_dir: str | Path, g_ab: nn.Module, g_ba: nn.Module | None, config: dict[str, Any]
) -> tuple[Path, Path]:
    """Export generators as ``run_dir/operator.safetensors`` (keys ``g_ab.*``, ``g_ba.*``) + ``operator.yaml``.

    Used by stage-1 training on its live generators (which stay trainable) and by :meth:`LearnedHaze.save`.
    """
    state = {f"g_ab.{k}": v for k, v in g_ab.state_dict().items()}
    if g_ba is not None:
        state |= {f"g_ba.{k}": v for k, v in g_ba.state_dict().items()}
    return save_weights(Path(run_dir) / OPERATOR_STEM, state, config)


class LearnedHaze(Physics):
    r"""Frozen learned haze operator: :math:`A(x) = G_{AB}(x)`, :math:`A^\dagger(y) = G_{BA}(y)`.

    The generators are put in eval mode with ``requires_grad=False`` and stay so (``train()`` is a no-op),
    while gradients still flow through them to their input, as the stage-2 losses need.

    :param torch.nn.Module g_ab: clear -> hazy generator working in ``[-1, 1]``.
    :param torch.nn.Module | None g_ba: hazy -> clear generator (needed by :meth:`A_dagger` only).
    :param dict config: the stage-1 config the generators came from (saved with them).

    >>> from eid.models import ResnetGenerator
    >>> physics = LearnedHaze(ResnetGenerator(width=4, blocks=1), ResnetGenerator(width=4, blocks=1))
    >>> physics.A(torch.rand(1, 3, 10, 10)).shape
    torch.Size([1, 3, 10, 10])
    """

    def __init__(
        self,
        g_ab: nn.Module,
        g_ba: nn.Module | None = None,
        config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.g_ab = g_ab
        self.g_ba = g_ba
        self.config = dict(config or {})
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> LearnedHaze:
        """Stay in eval mode: the operator is frozen whatever the surrounding module does."""
        return super().train(False)

    def A(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Pseudo-hazing ``G_AB(x)`` for clear ``x`` in ``[0, 1]``."""
        return apply_generator(self.g_ab, x)

    def A_dagger(self, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Pseudo-inverse ``G_BA(y)`` for hazy ``y`` in ``[0, 1]``."""
        if self.g_ba is None:
            raise EIDError(
                "this operator has no G_BA (hazy -> clear) generator; export both from stage 1"
            )
        return apply_generator(self.g_ba, y)

    def save(self, run_dir: str | Path) -> tuple[Path, Path]:
        """Write ``run_dir/operator.safetensors`` and ``run_dir/operator.yaml`` atomically."""
        return save_operator(run_dir, self.g_ab, self.g_ba, self.config)

    @classmethod
    def load(
        cls, path: str | Path, device: str | torch.device = "cpu", winograd: bool = False
    ) -> LearnedHaze:
        """Load from a run folder, ``.../operator`` or ``.../operator.safetensors`` (never from a pickle);
        ``winograd`` builds the generators with Winograd layers (:class:`eid.models.ResnetGenerator`)."""
        stem = operator_stem(Path(path))
        state, config = load_weights(stem, device=device)
        return cls.from_state(state, config, str(stem.with_suffix(".safetensors")), winograd).to(
            device
        )

    @classmethod
    def from_state(
        cls,
        state: dict[str, torch.Tensor],
        config: dict[str, Any],
        where: str,
        winograd: bool = False,
    ) -> LearnedHaze:
        """Build the frozen operator from exported tensors and their config (``where`` names the file in errors)."""
        from eid.models.generators import ResnetGenerator

        model = config.get("model")
        if not isinstance(model, dict):
            raise EIDError(
                f"{where}: operator.yaml has no 'model' section; re-export the operator with eid"
            )
        channels = operator_channels(config)
        sizes = {k: int(model[k]) for k in ("width", "blocks", "n_down") if k in model}
        sizes["residual"] = bool(model.get("residual", False))
        generators = {}
        for name in ("g_ab", "g_ba"):
            sub = {k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(name + ".")}
            if not sub:
                generators[name] = None
                continue
            gen = ResnetGenerator(channels, channels, **sizes, winograd=winograd)
            try:
                gen.load_state_dict(sub)
            except RuntimeError as exc:
                raise EIDError(
                    f"{where}: weights do not match the config in operator.yaml; re-export the run"
                ) from exc
            generators[name] = gen
        if generators["g_ab"] is None:
            raise EIDError(f"{where}: no G_AB weights; not an eid operator file")
        return cls(generators["g_ab"], generators["g_ba"], config=config)


def read_operator_config(path: str | Path) -> dict[str, Any]:
    """The stage-1 config exported with an operator (``operator.yaml``), without loading its weights."""
    from eid.config import read_yaml

    yaml_path = operator_stem(Path(path)).with_suffix(".yaml")
    if not yaml_path.is_file():
        where = f"{path}: no such folder" if not Path(path).exists() else f"{yaml_path}: not found"
        raise EIDError(
            f"{where}; --operator must be a stage-1 run folder (eid train-operator --out)"
        )
    return read_yaml(yaml_path)


def operator_channels(config: dict[str, Any]) -> int:
    """The channel count of an operator's generators (``model.channels``; 3 when absent)."""
    return int(config.get("model", {}).get("channels", 3))


def operator_white(config: dict[str, Any]) -> White:
    """The read scale an operator was trained with (``data.white``; ``dtype`` for operators exported before it)."""
    return parse_white(config.get("data", {}).get("white", "dtype"))


def operator_stem(path: Path) -> Path:
    """The ``.../operator`` stem of a run folder or operator file; pickles are refused."""
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise EIDError(
            f"{path}: pickled checkpoints are refused (unsafe to load); use the operator.safetensors "
            "exported by `eid train-operator`"
        )
    if path.is_dir():
        return path / OPERATOR_STEM
    return path.with_suffix("") if path.suffix in (".safetensors", ".yaml") else path
