"""Stage-1 training: datasets, sampler/loader resume state, losses, bit-exact resume, DDP, CLI rules."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from eid.config import save_config
from eid.data.datasets import HazyFolder, PairedFolder, UnpairedFolders
from eid.data.io import image_meta_for, write_image
from eid.errors import EIDError
from eid.physics import LearnedHaze
from eid.training.callbacks import NonFiniteLossError
from eid.training.checkpoints import load_checkpoint
from eid.training.cyclegan import ReplayBuffer, linear_decay
from eid.training.data import ResumableLoader, SeededSampler, make_loader
from eid.training.operator import fit_operator
from eid.training.operator_config import (
    OperatorConfig,
    OperatorDataConfig,
    OperatorLossConfig,
    OperatorModelConfig,
)
from eid.training.run_folder import prepare_run_dir

T, A = 0.6, 0.9  # the toy set's haze: y = x * t + A * (1 - t)


def smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    """``n`` smooth random colour images (bicubic up-sampled 4x4 noise), values in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g)
    return F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Unpaired toy set: 8 clear images and 8 hazy versions of 8 OTHER images (ASM with t=0.6, A=0.9)."""
    root = tmp_path_factory.mktemp("toy")
    for i, x in enumerate(smooth_images(8, 40, seed=1)):
        write_image(root / "clear" / f"c{i}.png", x)
    for i, x in enumerate(smooth_images(8, 40, seed=2)):
        write_image(root / "hazy" / f"h{i}.png", x * T + A * (1 - T))
    return root / "clear", root / "hazy"


def model_config(**fields) -> OperatorModelConfig:
    """A model section of the authors' recipe (a CycleGAN, D with instance norm: the ``paper`` preset's) with ``fields``."""
    return OperatorModelConfig(
        **{"kind": "cyclegan", "residual": False, "disc_norm": "instance", **fields}
    )


def tiny_config(**overrides) -> OperatorConfig:
    cfg = OperatorConfig(
        model=model_config(width=4, blocks=1, disc_width=4),
        loss=OperatorLossConfig(lambda_id=5.0),
        data=OperatorDataConfig(crop=32, load_size=None, batch_size=4),
        buffer_size=6, epochs=None, max_steps=12, checkpoint_every_n_batches=1, checkpoint_every_n_epochs=0,
        log_every=1,
    )  # fmt: skip
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def run(cfg: OperatorConfig, toy: tuple[Path, Path], out: Path, **kwargs):
    save_config(cfg, out / "config.yaml")
    return fit_operator(cfg, *toy, out, accelerator="cpu", devices=1, progress=False, **kwargs)


# --- datasets --------------------------------------------------------------------------------------------------


def test_datasets_mixed_formats_crops_and_seeds(tmp_path: Path) -> None:
    img = smooth_images(1, 50, seed=3)[0]
    write_image(tmp_path / "clear" / "a.png", img)
    write_image(
        tmp_path / "clear" / "b.tif",
        img[:1, :40, :45],
        image_meta_for(img[:1], dtype="uint16", format="TIFF"),
    )
    write_image(tmp_path / "hazy" / "a.jpg", img[:, :20, :30])  # smaller than the crop: resized up
    ds = UnpairedFolders(tmp_path / "clear", tmp_path / "hazy", crop=24, seed=5)
    assert len(ds) == 2
    for key in (0, 1, (1, 99)):
        item = ds[key]
        assert item["clear"].shape == item["hazy"].shape == (3, 24, 24)
        assert 0 <= item["clear"].min() and item["hazy"].max() <= 1
    assert torch.equal(ds[(1, 7)]["clear"], ds[(1, 7)]["clear"])
    assert not torch.equal(ds[(0, 7)]["hazy"], ds[(0, 8)]["hazy"])
    grey = UnpairedFolders(tmp_path / "clear", tmp_path / "hazy", crop=16, channels=1)[0]
    assert grey["clear"].shape == (1, 16, 16)
    hazy = HazyFolder(tmp_path / "hazy", crop=None)[0]
    assert hazy["hazy"].shape == (3, 20, 30) and hazy["name"] == "a"
    (tmp_path / "empty").mkdir()
    with pytest.raises(EIDError, match="no clear images"):
        UnpairedFolders(tmp_path / "empty", tmp_path / "hazy")


def test_paired_folder_matches_names_and_sizes(tmp_path: Path) -> None:
    img = smooth_images(2, 48, seed=4)
    write_image(tmp_path / "clear" / "1400.png", img[0])
    write_image(tmp_path / "clear" / "7.png", img[1])
    write_image(
        tmp_path / "hazy" / "1400_1.png", img[0, :, 4:44, 4:44] * 0.5
    )  # SOTS-like: reference is larger
    write_image(tmp_path / "hazy" / "7.png", img[1] * 0.5)
    ds = PairedFolder(tmp_path / "hazy", tmp_path / "clear", crop=32, seed=0)
    names = sorted(ds[i]["name"] for i in range(len(ds)))
    assert names == ["1400_1", "7"]
    for i in range(len(ds)):
        item = ds[i]
        assert item["hazy"].shape == item["clear"].shape == (3, 32, 32)
        assert torch.allclose(item["hazy"], item["clear"] * 0.5, atol=2 / 255)  # same crop and flip
    write_image(tmp_path / "hazy" / "orphan.png", img[0])
    with pytest.raises(EIDError, match="without a clear reference"):
        PairedFolder(tmp_path / "hazy", tmp_path / "clear")


class _Indices(torch.utils.data.Dataset):
    """Ten items; an item is its index (keys are ``(index, item_seed)``)."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, key: tuple[int, int]) -> int:
        return key[0]


def test_sampler_shards_and_loader_resume_state() -> None:
    ranks = [list(SeededSampler(10, seed=3, num_replicas=2, rank=r)) for r in (0, 1)]
    assert sorted(i for r in ranks for i, _ in r) == list(range(10))
    assert len({s for r in ranks for _, s in r}) == 10
    data = _Indices()
    full = [b.tolist() for b in make_loader(data, 3, seed=1)]
    loader = make_loader(data, 3, seed=1)
    it = iter(loader)
    next(it), next(it)
    state = loader.state_dict()
    assert state == {"epoch": 0, "batches": 2}
    resumed = make_loader(data, 3, seed=1)
    resumed.load_state_dict(state)
    assert isinstance(resumed, ResumableLoader)
    assert [b.tolist() for b in resumed] == full[2:]
    assert [b.tolist() for b in resumed] == full  # the next pass is a whole epoch again


# --- training pieces -------------------------------------------------------------------------------------------


def test_replay_buffer_state_round_trip() -> None:
    buf = ReplayBuffer(3, seed=0)
    for k in range(5):
        buf.query(torch.full((2, 1, 2, 2), float(k)))
    copy = ReplayBuffer(3, seed=123)
    copy.load_state_dict(buf.state_dict(), torch.device("cpu"))
    new = torch.full((4, 1, 2, 2), 9.0)
    assert torch.equal(buf.query(new), copy.query(new))
    assert len(buf.images) == 3


def test_linear_decay_schedule() -> None:
    f = linear_decay(100, 0.5)
    assert f(0) == f(49) == 1.0 and f(75) == 0.5 and f(100) == 0.0


def test_losses_decrease_and_operator_learns_the_haze(
    toy: tuple[Path, Path], tmp_path: Path
) -> None:
    cfg = tiny_config(max_steps=60, checkpoint_every_n_batches=0)
    cfg.model = model_config(width=8, blocks=2, disc_width=8)
    cfg.optim.lr = 1e-3
    run(cfg, toy, tmp_path)
    with open(tmp_path / "logs" / "metrics.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("g_step")]
    assert len(rows) == 60
    windows = {}
    for name in ("g", "d", "gan", "cyc", "id"):
        values = [float(r[f"{name}_step"]) for r in rows]
        windows[name] = [sum(values[i : i + 10]) / 10 for i in range(0, 60, 10)]
    for name in ("g", "d", "cyc", "id"):
        assert windows[name][-1] < 0.8 * windows[name][0], (name, windows[name])
    # G's adversarial term falls first, then rises as D improves (a GAN equilibrium, not a minimum)
    assert min(windows["gan"]) < windows["gan"][0] and max(windows["gan"]) < 0.6, windows["gan"]
    physics = LearnedHaze.load(tmp_path)  # exported at every epoch end
    x = smooth_images(4, 32, seed=9)
    y = x * T + A * (1 - T)
    assert F.mse_loss(physics.A(x), y) < F.mse_loss(x, y)  # G_AB adds haze
    assert F.mse_loss(physics.A_dagger(y), x) < F.mse_loss(y, x)  # G_BA removes it
    assert max(p.name for p in (tmp_path / "samples").iterdir()) == "epoch0030.png"


def test_one_batch_epochs_write_grids_and_snapshots_at_most_every_50_batches(
    toy: tuple[Path, Path], tmp_path: Path
) -> None:
    """Eight images in one batch: 60 epochs of one batch must not leave 60 grids and 60 checkpoints."""
    cfg = tiny_config(max_steps=60, checkpoint_every_n_batches=0, checkpoint_every_n_epochs=1)
    cfg.data.batch_size = 8
    run(cfg, toy, tmp_path)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "epoch0001.png",
        "epoch0051.png",
        "epoch0060.png",
    ]
    snapshots = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert snapshots == ["epoch0001.ckpt", "epoch0051.ckpt", "epoch0060.ckpt", "last.ckpt"]
    assert (
        load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == 120
    )  # the end is always saved


class Crash(L.Callback):
    """Simulates a kill after batch ``at`` (the checkpoint of that batch has been written)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop.total_batch_idx + 1 == self.at:
            raise RuntimeError("simulated crash")


def test_resume_is_bit_exact(toy: tuple[Path, Path], tmp_path: Path) -> None:
    cfg = (
        tiny_config()
    )  # 12 batches = 6 epochs of 2; buffer of 6 fills up, LR decays over the second half
    reference, _ = run(cfg, toy, tmp_path / "straight")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(
            cfg, toy, tmp_path / "crashed", callbacks=[Crash(5)]
        )  # mid-epoch (epoch 3, batch 1 of 2)
    ckpt = prepare_run_dir(tmp_path / "crashed", resume=True)
    assert load_checkpoint(ckpt)["global_step"] == 10
    resumed, trainer = run(cfg, toy, tmp_path / "crashed", ckpt=ckpt)
    assert trainer.global_step == 24
    for (name, p), q in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name
    assert all(
        torch.equal(p, q) for p, q in zip(reference.buffer_a.images, resumed.buffer_a.images)
    )
    a, b = (
        load_checkpoint(tmp_path / d / "checkpoints" / "last.ckpt") for d in ("straight", "crashed")
    )
    assert (
        a["hyper_parameters"] == b["hyper_parameters"]
        and a["hyper_parameters"]["model"]["width"] == 4
    )
    for sa, sb in zip(a["optimizer_states"], b["optimizer_states"]):
        assert all(
            torch.equal(x["exp_avg"], y["exp_avg"])
            for x, y in zip(sa["state"].values(), sb["state"].values())
        )


def test_non_finite_loss_stops_without_checkpoint(
    toy: tuple[Path, Path], tmp_path: Path, monkeypatch
) -> None:
    from eid.models import ResnetGenerator

    monkeypatch.setattr(ResnetGenerator, "forward", lambda self, x: x * float("nan"))
    with pytest.raises(NonFiniteLossError, match="non-finite loss g") as info:
        run(tiny_config(), toy, tmp_path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()


def test_checkpoint_needing_pickle_is_refused(tmp_path: Path) -> None:
    torch.save({"state_dict": {}, "extra": Path("x")}, tmp_path / "evil.ckpt")
    with pytest.raises(EIDError, match="pickle"):
        load_checkpoint(tmp_path / "evil.ckpt")


# --- command line ----------------------------------------------------------------------------------------------


def test_cli_refuses_to_overwrite_and_needs_a_run_to_resume(
    toy: tuple[Path, Path], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from eid.cli import app

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("{}")
    args = ["train-operator", "--clear", str(toy[0]), "--hazy", str(toy[1]), "--max-steps", "1"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert isinstance(
        result.exception, EIDError
    ) and "holds no checkpoint to resume; remove it" in str(result.exception)
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "other"), "--resume"])
    assert isinstance(result.exception, EIDError) and "nothing to resume" in str(result.exception)


def test_ddp_two_cpu_processes(toy: tuple[Path, Path], tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.yaml"
    save_config(tiny_config(max_steps=2, checkpoint_every_n_batches=0), tiny)
    out = tmp_path / "ddp"
    eid = (
        Path(sys.executable).parent / "eid"
    )  # Lightning's DDP launcher re-runs this command per rank
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    cmd = [
        str(eid), "train-operator", "--clear", str(toy[0]), "--hazy", str(toy[1]), "--out", str(out), "--config", str(tiny),
        "--max-steps", "2", "--devices", "2", "--accelerator", "cpu", "--threads", "1",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = load_checkpoint(out / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 4  # 2 batches x (G step + D step)
    assert ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"][0] == {
        "epoch": 1,
        "batches": 1,
    }  # 8 / 2 ranks / 4
    physics = LearnedHaze.load(out)
    assert physics.A(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)


# --- the scattering operator ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def textured_toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Unpaired textured toy set: 8 clear images and the ASM haze (t=0.6, A=0.9) of 8 OTHER images."""
    root = tmp_path_factory.mktemp("textured")
    for folder, seed in (("clear", 1), ("hazy", 2)):
        g = torch.Generator().manual_seed(seed)
        images = F.interpolate(
            torch.rand(8, 3, 20, 20, generator=g), size=(40, 40), mode="bicubic"
        ).clamp(0, 1)
        for i, x in enumerate(images):
            write_image(
                root / folder / f"{folder[0]}{i}.png",
                x if folder == "clear" else x * T + A * (1 - T),
            )
    return root / "clear", root / "hazy"


def test_scattering_stage_1_recovers_the_toy_haze(
    textured_toy: tuple[Path, Path], tmp_path: Path
) -> None:
    """300 steps of tiny networks: H's mean t within 0.15 of 0.6 and its added light (1-t)a within 0.06 of 0.36."""
    from eid.physics import ScatteringHaze, load_operator

    cfg = tiny_config(max_steps=300, checkpoint_every_n_batches=300, log_every=50)
    cfg.model = model_config(kind="scattering", width=4, scales=2, disc_width=8, disc_norm="none")
    cfg.optim.lr = 1e-3
    run(cfg, textured_toy, tmp_path / "run")
    operator = load_operator(tmp_path / "run")
    assert isinstance(operator, ScatteringHaze)
    g = torch.Generator().manual_seed(3)
    x = F.interpolate(torch.rand(8, 3, 20, 20, generator=g), size=(40, 40), mode="bicubic").clamp(
        0, 1
    )
    maps = operator.maps(x)
    t, added = maps["transmission"].mean(), ((1 - maps["transmission"]) * maps["airlight"]).mean()
    assert abs(float(t) - T) < 0.15, float(t)
    assert abs(float(added) - (1 - T) * A) < 0.06, float(added)


def test_scattering_runs_resume_and_export_their_maps(
    toy: tuple[Path, Path], tmp_path: Path
) -> None:
    from eid.physics import load_operator

    cfg = tiny_config(max_steps=4)
    cfg.model = model_config(kind="scattering", width=4, scales=2, disc_width=4, airlight="veil")
    run(cfg, toy, tmp_path / "run")
    cfg.max_steps = 6
    run(cfg, toy, tmp_path / "run", ckpt=tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert (
        load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 12
    )  # G and D steps
    maps = load_operator(tmp_path / "run").maps(torch.rand(1, 3, 24, 24))
    assert maps["airlight"].shape == (1, 3, 24, 24)
    grids = sorted((tmp_path / "run" / "samples").glob("*.png"))
    assert grids, "the sample grid shows the maps"


@pytest.mark.parametrize(
    ("weight", "term", "trained", "untouched"),
    [
        ("lambda_dcp", "dcp", "estimator", "hazer"),
        ("lambda_dcp_pair", "dcp_pair", "hazer", "estimator"),
    ],
)
def test_each_dark_channel_prior_term_trains_only_its_network(
    weight: str, term: str, trained: str, untouched: str
) -> None:
    """``lambda_dcp`` pulls the estimator towards DCP's maps; ``lambda_dcp_pair`` (``|H(J_DCP(b)) - b|``) makes the
    hazer re-create the real haze from DCP's estimate. Each leaves the other network alone."""
    from eid.training.operator import operator_module

    cfg = tiny_config()
    cfg.model = model_config(kind="scattering", width=4, scales=2, disc_width=4)
    setattr(cfg.loss, weight, 1.0)
    module = operator_module(cfg)
    g = torch.Generator().manual_seed(0)
    b = torch.rand(2, 3, 32, 32, generator=g)
    terms, _, _ = module.generator_losses(torch.rand(2, 3, 32, 32, generator=g), b)
    assert torch.isfinite(terms[term]) and terms[term] > 0
    terms[term].backward()
    assert all(p.grad is None for p in getattr(module.operator, untouched).parameters())
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0
        for p in getattr(module.operator, trained).parameters()
    )
