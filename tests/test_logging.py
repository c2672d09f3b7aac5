"""Training logs: ``csv`` (default) or ``tensorboard`` for both stages, read back from the run folder (issue 22)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from eid.data.io import write_image
from eid.errors import EIDError
from eid.models.dehazer import DehazerConfig
from eid.training import trainer
from eid.training.eid import fit_eid
from eid.training.eid_config import EIDConfig
from eid.training.operator import fit_operator
from eid.training.operator_config import OperatorConfig, OperatorDataConfig, OperatorModelConfig


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Four clear and four hazy 40x40 images."""
    root = tmp_path_factory.mktemp("toy")
    g = torch.Generator().manual_seed(0)
    for i in range(4):
        x = torch.rand(3, 40, 40, generator=g)
        write_image(root / "clear" / f"c{i}.png", x)
        write_image(root / "hazy" / f"h{i}.png", x * 0.6 + 0.36)
    return root / "clear", root / "hazy"


def _events(run: Path) -> tuple[set[str], set[str]]:
    """Scalar and image tags of the TensorBoard event files in ``run/logs``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = list((run / "logs").glob("events.out.tfevents.*"))
    assert files, f"no event file in {run / 'logs'}"
    events = EventAccumulator(str(run / "logs")).Reload()
    tags = events.Tags()
    return set(tags["scalars"]), set(tags["images"])


def test_stage_1_tensorboard_log_holds_losses_and_sample_grids(
    toy: tuple[Path, Path], tmp_path: Path
) -> None:
    pytest.importorskip("tensorboard")
    cfg = OperatorConfig(
        model=OperatorModelConfig(kind="cyclegan", width=4, blocks=1, residual=False, disc_width=4, disc_norm="instance"),
        data=OperatorDataConfig(crop=32, load_size=None, batch_size=2),
        buffer_size=2, epochs=None, max_steps=2, checkpoint_every_n_batches=0, checkpoint_every_n_epochs=0, log_every=1,
    )  # fmt: skip
    fit_operator(
        cfg, *toy, tmp_path, accelerator="cpu", devices=1, progress=False, logger="tensorboard"
    )
    scalars, images = _events(tmp_path)
    assert {"g_step", "d_step", "cyc_step", "lr"} <= scalars and "samples" in images
    assert not (tmp_path / "logs" / "metrics.csv").exists()


def test_stage_2_tensorboard_log(toy: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    cfg = EIDConfig(
        operator="asm", asm_transmission=0.6, asm_airlight=0.9, model=DehazerConfig(scales=2, width=4), epochs=None,
        max_steps=2, batch_size=2, crop=16, checkpoint_every_n_batches=0, adversarial_weight=0.0,
    )  # fmt: skip
    fit_eid(
        cfg,
        [toy[1]],
        tmp_path,
        accelerator="cpu",
        devices=1,
        progress=False,
        logger="tensorboard",
        log_every=1,
    )
    scalars, images = _events(tmp_path)
    assert {"train/loss", "train/mc", "train/eq"} <= scalars and "samples" in images


def test_csv_is_the_default(tmp_path: Path) -> None:
    assert (
        type(trainer.build_trainer(tmp_path, max_steps=1, progress=False).logger).__name__
        == "CSVLogger"
    )


def test_missing_tensorboard_and_unknown_logger_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trainer.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EIDError, match=r"pip install 'eid-dehaze\[tensorboard\]'"):
        trainer.build_logger(tmp_path, "tensorboard")
    with pytest.raises(EIDError, match="use one of csv, tensorboard"):
        trainer.build_logger(tmp_path, "wandb")
