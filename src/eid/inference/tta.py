"""Test-time group averaging: :math:`\\bar f(y) = |G|^{-1}\\sum_g T_g^{-1} f(T_g y)` over a finite group."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from eid.inference.tiling import crop_to, pad_to_shape

__all__ = ["GroupAverage", "exact_tta_group"]

#: groups whose elements are exact pixel permutations, usable for test-time averaging
_EXACT_FACTORS = ("rot90", "hflip", "flip")
_DEFAULT_TTA_GROUP = "rot90*flip"


def exact_tta_group(name: str | None) -> str:
    """The largest exactly invertible finite group inside ``name``, for test-time averaging.

    Test-time averaging needs every group element and exact inverses: ``rotate`` (any angle) is
    reduced to its subgroup ``rot90``; ``shift`` and ``scale`` (infinite, or not exactly
    invertible on a finite image) are dropped. ``None`` or nothing left gives ``rot90*flip``.

    >>> exact_tta_group("endoscopy"), exact_tta_group("hflip*shift"), exact_tta_group(None)
    ('rot90', 'hflip', 'rot90*flip')
    """
    from eid.transforms import parse_group

    if name is None:
        return _DEFAULT_TTA_GROUP
    factors = ["rot90" if f == "rotate" else f for f in parse_group(name)]
    kept = [f for f in dict.fromkeys(factors) if f in _EXACT_FACTORS]
    return "*".join(kept) if kept else _DEFAULT_TTA_GROUP


class GroupAverage:
    """Reynolds average of ``f`` over a finite group: :math:`|G|^{-1}\\sum_g T_g^{-1} f(T_g y)`.

    Built on deepinv ``Transform.symmetrize`` over :func:`eid.transforms.full_group`, which
    enumerates each element once (``rot90*flip`` = the 8 elements of the dihedral group). deepinv
    crops 90-degree rotations of non-square images to the input shape, which would not be
    invertible; so when the group contains rotations a non-square input is first padded to a square
    (:func:`pad_to_shape`) and the result cropped back. ``f`` equivariant to the group gives
    :math:`\\bar f = f`; the cost is ``|G|`` evaluations of ``f``.

    :param fn: function on ``(B,C,H,W)`` tensors.
    :param str group: a finite group name (see :func:`exact_tta_group`).
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], group: str = _DEFAULT_TTA_GROUP) -> None:
        from deepinv.transform import Rotate

        from eid.transforms import full_group

        self.group = group
        self._rng = torch.Generator().manual_seed(0)
        self._rng_state = self._rng.get_state()
        self.transform = full_group(group, self._rng)
        self.rotates = any(isinstance(m, Rotate) for m in self.transform.modules())
        self.fn = fn
        # one f call per element: memory stays that of a single evaluation
        self._symmetrized = self.transform.symmetrize(fn, average=True, collate_batch=False)

    @property
    def size(self) -> int:
        """Number of group elements ``|G|`` (evaluations of ``f`` per call)."""
        return self.transform.n_trans

    def __call__(self, y: Tensor) -> Tensor:
        # the same element order in every call: reproducible sums, and norm statistics recorded per
        # element (eid.models.global_norm) stay matched to their element
        self._rng.set_state(self._rng_state)
        h, w = y.shape[-2:]
        if self.rotates and h != w:
            side = max(h, w)
            return crop_to(self._symmetrized(pad_to_shape(y, side, side)), (h, w))
        return self._symmetrized(y)
