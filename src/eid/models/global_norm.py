"""Whole-image statistics for group/instance norms during tiled inference.

``GroupNorm`` and ``InstanceNorm`` normalise with statistics of the image they see. Run tile by tile,
each tile is normalised with its own mean and variance, so the tiled output is not the whole-image
output: a dark tile is brightened, a hazy tile gets its contrast stretched. :class:`GlobalNormStatistics`
removes that difference at the cost of one extra forward:

1. *record*: run the network once on a reference image, the whole input (down-scaled when it is larger
   than the reference budget, :func:`eid.inference.norm_tiling.reference_image`), and keep, for every norm layer and every call of
   it, the per-sample mean and variance :math:`\\mu_{g}, \\sigma^2_{g}` of its input over each group ``g``
   (instance norm: one channel per group);
2. *apply*: run the tiles; every norm layer normalises with the recorded statistics
   :math:`(x - \\mu_g)/\\sqrt{\\sigma^2_g + \\epsilon}` (then its affine weights), i.e. as if it saw the whole
   image.

With the reference at full resolution the tiles reproduce the whole-image output up to the tile borders
(``tests/test_inference.py``). Down-scaled 1.9x / 2.8x (960 / 1440 px frames, 256 px tiles) the
reference still brings a trained CycleGAN ``G_BA`` to 33.7 / 30.2 dB PSNR from its untiled output,
against 14.0 / 12.7 dB with per-tile statistics (``benchmarks/bench_tile_norm.py``,
``docs/benchmarks/inference.md``). Calls are matched in order, so a network that calls a norm layer
several times per forward (test-time averaging over a group) gets the statistics of the same call of
the reference pass.

*Exact* statistics need no reference: :meth:`GlobalNormStatistics.measuring` accumulates, tile by tile,
the moments of one norm call's input weighted by the tiles' blending weights (a partition of unity that
is zero next to internal tile edges), with every earlier call already normalised by its exact statistics.
One pass per norm call, each stopped right after that call (:class:`StopForward`), gives the whole-image
statistics of every layer (:mod:`eid.inference.exact_tiling` drives the passes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eid.errors import EIDError

__all__ = ["GlobalNormStatistics", "StopForward", "WeightedMoments", "image_normalising_layers"]

_NORM_LAYERS = (nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


def image_normalising_layers(modules: Sequence[nn.Module]) -> list[nn.Module]:
    """Layers of ``modules`` whose output depends on whole-input statistics at inference.

    Group norms, and instance norms without running statistics (``track_running_stats=False``, the
    default, or in training mode). Batch norms in eval mode are pointwise and are not listed.
    """
    found: list[nn.Module] = []
    for module in modules:
        for layer in module.modules():
            # batch-norm-like: normalised by running statistics, not by the input's
            pointwise = getattr(layer, "track_running_stats", False) and not layer.training
            if isinstance(layer, _NORM_LAYERS) and not pointwise:
                found.append(layer)
    return list(dict.fromkeys(found))


@contextlib.contextmanager
def _pre_hooks(layers: list[nn.Module], hook: Callable[[nn.Module, tuple], None]) -> Iterator[None]:
    """Context in which ``hook(layer, inputs)`` runs before every call of each of ``layers``."""
    with contextlib.ExitStack() as stack:
        for layer in layers:
            stack.enter_context(layer.register_forward_pre_hook(hook))
        yield


def _groups(layer: nn.Module, channels: int) -> int:
    return layer.num_groups if isinstance(layer, nn.GroupNorm) else channels


def _group_moments(x: Tensor, groups: int) -> tuple[Tensor, Tensor]:
    """Per-sample, per-group mean and biased variance of ``x`` ``(N, C, ...)``, shapes ``(N, groups)``
    (constants: no autograd graph)."""
    flat = x.detach().float().reshape(x.shape[0], groups, -1)
    var, mean = torch.var_mean(flat, dim=-1, unbiased=False)
    return mean, var


def _normalise(layer: nn.Module, x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """``layer``'s output for input ``x`` with the given ``(1, groups)`` statistics: inference-mode batch norm
    (``F.batch_norm`` with these as running statistics), each group's values repeated over its channels."""
    per_group = x.shape[1] // mean.shape[-1]
    weight, bias = getattr(layer, "weight", None), getattr(layer, "bias", None)
    # batch_norm takes a bf16/fp16 input (autocast) with float32 parameters, but all parameters in one dtype
    dtype = x.dtype if weight is None else weight.dtype
    mean_c, var_c = (t[0].repeat_interleave(per_group).to(dtype) for t in (mean, var))
    return F.batch_norm(x, mean_c, var_c, weight, bias, training=False, eps=layer.eps)


class StopForward(Exception):
    """Raised by a measuring hook once it has seen the measured norm call: the rest of the forward is not needed."""


class WeightedMoments:
    """Weighted per-group mean and variance of one norm call's input, accumulated over tiles (float64).

    ``weight`` ``(N,1,h,w)`` is the tiles' blending weight at image resolution; a layer running at
    ``1/f`` of it gets the weight average-pooled by ``f``, which is again a partition of unity.
    """

    def __init__(self) -> None:
        self.layer: nn.Module | None = None
        self.weight: Tensor | None = None
        self.calls_seen = 0
        self._sums: Tensor | None = None  # (3, groups) on the layer's device: no sync per tile

    def start(self, weight: Tensor) -> None:
        """Before each forward: the weight ``(N,1,h,w)`` of its ``N`` tiles; norm calls are counted from here."""
        self.weight, self.calls_seen = weight, 0

    def add(self, layer: nn.Module, x: Tensor) -> None:
        """Add ``x`` ``(N,C,h,w)``, the input of ``layer`` for the tiles whose weight is :attr:`weight`."""
        assert self.weight is not None
        self.layer, (n, c, h, w) = layer, x.shape
        factor = self.weight.shape[-1] // w
        if factor * w != self.weight.shape[-1] or factor * h != self.weight.shape[-2]:
            raise EIDError(
                f"exact tile statistics need norm inputs on a grid dividing the tile (got {h}x{w} for a "
                f"{tuple(self.weight.shape[-2:])} tile); use --tile-norm global"
            )
        weight = F.avg_pool2d(self.weight, factor) if factor > 1 else self.weight
        groups = _groups(layer, c)
        values = x.detach().double().reshape(n, groups, -1, h * w)
        weight = weight.to(values.device).reshape(n, 1, 1, h * w)
        weighted = values * weight
        sums = torch.stack(
            [
                (weight.sum() * (c // groups)).expand(groups),
                weighted.sum((0, 2, 3)),
                (weighted * values).sum((0, 2, 3)),
            ]
        )
        self._sums = sums if self._sums is None else self._sums + sums

    def result(self) -> tuple[Tensor, Tensor]:
        """``(mean, variance)``, each ``(1, groups)`` float32, as :meth:`GlobalNormStatistics.recording` keeps them."""
        assert self._sums is not None, "no tile reached the measured norm call"
        count, total, squares = self._sums
        mean = total / count
        return mean[None].float(), (squares / count - mean**2).clamp_min(0.0)[None].float()


class GlobalNormStatistics:
    """Record norm statistics on a reference input, then normalise later inputs with them.

    :param modules: the networks of the method (their norm layers are found by
        :func:`image_normalising_layers`).

    >>> net = nn.Sequential(nn.Conv2d(1, 4, 1), nn.GroupNorm(2, 4))
    >>> stats = GlobalNormStatistics([net])
    >>> x = torch.rand(1, 1, 32, 32)
    >>> with stats.recording():
    ...     whole = net(x)
    >>> with stats.applying():
    ...     left = net(x[..., :16])
    >>> bool(torch.allclose(left, whole[..., :16], atol=1e-5))
    True
    """

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.layers = image_normalising_layers(modules)
        self._records: dict[nn.Module, list[tuple[Tensor, Tensor]]] = {}

    def __bool__(self) -> bool:
        return bool(self.layers)

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Context in which forwards record (and replace any earlier) statistics; outputs are unchanged."""
        self._records = {layer: [] for layer in self.layers}

        def record(layer: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            x = inputs[0]
            if x.shape[0] != 1:
                raise ValueError("record norm statistics on one reference image at a time")
            self._records[layer].append(_group_moments(x, _groups(layer, x.shape[1])))

        with _pre_hooks(self.layers, record):
            yield

    def clear(self) -> None:
        """Forget the recorded statistics (layers keep their own until :meth:`measuring` fills them)."""
        self._records = {layer: [] for layer in self.layers}

    def count_calls(self, forward: Callable[[], object]) -> int:
        """Norm calls made by ``forward()``."""
        calls = [0]

        def count(layer: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            calls[0] += 1

        with _pre_hooks(self.layers, count):
            forward()
        return calls[0]

    @contextlib.contextmanager
    def measuring(self, call: int) -> Iterator[WeightedMoments]:
        """Context in which the ``call``-th norm call of each forward adds its input to the yielded
        :class:`WeightedMoments`, then raises :class:`StopForward`. Call ``moments.start(weight)`` with the
        tiles' weight before each forward; on exit the moments become that call's statistics, appended to its layer's
        records. Use inside :meth:`applying` so that the earlier calls are normalised with their statistics.
        """
        moments = WeightedMoments()

        def measure(layer: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            if moments.calls_seen == call:
                moments.add(layer, inputs[0])
                raise StopForward
            moments.calls_seen += 1

        with _pre_hooks(self.layers, measure):
            yield moments
        if moments.layer is not None:
            self._records.setdefault(moments.layer, []).append(moments.result())

    @contextlib.contextmanager
    def applying(self) -> Iterator[None]:
        """Context in which every norm layer normalises with the recorded statistics (its own forward,
        which would compute the tile's statistics, is replaced, not run).

        Each forward must call the layers as the reference forward did: the ``k``-th call of a layer
        uses the statistics of its ``(k mod calls per forward)``-th recorded call. Layers the reference
        forward did not call keep their own statistics.
        """
        recorded = [layer for layer in self.layers if self._records.get(layer)]
        calls = dict.fromkeys(recorded, 0)

        def fixed(layer: nn.Module) -> Callable[[Tensor], Tensor]:
            records = self._records[layer]

            def forward(x: Tensor) -> Tensor:
                mean, var = records[calls[layer] % len(records)]
                calls[layer] += 1
                return _normalise(layer, x, mean, var)

            return forward

        for layer in recorded:
            layer.forward = fixed(layer)  # instance attribute: shadows the class's forward
        try:
            yield
        finally:
            for layer in recorded:
                del layer.forward
