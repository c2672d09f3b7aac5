"""The background prior (``background_weight``, the microscopy preset): each output's darkest pixels pulled to the
clear images' background level."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from eid.errors import EIDError
from eid.losses import BackgroundPrior
from eid.models import DehazerConfig
from eid.training.data import ImageDataModule
from eid.training.eid_config import EIDConfig, with_prior
from eid.training.eid_module import EIDModule
from eid.training.trainer import build_trainer, fit


def veiled(n: int, veil: torch.Tensor, size: int = 32, seed: int = 0) -> torch.Tensor:
    """``(n,1,size,size)`` sparse bright spots (fluorescence-like: a background at 0.05) plus a per-image veil."""
    g = torch.Generator().manual_seed(seed)
    spots = (torch.rand(n, 1, size, size, generator=g) > 0.8).float() * 0.8
    return (0.05 + spots + veil.view(-1, 1, 1, 1)).clamp(0, 1)


class Crops(torch.utils.data.Dataset):
    """Items ``{key: image}`` indexed by ``(index, seed)``, as the stage-2 loader asks."""

    def __init__(self, key: str, images: torch.Tensor) -> None:
        self.key, self.images = key, images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        return {self.key: self.images[key[0]]}


def test_the_level_is_the_clear_images_median_floor_and_the_loss_pulls_each_floor_to_it() -> None:
    clear = [
        veiled(1, torch.tensor([v]))[0] for v in (0.0, 0.0, 0.2)
    ]  # one odd image: the median ignores it
    prior = BackgroundPrior(weight=1.0, quantile=0.1).fit(clear)
    assert prior.level == pytest.approx(0.05)
    offset = torch.zeros(
        3, 1, 1, 1, requires_grad=True
    )  # a free per-image level, as the dehazer's offset
    hazy = veiled(3, torch.tensor([0.02, 0.06, 0.10]))
    optimiser = torch.optim.SGD([offset], lr=1.0)
    for _ in range(100):
        optimiser.zero_grad()
        prior(hazy + offset).backward()
        optimiser.step()
    torch.testing.assert_close(
        offset.detach().flatten(), -torch.tensor([0.02, 0.06, 0.10]), atol=1e-3, rtol=0
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: BackgroundPrior(1.0, 0.1)(torch.rand(2, 1, 8, 8)), "fit"),
        (lambda: BackgroundPrior(1.0, 0.1).fit([]), "--clear DIR"),
        (lambda: EIDConfig(background_quantile=1.0), "background_quantile"),
        (lambda: EIDConfig(background_weight=-1.0), "background_weight"),
        (
            lambda: EIDModule(EIDConfig(operator="asm", adversarial_weight=0, background_weight=1)),
            "--clear DIR",
        ),
    ],
)
def test_misuse_says_what_to_do(build, message: str) -> None:
    with pytest.raises(EIDError, match=message):
        build()


def test_no_prior_turns_the_background_prior_off_too(tmp_path: Path) -> None:
    cfg = EIDConfig(operator="asm", adversarial_weight=0.0, background_weight=1.0)
    assert cfg.uses_clear
    on = with_prior(cfg, [tmp_path])
    assert on.background_weight == 1.0 and on.clear == (str(tmp_path.resolve()),)
    off = with_prior(cfg, [tmp_path], prior=False)
    assert off.background_weight == 0 and off.adversarial_weight == 0 and off.clear == ()


def test_stage_2_reads_the_level_from_the_clear_crops_and_trains_with_the_term(
    tmp_path: Path,
) -> None:
    """The veil (0.02-0.12) raises each hazy crop's floor. Trained through an operator that knows no veil (the ASM
    with ``t = 1``: the extreme of a learned operator giving every crop one level), the outputs keep the veil; the
    prior brings their floors to the clear level 0.05 (mean distance 0.027 against 0.070 without it)."""
    veil = torch.linspace(0.02, 0.12, 8)
    hazy = Crops("hazy", veiled(8, veil, seed=1))
    clear = Crops("clear", veiled(8, torch.zeros(8), seed=2))
    floors = {}
    for weight in (0.0, 10.0):
        cfg = EIDConfig(operator="asm", asm_transmission=1.0, asm_airlight=0.0, group="rot90", batch_size=4,
                        lr=3e-3, max_steps=40, adversarial_weight=0.0, background_weight=weight,
                        model=DehazerConfig(channels=1, scales=2, width=4, head="affine"))  # fmt: skip
        L.seed_everything(0, verbose=False)
        module = EIDModule(cfg, clear=clear, run_dir=tmp_path / str(weight))
        trainer = build_trainer(
            tmp_path / str(weight), max_steps=cfg.max_steps, progress=False, samples=False
        )
        fit(trainer, module, ImageDataModule(hazy, cfg.batch_size, cfg.seed), None)
        if weight:
            assert module.background.level == pytest.approx(0.05)
            assert "train/bg" in trainer.callback_metrics
        with torch.no_grad():
            out = module.dehazer.eval()(hazy.images)
        floors[weight] = (out.flatten(1).quantile(0.1, dim=1) - 0.05).abs().mean()
    assert floors[10.0] < 0.5 * floors[0.0]
