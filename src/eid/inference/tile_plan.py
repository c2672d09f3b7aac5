"""How the runner tiles an image: :class:`TilePlan` chooses the tile, overlap, margin and norm statistics once
per method, and applies them to each image too large for one forward.

The norm statistics of group/instance norms when tiling (``tile_norm``):

* ``exact``: measured tile by tile, one pass per norm call, with circular padding unrolled
  (:mod:`eid.inference.exact_tiling`): the tiles give the untiled result up to rounding, at the cost of
  those passes. Needs the method's receptive radius with fixed statistics (:attr:`Method.local_radius`),
  tiles with room for twice it, and no test-time averaging.
* ``global``: recorded in one forward of the whole image, down-scaled to ``REFERENCE_TILES`` tiles
  (:mod:`eid.inference.norm_tiling`): close to the untiled result, not equal to it.
* ``tile``: each tile's own.
* ``auto``: ``exact`` where the method allows it, else ``global``.

With either whole-image mode, an image that fits ``REFERENCE_TILES`` tiles needs no tiles: its one
forward is the result. A method with no per-image statistics that declares its receptive radius ``R``
(:attr:`Method.receptive_radius`) is tiled exactly in any mode: the blend discards ``R`` pixels next to
internal tile edges and the default overlap is at least ``2R`` (:mod:`eid.inference.tiling`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from eid.errors import EIDError
from eid.inference.exact_tiling import has_circular_padding
from eid.inference.methods import Method
from eid.inference.norm_tiling import REFERENCE_TILES, norm_tiled_apply
from eid.models.global_norm import GlobalNormStatistics

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_TILE",
    "TILE_NORMS",
    "TilePlan",
]

TILE_NORMS = ("auto", "exact", "global", "tile")
DEFAULT_OVERLAP = 64
DEFAULT_TILE = 512
"""Tile side of ``tile="auto"`` for a network whose widest layers run at full resolution. One that runs them at
``1/s`` of it (:attr:`Method.working_scale`, space-to-depth) gets ``s`` times this side, so that those layers see
as many pixels per tile: the ``fast`` preset's dehazer (``s = 4``) runs images up to 4096² in one forward, about
2 GiB, instead of 30 times slower in exact tiles of 512 (docs/benchmarks/inference.md)."""


@dataclass
class TilePlan:
    """Tiling of one method's images.

    :param tile: tile side, a multiple of ``multiple`` (``None``: never tile).
    :param int overlap: overlap of neighbouring tiles.
    :param int multiple: the size multiple of the method.
    :param str norm: ``exact``, ``global`` or ``tile`` (see the module docstring).
    :param margin: pixels discarded next to internal tile edges, the receptive radius (``None``: unknown,
        a quarter of the overlap).
    :param stats: the method's norm layers, whose statistics the whole-image modes set.
    :param bool wrap: unroll circular padding (``exact`` on a method that pads circularly).
    """

    tile: int | None
    overlap: int
    multiple: int
    norm: str
    margin: int | None
    stats: GlobalNormStatistics
    wrap: bool = False

    @property
    def exact(self) -> bool:
        """Whether tiles reproduce the untiled output (up to rounding)."""
        local = self.margin is not None and self.overlap >= 2 * self.margin
        return local and (self.norm == "exact" or not self.stats)

    @classmethod
    def choose(
        cls,
        method: Method,
        multiple: int,
        tile: int | str | None,
        overlap: int | None,
        norm: str,
        tta: bool,
    ) -> TilePlan:
        """The plan for ``method``; ``"auto"`` tile: :data:`DEFAULT_TILE` times its working scale; ``None`` overlap:
        64, or ``2R`` if larger, at most ``tile`` less a quarter."""
        if norm not in TILE_NORMS:
            raise EIDError(f"unknown tile norm {norm!r}; use one of {', '.join(TILE_NORMS)}")
        if tile == "auto":
            tile = DEFAULT_TILE * method.working_scale
        elif isinstance(tile, str):
            raise EIDError(f"unknown tile {tile!r}; give a side in pixels, auto, or 0 (never tile)")
        if norm == "auto":
            try:
                return cls.choose(method, multiple, tile, overlap, "exact", tta)
            except EIDError:
                return cls.choose(method, multiple, tile, overlap, "global", tta)
        radius = method.local_radius if norm == "exact" else method.receptive_radius
        if norm == "exact" and (radius is None or tta):
            raise EIDError(
                "--tile-norm exact needs a model whose receptive radius is known (input: hazy, dcp or a "
                "CycleGAN's pinv) and no --tta; "
                f"{method.name} has {'--tta' if tta else 'no known radius'}: use --tile-norm global"
            )
        if overlap is None:  # exact where the radius is known and the tile leaves room for it
            overlap = DEFAULT_OVERLAP if radius is None else max(DEFAULT_OVERLAP, 2 * radius)
            if (
                tile
            ):  # tiles advance by at least a quarter tile: --tile 64 alone once gave a 4 px stride
                side = tile // multiple * multiple
                stride = max(multiple, -(-side // 4 // multiple) * multiple)
                overlap = max(0, min(overlap, side - stride))
        checked = _check_tile(tile, overlap, multiple) if method.tileable else None
        if norm == "exact" and checked and overlap < 2 * radius:
            raise EIDError(
                f"--tile-norm exact needs --overlap >= {2 * radius} (twice the receptive radius) and a tile "
                f"larger than that (got --tile {tile}, --overlap {overlap}); use --tile-norm global"
            )
        stats = GlobalNormStatistics(method.modules if norm != "tile" else ())
        wrap = norm == "exact" and has_circular_padding(method.modules)
        return cls(checked, overlap, multiple, norm, radius, stats, wrap)

    def one_forward(self, x: Tensor) -> bool:
        """Whether an image ``x`` larger than a tile is still run whole: a method with whole-image statistics whose
        image fits the reference budget (``REFERENCE_TILES`` tiles a side), where one forward is the result."""
        return (
            bool(self.stats)
            and self.tile is not None
            and max(x.shape[-2:]) <= REFERENCE_TILES * self.tile
        )

    def apply(
        self,
        fn: Callable[[Tensor], Tensor],
        norm_fn: Callable[[Tensor], Tensor],
        x: Tensor,
        batch_size: int,
    ) -> Tensor:
        """``fn(x)`` for one padded image ``(1,C,H,W)`` larger than a tile, tile by tile; ``norm_fn`` is what
        runs where norm statistics are recorded or applied (its hooks act on torch modules)."""
        assert self.tile is not None
        if self.one_forward(x):
            return fn(x)  # fits the reference budget: its one forward is the result
        return norm_tiled_apply(
            norm_fn if self.stats else fn, self.stats, x, self.tile, self.overlap, self.multiple, self.margin,
            norm=self.norm, batch_size=batch_size, wrap=self.wrap,
        )  # fmt: skip


def _check_tile(tile: int | None, overlap: int, multiple: int) -> int | None:
    """``tile`` rounded down to ``multiple`` (``None`` for no tiling), or a one-line error if unusable."""
    if tile is None or tile <= 0:
        return None
    requested, tile = tile, tile // multiple * multiple
    if tile < multiple or not 0 <= overlap <= tile - multiple:
        raise EIDError(
            f"invalid tiling (--tile {requested}, --overlap {overlap}; this model needs sides in multiples of "
            f"{multiple}); use a tile of at least {2 * multiple} and 0 <= overlap <= tile - {multiple}"
        )
    return tile
