"""Stage-2 training: the loss decreases, resume is bit-exact, the export loads, the CLI runs."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from typer.testing import CliRunner

from eid.data.datasets import ImageSource
from eid.errors import EIDError
from eid.models import DehazerConfig, load_dehazer
from eid.training.data import ImageDataModule
from eid.training.eid import EIDModule
from eid.training.eid_config import EIDConfig
from eid.training.run_folder import prepare_run_dir
from eid.training.trainer import build_trainer, fit


class ToyHaze(torch.utils.data.Dataset):
    """Smooth random 'clear' images hazed by an ASM with per-image transmission maps and airlights."""

    def __init__(self, n: int = 8, size: int = 16, maps: bool = False) -> None:
        g = torch.Generator().manual_seed(0)
        low = torch.rand(n, 1, size // 4, size // 4, generator=g)
        self.clear = torch.nn.functional.interpolate(
            low, size=size, mode="bilinear", align_corners=False
        )
        self.t = (
            0.4 + 0.4 * torch.rand(n, 1, size, size, generator=g)
            if maps
            else torch.full((n, 1, 1, 1), 0.6)
        )
        self.a = 0.7 + 0.3 * torch.rand(n, 1, 1, 1, generator=g)

    def __len__(self) -> int:
        return len(self.clear)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        i = key[0]
        hazy = self.clear[i] * self.t[i] + self.a[i] * (1 - self.t[i])
        return {
            "hazy": hazy,
            "clear": self.clear[i],
            "transmission": self.t[i],
            "airlight": self.a[i],
        }


def config(**kw) -> EIDConfig:
    base = {"operator": "asm", "model": DehazerConfig(channels=1, scales=2, width=4), "batch_size": 4, "lr": 3e-3, "max_steps": 6,
            "adversarial_weight": 0.0, "disc_norm": "instance"}  # fmt: skip
    return EIDConfig(**{**base, **kw})


def run(
    run_dir: Path,
    cfg: EIDConfig,
    data: torch.utils.data.Dataset,
    stop_after: int | None = None,
    resume: bool = False,
) -> EIDModule:
    ckpt = prepare_run_dir(run_dir, resume)
    L.seed_everything(0, verbose=False)
    module = EIDModule(cfg, run_dir=run_dir)

    class Kill(L.Callback):
        """Simulate a crash right after the checkpoint of batch ``stop_after``."""

        def on_train_batch_end(self, trainer, *args) -> None:
            if stop_after is not None and trainer.global_step >= stop_after:
                raise Killed

    trainer = build_trainer(
        run_dir,
        max_steps=cfg.max_steps,
        progress=False,
        samples=False,
        callbacks=[Kill()],
        checkpoint_every_n_batches=1,
    )
    try:
        fit(trainer, module, ImageDataModule(data, cfg.batch_size, cfg.seed), ckpt)
    except Killed:
        pass
    return module


class Killed(Exception):
    pass


def test_tiny_model_loss_decreases(tmp_path: Path) -> None:
    data = ToyHaze(maps=True)
    cfg = config(max_steps=40, n_trans=2, group="rot90*flip")
    module = EIDModule(cfg)
    batch = {
        k: torch.stack([data[(i, 0)][k] for i in range(4)])
        for k in ("hazy", "transmission", "airlight")
    }
    with torch.no_grad():
        before = module.losses(batch["hazy"], module.physics_for(batch))[1]["loss"].item()
    module = run(tmp_path / "run", cfg, data)
    module.physics.to("cpu")
    with torch.no_grad():
        after = module.losses(batch["hazy"], module.physics_for(batch))[1]["loss"].item()
    assert after < 0.5 * before
    assert (tmp_path / "run" / "logs" / "metrics.csv").read_text().count("train/eq") == 1


def test_resume_is_bit_exact(tmp_path: Path) -> None:
    data = ToyHaze()
    cfg = config(group="rot90*shift")
    full = run(tmp_path / "full", cfg, data)
    run(tmp_path / "split", cfg, data, stop_after=3)
    resumed = run(tmp_path / "split", cfg, data, resume=True)
    for (name, a), b in zip(
        full.dehazer.state_dict().items(), resumed.dehazer.state_dict().values()
    ):
        assert torch.equal(a, b), name


def test_export_loads_and_matches(tmp_path: Path) -> None:
    module = run(tmp_path / "run", config(max_steps=2), ToyHaze())
    dehazer, physics, saved = load_dehazer(tmp_path / "run")
    assert physics is None and saved["group"] == "rot90"
    y = ToyHaze()[(0, 0)]["hazy"][None]
    module.dehazer.eval()
    with torch.no_grad():
        assert torch.equal(dehazer(y), module.dehazer(y))


def test_config_guards() -> None:
    with pytest.raises(EIDError, match="batch_size"):
        config(model=DehazerConfig(channels=1, norm="batch"), batch_size=2)
    with pytest.raises(EIDError, match="rot90"):
        config(group="spin")


def test_presets_resolve() -> None:
    from eid.config import load_config, preset_names

    assert {"fast", "paper", "microscopy", "endoscopy", "natural"} <= set(preset_names("dehazer"))
    paper = load_config(EIDConfig, "dehazer", preset="paper")
    assert (
        paper.model.scales,
        paper.model.width,
        paper.model.input,
        paper.group,
        paper.batch_size,
    ) == (5, 64, "pinv", "rotate", 1)
    assert load_config(EIDConfig, "dehazer", preset="microscopy").group == "rot90*flip"


def test_cli_trains_with_asm_oracle(tmp_path: Path, asm_oracle: tuple[str, ...]) -> None:
    from eid.cli import app
    from eid.data.io import write_image

    data = ToyHaze(n=4, size=32)
    for i in range(4):
        write_image(tmp_path / "hazy" / f"{i}.png", data[(i, 0)]["hazy"])
    args = [
        "train",
        "--hazy",
        str(tmp_path / "hazy"),
        *asm_oracle,
        "--out",
        str(tmp_path / "run"),
        "--max-steps",
        "2",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    dehazer, _, saved = load_dehazer(tmp_path / "run")
    assert saved["asm_transmission"] == 0.6 and dehazer.config.channels == 1
    assert "- operator: asm (the analytic oracle)" in (tmp_path / "run" / "MODEL.md").read_text()
    again = CliRunner().invoke(app, args)
    assert again.exit_code != 0  # refuses to overwrite a run


def test_asm_oracle_reads_per_image_parameters_from_synth(tmp_path: Path) -> None:
    from eid.data.io import write_image
    from eid.physics import ASMHaze
    from eid.synth import synthesize_folder
    from eid.training.eid_data import SynthASMFolder

    g = torch.Generator().manual_seed(0)
    for i in range(2):
        write_image(tmp_path / "in" / f"{i}.png", torch.rand(3, 24, 20, generator=g))
    synthesize_folder(
        [tmp_path / "in"], tmp_path / "synth", model="asm", depth="random", save_depth=True, seed=1
    )
    data = SynthASMFolder(tmp_path / "synth", crop=16, channels=3, seed=0)
    item = data[(1, 7)]
    assert item["hazy"].shape == (3, 16, 16) and item["transmission"].shape == (1, 16, 16)
    # the oracle re-hazes the matching clear crop (same crop/flip drawn from the item seed 7)
    clear = data.crops.augment(
        [data.crops.load(ImageSource(tmp_path / "synth" / "clear" / "1.png"))],
        torch.Generator().manual_seed(7),
    )[0]
    physics = ASMHaze(transmission=item["transmission"][None], airlight=item["airlight"][None])
    assert torch.allclose(physics.A(clear[None])[0], item["hazy"], atol=2 / 255)


def test_cli_learned_operator_run_is_self_contained(tmp_path: Path) -> None:
    from eid.cli import app
    from eid.data.io import write_image
    from eid.models import ResnetGenerator
    from eid.physics import LearnedHaze

    torch.manual_seed(0)
    LearnedHaze(
        ResnetGenerator(1, 1, width=4, blocks=1),
        ResnetGenerator(1, 1, width=4, blocks=1),
        config={"model": {"channels": 1, "width": 4, "blocks": 1}},
    ).save(tmp_path / "stage1")
    data = ToyHaze(n=2, size=32)
    for i in range(2):
        write_image(tmp_path / "hazy" / f"{i}.png", data[(i, 0)]["hazy"])
    (tmp_path / "pinv.yaml").write_text("model:\n  input: pinv\n  scales: 2\n  width: 4\n")
    args = [
        "train",
        "--hazy",
        str(tmp_path / "hazy"),
        "--operator",
        str(tmp_path / "stage1"),
        "--config",
        str(tmp_path / "pinv.yaml"),
        "--out",
        str(tmp_path / "run"),
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--crop",
        "16",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    dehazer, physics, _ = load_dehazer(tmp_path / "run")
    assert isinstance(physics, LearnedHaze) and dehazer.needs_physics
    assert dehazer(data[(0, 0)]["hazy"][None], physics).shape == (1, 1, 32, 32)


def test_checkpointed_operator_gives_the_same_gradients() -> None:
    from eid.models import ResnetGenerator
    from eid.physics import LearnedHaze
    from eid.training.eid_operator import CheckpointedOperator

    torch.manual_seed(0)
    physics = LearnedHaze(
        ResnetGenerator(1, 1, width=4, blocks=1), ResnetGenerator(1, 1, width=4, blocks=1)
    )
    cfg = config(model=DehazerConfig(channels=1, scales=2, width=4, input="pinv"))
    y = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    grads = []
    for wrapped in (physics, CheckpointedOperator(physics)):
        torch.manual_seed(0)
        module = EIDModule(cfg, physics=wrapped)
        module.losses(y, module.physics)[1]["loss"].backward()
        grads.append([p.grad.clone() for p in module.dehazer.parameters()])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))


def test_adversarial_prior_trains_both_sides(tmp_path: Path) -> None:
    data = ToyHaze(size=64)  # the 70x70 PatchGAN needs more than 16 pixels
    cfg = config(max_steps=8, adversarial_weight=0.1, asm_transmission=0.6, asm_airlight=0.85)
    L.seed_everything(0, verbose=False)
    module = EIDModule(cfg, clear=data, run_dir=tmp_path / "run")
    d_before = [p.detach().clone() for p in module.discriminator.parameters()]
    f_before = [p.detach().clone() for p in module.dehazer.parameters()]
    trainer = build_trainer(
        tmp_path / "run", max_steps=cfg.max_steps, progress=False, samples=False, steps_per_batch=2
    )
    fit(trainer, module, ImageDataModule(data, cfg.batch_size, cfg.seed), None)
    assert all(
        p.requires_grad for p in module.discriminator.parameters()
    )  # untoggled after the dehazer step
    assert any(not torch.equal(a, b) for a, b in zip(d_before, module.discriminator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(f_before, module.dehazer.parameters()))
    assert {"train/adv", "train/disc"} <= set(trainer.callback_metrics)
    assert all(torch.isfinite(trainer.callback_metrics[k]) for k in ("train/adv", "train/disc"))


def test_the_read_scale_of_stage_1_carries_to_stage_2_and_to_dehazing(tmp_path: Path) -> None:
    import numpy as np
    import tifffile
    import yaml

    from eid.cli import app
    from eid.data.datasets import HazyFolder
    from eid.inference import build_method

    gen = np.random.default_rng(0)
    for folder in ("clear", "hazy"):
        (tmp_path / folder).mkdir()
        for i in range(2):  # 12-bit microscopy in 16-bit files
            tifffile.imwrite(
                tmp_path / folder / f"{i}.tif", gen.integers(0, 4096, (40, 40), dtype=np.uint16)
            )
    assert (
        float(
            HazyFolder(str(tmp_path / "hazy"), crop=None, channels=1, white=4095)[0]["hazy"].max()
        )
        > 0.99
    )
    stage1 = [
        "train-operator",
        "--clear",
        str(tmp_path / "clear"),
        "--hazy",
        str(tmp_path / "hazy"),
        "--out",
        str(tmp_path / "op"),
        "--preset",
        "fast",
        "--crop",
        "32",
        "--max-steps",
        "1",
        "--white",
        "4095",
    ]
    assert CliRunner().invoke(app, stage1).exit_code == 0
    exported = yaml.safe_load((tmp_path / "op" / "operator.yaml").read_text())
    assert (
        exported["data"]["white"] == 4095.0 and exported["model"]["channels"] == 1
    )  # grey data, grey generators
    stage2 = [
        "train",
        "--hazy",
        str(tmp_path / "hazy"),
        "--operator",
        str(tmp_path / "op"),
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--crop",
        "16",
    ]
    result = CliRunner().invoke(app, [*stage2, "--out", str(tmp_path / "eid")])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((tmp_path / "eid" / "dehazer.yaml").read_text())["white"] == 4095.0
    assert build_method("eid", model=tmp_path / "eid", device="cpu").white == 4095.0
    assert build_method("cyclegan", operator=tmp_path / "op", device="cpu").white == 4095.0
    result = CliRunner().invoke(
        app, [*stage2, "--out", str(tmp_path / "other"), "--white", "65535"]
    )
    assert isinstance(result.exception, EIDError) and "differs from the operator's (4095.0)" in str(
        result.exception
    )


def test_stage_2_follows_the_operators_channels(tmp_path: Path) -> None:
    import yaml

    from eid.cli import app
    from eid.data.io import write_image
    from eid.models import ResnetGenerator
    from eid.physics import LearnedHaze

    rgb = {
        "model": {"channels": 3, "width": 4, "blocks": 1}
    }  # exported before data.white existed: dtype
    LearnedHaze(
        ResnetGenerator(3, 3, width=4, blocks=1),
        ResnetGenerator(3, 3, width=4, blocks=1),
        config=rgb,
    ).save(tmp_path / "op")
    for i in range(2):
        write_image(tmp_path / "hazy" / f"{i}.png", ToyHaze(n=2, size=32)[(i, 0)]["hazy"])  # grey
    args = [
        "train",
        "--hazy",
        str(tmp_path / "hazy"),
        "--operator",
        str(tmp_path / "op"),
        "--out",
        str(tmp_path / "run"),
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--crop",
        "16",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((tmp_path / "run" / "dehazer.yaml").read_text())
    assert saved["model"]["channels"] == 3 and saved["white"] == "dtype"


def test_ddp_two_cpu_processes(tmp_path: Path, asm_oracle: tuple[str, ...]) -> None:
    import os
    import subprocess
    import sys

    from eid.data.io import write_image
    from eid.training.checkpoints import load_checkpoint

    data = ToyHaze(n=8, size=32)
    for i in range(8):
        write_image(tmp_path / "hazy" / f"{i}.png", data[(i, 0)]["hazy"])
    eid = (
        Path(sys.executable).parent / "eid"
    )  # Lightning's DDP launcher re-runs this command per rank
    cmd = [
        str(eid),
        "train",
        "--hazy",
        str(tmp_path / "hazy"),
        *asm_oracle,
        "--out",
        str(tmp_path / "run"),
        "--max-steps",
        "2",
        "--devices",
        "2",
        "--accelerator",
        "cpu",
        "--threads",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 2
    assert load_dehazer(tmp_path / "run")[0](data[(0, 0)]["hazy"][None]).shape == (1, 1, 32, 32)
    assert (
        "find_unused_parameters=True" not in done.stderr
    )  # one optimizer: DDP need not search for unused parameters
    assert done.stderr.count("batch 2/2 (100%)") == 1  # progress from rank 0 only


def _stage_1(tmp_path: Path) -> list[str]:
    """A one-step default stage-1 run that records its clear folder; returns the matching ``eid train`` args."""
    from eid.cli import app
    from eid.data.io import write_image

    data = ToyHaze(n=2, size=40)
    for i in range(2):
        write_image(tmp_path / "clear" / f"{i}.png", data[(i, 0)]["clear"])
        write_image(tmp_path / "hazy" / f"{i}.png", data[(i, 0)]["hazy"])
    stage1 = [
        "train-operator",
        "--clear",
        str(tmp_path / "clear"),
        "--hazy",
        str(tmp_path / "hazy"),
        "--out",
        str(tmp_path / "op"),
        "--crop",
        "32",
        "--max-steps",
        "1",
    ]
    assert CliRunner().invoke(app, stage1).exit_code == 0
    return [
        "train",
        "--hazy",
        str(tmp_path / "hazy"),
        "--operator",
        str(tmp_path / "op"),
        "--out",
        str(tmp_path / "run"),
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--crop",
        "32",
    ]


@pytest.mark.parametrize("flags", [[], ["--no-prior"]])
def test_the_prior_is_on_by_default_with_the_clear_folder_stage_1_recorded(
    tmp_path: Path, flags: list[str]
) -> None:
    import yaml

    from eid.cli import app

    result = CliRunner().invoke(app, [*_stage_1(tmp_path), *flags])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((tmp_path / "run" / "dehazer.yaml").read_text())
    if flags:
        assert (
            saved["adversarial_weight"] == 0
            and saved["clear"] == []
            and "no prior" in result.output
        )
    else:
        assert saved["adversarial_weight"] > 0 and saved["clear"] == [
            str((tmp_path / "clear").resolve())
        ]
        assert "adversarial prior" in result.output


def test_a_moved_clear_folder_is_one_clean_error_naming_both_remedies(tmp_path: Path) -> None:
    import shutil

    from eid.cli import app

    args = _stage_1(tmp_path)
    shutil.move(tmp_path / "clear", tmp_path / "elsewhere")
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, EIDError)
    message = str(result.exception)
    assert (
        str((tmp_path / "clear").resolve()) in message
        and "--clear DIR" in message
        and "--no-prior" in message
    )
    assert "\n" not in message
    result = CliRunner().invoke(app, [*args, "--clear", str(tmp_path / "elsewhere")])
    assert result.exit_code == 0, result.output


def test_a_scattering_operator_shows_its_transmission_in_the_stage_2_grid() -> None:
    from eid.physics import ScatteringHaze
    from eid.physics.scattering import scattering_nets

    nets = scattering_nets({"channels": 1, "width": 4, "scales": 2})
    physics = ScatteringHaze(nets["hazer"], nets["estimator"])
    module = EIDModule(
        config(model=DehazerConfig(channels=1, scales=2, width=4, input="pinv")), physics=physics
    )
    y = ToyHaze(n=2, size=16)[(0, 0)]["hazy"][None]
    columns = module.sample_columns({"hazy": y})
    assert len(columns) == 5  # hazy, H^dagger(y), f(y), H(f(y)), t(f(y))
    assert torch.equal(columns[1], physics.A_dagger(y))
    assert columns[-1].min() >= physics.t_min and columns[-1].max() <= 1
