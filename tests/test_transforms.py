"""Transformation groups: names parse, rot90 is exact, products and n_trans behave, seeds reproduce."""

from __future__ import annotations

import pytest
import torch

from eid.errors import EIDError
from eid.transforms import FACTORS, MODALITIES, build_group, full_group, parse_group


@pytest.mark.parametrize(
    "name", [*FACTORS, *MODALITIES, "rot90*flip", "hflip*shift", "rot90 * hflip"]
)
def test_every_name_builds_and_keeps_shape(name: str, rng: torch.Generator) -> None:
    x = torch.rand(2, 3, 16, 16, generator=rng)
    assert build_group(name, rng=rng)(x).shape == x.shape


@pytest.mark.parametrize("bad", ["rot45", "rot90*", "flip*flip", ""])
def test_bad_names_list_the_valid_ones(bad: str) -> None:
    with pytest.raises(EIDError, match="rot90"):
        parse_group(bad)


def test_modality_presets() -> None:
    assert parse_group("microscopy") == ["rot90", "flip"]
    assert parse_group("endoscopy") == ["rotate"]
    assert parse_group("natural") == ["hflip"]


@pytest.mark.parametrize("size", [(8, 8), (9, 9)])
def test_rot90_is_exact(size: tuple[int, int], rng: torch.Generator) -> None:
    x = torch.rand(2, 1, *size, generator=rng)
    T = full_group("rot90")
    params = T.get_params(x)
    out = T.transform(x, **params)
    for i, theta in enumerate(params["theta"].tolist()):
        assert torch.equal(
            out[2 * i : 2 * i + 2], torch.rot90(x, k=int(theta) // 90, dims=(-2, -1))
        )


def test_inverse_undoes_exactly_for_finite_groups(rng: torch.Generator) -> None:
    x = torch.rand(1, 3, 12, 12, generator=rng)
    for name in ("rot90", "hflip", "flip", "microscopy"):
        T = build_group(name, rng=rng)
        params = T.get_params(x)
        assert torch.equal(T.inverse(T.transform(x, **params), **params), x)


def test_n_trans_stacks_transform_major(rng: torch.Generator) -> None:
    x = torch.rand(3, 1, 8, 8, generator=rng)
    assert build_group("rot90*flip", n_trans=4, rng=rng)(x).shape == (12, 1, 8, 8)
    with pytest.raises(EIDError, match="exceeds"):
        build_group("hflip", n_trans=3)


def test_same_seed_same_elements() -> None:
    x = torch.rand(1, 1, 16, 16)
    a = build_group("rot90*flip*shift", rng=torch.Generator().manual_seed(5))
    b = build_group("rot90*flip*shift", rng=torch.Generator().manual_seed(5))
    assert all(torch.equal(a(x), b(x)) for _ in range(5))


def test_full_group_averages_over_dihedral_group(rng: torch.Generator) -> None:
    T = full_group("microscopy")
    assert T.n_trans == 8
    x = torch.rand(1, 1, 8, 8, generator=rng)
    sym = T.symmetrize(lambda z: z, average=True)(x)
    assert torch.allclose(sym, x, atol=1e-6)
    with pytest.raises(EIDError, match="finite"):
        full_group("rotate")
