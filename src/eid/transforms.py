"""Transformation groups by name, built from deepinv transforms with a seeded generator.

EID assumes the clear images are invariant to a group ``G = {T_g}`` and trains the dehazer so that
``f(H(T_g f(y))) = T_g f(y)``. A group is named by its factors joined with ``*`` (direct product,
deepinv ``Transform.__mul__``), e.g. ``rot90*flip``; modality names are aliases:

=============  =======================================================================================
name           transform
=============  =======================================================================================
``rot90``      rotations by 0/90/180/270 degrees (``Rotate(multiples=90, positive=True)``); exact on
               square images, cropped/zero-padded on non-square ones
``rotate``     any integer-degree rotation about the centre, bilinear, zero corners; exact inside the
               inscribed disc up to interpolation, which suits the circular field of view of endoscopy
``hflip``      identity or left-right mirror (``Reflect(dim=-1)``)
``flip``       a random subset of {vertical, horizontal} mirrors (``Reflect(dim=(-2, -1))``)
``shift``      circular integer translations (``Shift``)
``scale``      isotropic dilation by 0.75 or 0.5 about a random centre (``Scale``; a semigroup)
=============  =======================================================================================

Modality names (``microscopy``, ``endoscopy``, ``natural``) stand for the ``group`` of the dehazer preset of
that name (``configs/dehazer/NAME.yaml``, the one place the table is written; :func:`modality_groups`).

Randomness comes only from the ``torch.Generator`` given to :func:`build_group` (deepinv's default
is a fixed-seed generator independent of ``torch.manual_seed``); one parameter set is drawn per
call and shared by the batch (``scale`` draws one per image).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from deepinv.transform import Reflect, Rotate, Scale, Shift, Transform

from eid.config import preset_dict
from eid.errors import EIDError

__all__ = [
    "FACTORS",
    "MODALITIES",
    "build_group",
    "full_group",
    "group_names",
    "modality_groups",
    "parse_group",
]


def _rot90(n_trans: int, rng: torch.Generator) -> Transform:
    return Rotate(n_trans=n_trans, multiples=90.0, positive=True, rng=rng)


def _rotate(n_trans: int, rng: torch.Generator) -> Transform:
    return Rotate(
        n_trans=n_trans, multiples=1.0, positive=True, interpolation_mode="bilinear", rng=rng
    )


def _hflip(n_trans: int, rng: torch.Generator) -> Transform:
    return Reflect(n_trans=n_trans, dim=[-1], rng=rng)


def _flip(n_trans: int, rng: torch.Generator) -> Transform:
    return Reflect(n_trans=n_trans, dim=[-2, -1], rng=rng)


def _shift(n_trans: int, rng: torch.Generator) -> Transform:
    return Shift(n_trans=n_trans, rng=rng)


def _scale(n_trans: int, rng: torch.Generator) -> Transform:
    return Scale(n_trans=n_trans, rng=rng)


#: factor name -> (constructor(n_trans, rng), group order or None when infinite/too large to enumerate)
FACTORS: dict[str, tuple[Callable[[int, torch.Generator], Transform], int | None]] = {
    "rot90": (_rot90, 4),
    "rotate": (_rotate, None),
    "hflip": (_hflip, 2),
    "flip": (_flip, 4),
    "shift": (_shift, None),
    "scale": (_scale, None),
}

#: Modality names usable as a group: each stands for the ``group`` of the dehazer preset of that name.
MODALITIES = ("microscopy", "endoscopy", "natural")


@functools.cache
def modality_groups() -> dict[str, str]:
    """``{modality: group}`` as the dehazer presets set it.

    >>> modality_groups()["microscopy"]
    'rot90*flip'
    """
    return {name: str(preset_dict("dehazer", name)["group"]) for name in MODALITIES}


def group_names() -> list[str]:
    """Valid single names: the factors and the modality aliases (products join them with ``*``)."""
    return [*FACTORS, *MODALITIES]


def parse_group(name: str) -> list[str]:
    """Split a group name into its factor names, resolving modality aliases.

    >>> parse_group("microscopy")
    ['rot90', 'flip']
    >>> parse_group("hflip * shift")
    ['hflip', 'shift']
    """
    factors: list[str] = []
    for part in str(name).split("*"):
        part = part.strip().lower()
        if part in MODALITIES:
            factors += parse_group(modality_groups()[part])
        elif part in FACTORS:
            factors.append(part)
        else:
            raise EIDError(
                f"unknown transformation group {part!r} in {name!r}; use one of {', '.join(group_names())} "
                "or a product such as rot90*flip"
            )
    if len(set(factors)) != len(factors):
        raise EIDError(
            f"group {name!r} repeats a factor; list each of {', '.join(FACTORS)} at most once"
        )
    return factors


def _product(factors: list[Transform]) -> Transform:
    group = factors[0]
    for factor in factors[1:]:
        group = group * factor
    return group


def build_group(name: str, n_trans: int = 1, rng: torch.Generator | None = None) -> Transform:
    """The deepinv transform of group ``name`` drawing ``n_trans`` random elements per call.

    For a product, the first factor draws ``n_trans`` distinct elements and the others one each
    (deepinv products enumerate ``n1*n2`` combinations), so ``T(x)`` has ``n_trans*B`` images.

    :param str name: group name, e.g. ``"rot90"``, ``"rot90*flip"`` or ``"microscopy"``.
    :param int n_trans: transformed copies per image.
    :param torch.Generator rng: source of randomness (default: a CPU generator seeded with 0).

    >>> T = build_group("rot90*flip", n_trans=2, rng=torch.Generator().manual_seed(0))
    >>> T(torch.zeros(3, 1, 8, 8)).shape
    torch.Size([6, 1, 8, 8])
    """
    factors = parse_group(name)
    if n_trans < 1:
        raise EIDError(f"n_trans must be >= 1 (got {n_trans}); use 1 for the usual EI loss")
    order = FACTORS[factors[0]][1]
    if order is not None and n_trans > order:
        raise EIDError(
            f"n_trans={n_trans} exceeds the {order} elements of {factors[0]!r}; use n_trans <= {order} "
            "or put an infinite factor first"
        )
    if "scale" in factors and len(factors) > 1 and n_trans > 1:
        raise EIDError(
            "scale draws one factor per image and cannot be combined with n_trans > 1 in a product"
        )
    rng = torch.Generator().manual_seed(0) if rng is None else rng
    return _product([FACTORS[f][0](n_trans if i == 0 else 1, rng) for i, f in enumerate(factors)])


def full_group(name: str, rng: torch.Generator | None = None) -> Transform:
    """A transform that enumerates every element of a finite group, for test-time averaging.

    ``full_group(name).symmetrize(f, average=True)`` is the Reynolds average
    ``|G|^-1 sum_g T_g^-1 f(T_g x)``. Because ``vflip = rot180 o hflip``, a product holding both
    ``rot90`` and ``flip`` is enumerated as ``rot90 x hflip`` (the 8 elements of the dihedral group)
    instead of 16 combinations with repeats.

    >>> full_group("microscopy").n_trans
    8
    """
    factors = parse_group(name)
    if "rot90" in factors and "flip" in factors:
        factors[factors.index("flip")] = "hflip"
    infinite = [f for f in factors if FACTORS[f][1] is None]
    if infinite:
        raise EIDError(
            f"group {name!r} has infinite factor(s) {', '.join(infinite)}; test-time averaging needs a finite "
            "group such as rot90, hflip, flip or rot90*flip"
        )
    rng = torch.Generator().manual_seed(0) if rng is None else rng
    return _product([FACTORS[f][0](FACTORS[f][1], rng) for f in factors])
