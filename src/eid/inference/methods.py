"""Dehazing methods: an image-to-image function plus what the runner must know about it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from eid.data.scale import White, parse_white
from eid.errors import EIDError
from eid.utils import resolve_device

__all__ = ["METHODS", "Method", "build_method"]

METHODS = ("eid", "cyclegan", "dcp", "dcp-grey")
#: the CycleGAN ResNet generator down-samples twice by 2
_GENERATOR_MULTIPLE = 4


@dataclass
class Method:
    """An image-to-image function on ``(B,C,H,W)`` tensors in ``[0,1]`` and what a runner must know.

    :param fn: the function (its parameters already on ``device``).
    :param str name: for messages.
    :param int multiple: H and W the function needs to be divisible by (16 for a 5-scale UNet).
    :param channels: the channel count it expects (1 or 3), or ``None`` for any.
    :param bool tileable: ``False`` for methods with a global estimate (the DCP airlight and its
        60-pixel guided filter) that must see the whole image (see ``prepare`` for one that need not).
    :param group: the transformation group the model was trained with (default group for TTA).
    :param white: the stored value its training images were read as 1.0 (:func:`eid.data.io.read_image`);
        files and integer arrays are read on the same scale.
    :param device: where ``fn`` computes.
    :param modules: the networks ``fn`` runs (searched for group/instance norms when tiling).
    :param receptive_radius: ``R`` such that each output pixel depends only on inputs within ``R``
        pixels, with no per-image statistics; tiling with ``overlap >= 2R`` is then exact
        (:mod:`eid.inference.tiling`). ``None``: unknown or not local (norms, circular padding).
    :param local_radius: ``R`` once whole-image norm statistics are fixed and circular padding is unrolled
        (:mod:`eid.inference.exact_tiling`): equal to ``receptive_radius`` for a local method, known also for
        a dehazer with group norms; ``None``: unknown (a DCP or pseudo-inverse input without ``prepare``).
    :param norm_fn: the function the runner calls instead of ``fn`` while it records and applies whole-image
        norm statistics, whose hooks act on ``modules``; ``None``: ``fn``. An ONNX session has no layers to
        hook, so ``eid dehaze --backend auto`` gives it its torch twin here
        (:func:`eid.inference.backends.with_torch_tiles`).
    :param working_scale: image pixels per pixel of the network's widest layers (its space-to-depth factor);
        the default tile side is ``DEFAULT_TILE`` times it (:mod:`eid.inference.tile_plan`).
    :param prepare: for a method with a whole-image estimate at its input, ``prepare(y, tile, norm, batch_size)``
        computes that input ``z`` for a batch with the memory of ``batch_size`` tiles, with norm statistics (if it has
        any) as the runner's tile norm: a ``dcp``-input dehazer's :func:`~eid.inference.dcp_tiles.tiled_dcp`, a CycleGAN ``pinv``-input one's
        :func:`~eid.inference.pinv_tiles.tiled_pinv`. The runner then tiles ``body`` on ``z``, and the radii above are
        ``body``'s. ``None``: the runner tiles ``fn`` on ``y``. An image the runner does not tile, or runs in one
        forward (at most two tiles a side), goes through ``fn``, whatever this is.
    :param body: the rest of the method, ``fn(y) = body(prepare(y))``; torch modules (norm statistics hook them).
    """

    fn: Callable[[Tensor], Tensor]
    name: str = "custom"
    multiple: int = 1
    channels: int | None = None
    tileable: bool = True
    group: str | None = None
    white: White = "dtype"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    modules: tuple[torch.nn.Module, ...] = ()
    receptive_radius: int | None = None
    local_radius: int | None = None
    norm_fn: Callable[[Tensor], Tensor] | None = None
    working_scale: int = 1
    prepare: Callable[[Tensor, int | None, str, int], Tensor] | None = None
    body: Callable[[Tensor], Tensor] | None = None

    def __call__(self, y: Tensor) -> Tensor:
        return self.fn(y)


def module_channels(module: Any) -> int | None:
    """Input channels of ``module``: its ``in_channels``/``channels`` attribute or its first conv's."""
    for attr in ("in_channels", "channels"):
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    if isinstance(module, torch.nn.Module):
        convs = (m for m in module.modules() if isinstance(m, torch.nn.Conv2d))
        first = next(convs, None)
        return first.in_channels if first is not None else None
    return None


def module_multiple(module: Any) -> int:
    """Size multiple ``module`` needs: its ``multiple`` attribute, or ``2**(scales-1)`` for a UNet config."""
    if isinstance(getattr(module, "multiple", None), int):
        return module.multiple
    scales = getattr(getattr(module, "config", None), "scales", None)
    return 2 ** (scales - 1) if isinstance(scales, int) else 1


def module_radius(module: Any, kind: str = "receptive_radius") -> int | None:
    """``module.receptive_radius`` (or ``module.local_radius``) if it declares one (see :class:`Method`)."""
    radius = getattr(module, kind, None)
    return radius if isinstance(radius, int) else None


def module_scale(module: Any) -> int:
    """``module.working_scale`` if it declares one (see :class:`Method`), else 1."""
    scale = getattr(module, "working_scale", None)
    return scale if isinstance(scale, int) and scale >= 1 else 1


def module_tiling(module: Any, physics: Any = None) -> dict[str, Any]:
    """The :class:`Method` fields by which a runner tiles ``module``: its radii and working scale, and for a dehazer
    whose input is a whole-image estimate, its two stages (:func:`module_stages`)."""
    return {
        "receptive_radius": module_radius(module),
        "local_radius": module_radius(module, "local_radius"),
        "working_scale": module_scale(module),
        **module_stages(module, physics),
    }


def module_stages(module: Any, physics: Any = None) -> dict[str, Any]:
    """The :class:`Method` fields that let the runner tile a dehazer whose input is a whole-image estimate: ``prepare``
    computes it tile by tile (the dark channel prior's, :mod:`eid.inference.dcp_tiles`, or the CycleGAN operator
    ``physics``'s ``G_BA``, :mod:`eid.inference.pinv_tiles`), ``body`` is the network on it, with its radii; ``{}`` for
    any other (a hazy input, or a pseudo-inverse that is not local)."""
    from eid.baselines.dcp import DarkChannelPrior
    from eid.inference.pinv_tiles import pinv_radius

    if not hasattr(module, "from_network_input"):
        return {}
    dcp = getattr(module, "dcp", None)
    if isinstance(dcp, DarkChannelPrior):
        from eid.inference.dcp_tiles import tiled_dcp

        prepare = partial(tiled_dcp, dcp)
    elif getattr(module, "needs_physics", False) and pinv_radius(physics) is not None:
        from eid.inference.pinv_tiles import tiled_pinv

        prepare = partial(tiled_pinv, physics)
    else:
        return {}
    return {
        "prepare": prepare,
        "body": module.from_network_input,
        "receptive_radius": module.network_receptive_radius,
        "local_radius": module.network_local_radius,
    }


def _load_operator(run_dir: str | Path, device: torch.device) -> Any:
    from eid.physics import load_operator

    return load_operator(run_dir, device)


def build_method(
    name: str,
    *,
    operator: str | Path | None = None,
    model: str | Path | None = None,
    device: str | torch.device = "auto",
) -> Method:
    """The dehazing method ``name`` as a :class:`Method` on ``device``.

    * ``dcp``: :class:`eid.baselines.dcp.DarkChannelPrior` with its default parameters; not tiled
      (the airlight is a whole-image estimate). ``dcp-grey``: the same with its airlight averaged to grey (the
      ``natural`` preset's start: on small images the picked pixel is often a coloured object).
    * ``cyclegan``: the operator-only baseline, ``H^dagger`` of the stage-1 run ``operator``: ``G_BA``
      of a CycleGAN (``LearnedHaze.A_dagger``; sizes padded to a multiple of 4; tiled exactly, its radius known) or
      the physical inversion of a scattering operator (``ScatteringHaze.A_dagger``).
    * ``eid``: the stage-2 dehazer of run ``model``, :math:`f_\\theta(y)` (with the pseudo-inverse
      operator recorded in the run, or ``operator`` if given).

    >>> build_method("dcp", device="cpu")(torch.rand(1, 3, 16, 16)).shape
    torch.Size([1, 3, 16, 16])
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if name in ("dcp", "dcp-grey"):
        from eid.baselines.dcp import DarkChannelPrior

        dcp = DarkChannelPrior(grey_airlight=name == "dcp-grey")
        return Method(dcp.to(dev).eval(), name=name, tileable=False, device=dev)
    if name == "cyclegan":
        if operator is None:
            raise EIDError(
                "--method cyclegan needs --operator RUN (a folder written by eid train-operator)"
            )
        from eid.inference.pinv_tiles import pinv_radius
        from eid.physics.learned import operator_white

        physics = _load_operator(operator, dev)
        return Method(
            physics.A_dagger,
            name="cyclegan",
            multiple=_GENERATOR_MULTIPLE,
            channels=module_channels(physics),
            white=operator_white(physics.config),
            device=dev,
            modules=(physics,),
            local_radius=pinv_radius(physics),  # a CycleGAN's G_BA is tiled exactly
        )
    if name == "eid":
        if model is None:
            raise EIDError(
                "--method eid needs --model RUN (a folder written by eid train); or use --method dcp"
            )
        from eid.models.dehazer_files import load_dehazer
        from eid.zoo import resolve_model

        net, physics, config = load_dehazer(
            resolve_model(model), dev
        )  # a run folder or a shipped model's name
        if operator is not None:
            physics = _load_operator(operator, dev)
        multiple = module_multiple(net)  # the UNet pools scales-1 times
        if physics is not None:
            multiple = math.lcm(multiple, _GENERATOR_MULTIPLE)
        group = config.get("group")  # the run's EIDConfig.group, the default TTA group
        return Method(
            lambda y: net(y, physics),
            name="eid",
            multiple=multiple,
            channels=net.config.channels,
            group=str(group) if group is not None else None,
            white=parse_white(config.get("white") or "dtype"),
            device=dev,
            modules=(net,) if physics is None else (net, physics),
            **module_tiling(net, physics),
        )
    raise EIDError(f"unknown method {name!r}; use one of {', '.join(METHODS)}")
