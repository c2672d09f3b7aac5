"""Dataset preparation: Cholec80-Haze from videos, RESIDE naming and splits, Cell97-Haze synthesis."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from typer.testing import CliRunner

from eid.data.io import read_image
from eid.data.video import VideoWriter
from eid.errors import EIDError
from eid.prepare import (
    FieldOfView,
    RESIDEPairs,
    cholec80_split,
    crop_to,
    detect_fov,
    parse_reside_name,
    prepare_cell97,
    prepare_cholec80,
    prepare_reside,
    scan_reside,
)

# ----------------------------------------------------------------------------------------- Cholec80

H, W, FPS = 64, 96, 4


def endoscope_frame(t: int, smoky: bool, seed: int) -> torch.Tensor:
    """A red textured disc (radius 36, clipped at top and bottom) on black; smoke = a grey veil."""
    g = torch.Generator().manual_seed(seed * 100 + t)
    yy, xx = torch.meshgrid(
        torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij"
    )
    disc = ((yy - 31.5) ** 2 + (xx - 47.5) ** 2) <= 36**2
    texture = 0.1 * torch.rand(1, H, W, generator=g)
    tissue = torch.tensor([0.75, 0.12, 0.08]).view(3, 1, 1) + texture
    if smoky:
        tissue = 0.45 * tissue + 0.5
    return (tissue * disc).clamp(0, 1)


def write_endoscopy_video(path: Path, frames: int = 8, seed: int = 0) -> Path:
    """``frames`` frames at 4 fps; the second half is smoky."""
    with VideoWriter(path, fps=FPS, width=W, height=H) as writer:
        for t in range(frames):
            writer.write(endoscope_frame(t, smoky=t >= frames // 2, seed=seed))
    return path


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    write_endoscopy_video(folder / "video01.mp4", seed=1)
    write_endoscopy_video(folder / "video45.mp4", seed=2)
    (folder / "README.txt").write_text("not a video")
    return folder


def read_manifest(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_detect_fov_finds_the_clipped_disc() -> None:
    fov = detect_fov(torch.stack([endoscope_frame(t, False, 0) for t in range(3)]))
    assert fov is not None
    assert (fov.cx, fov.cy) == pytest.approx((48.0, 32.0), abs=1.0)
    assert fov.radius == pytest.approx(36.5, abs=1.0)
    assert fov.square(W, H) == (
        0,
        16,
        64,
    )  # diameter limited by the frame height, centred on the disc
    assert detect_fov(torch.zeros(3, H, W)) is None


def test_cholec80_split_by_video() -> None:
    assert cholec80_split("video01") == "train" and cholec80_split("video41") == "test"
    assert (
        cholec80_split("video01", ["1"]) == "test"
        and cholec80_split("video41", ["video02"]) == "train"
    )
    assert cholec80_split("case") == cholec80_split("case")


def test_prepare_cholec80_sorts_frames_by_smoke(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = prepare_cholec80(videos, out, fps=2, size=32, progress=False)
    rows = read_manifest(out / "manifest.csv")
    assert [(r["video"], int(r["frame"]), r["label"], r["split"]) for r in rows] == [
        ("video01", 0, "clear", "train"), ("video01", 2, "clear", "train"),
        ("video01", 4, "hazy", "train"), ("video01", 6, "hazy", "train"),
        ("video45", 0, "clear", "test"), ("video45", 2, "clear", "test"),
        ("video45", 4, "hazy", "test"), ("video45", 6, "hazy", "test"),
    ]  # fmt: skip
    assert float(rows[0]["time"]) == pytest.approx(0.0) and float(rows[1]["time"]) == pytest.approx(
        0.5
    )
    assert summary.written == {"train/clear": 2, "train/hazy": 2, "test/clear": 2, "test/hazy": 2}
    for row in rows:
        image, _ = read_image(out / row["path"])
        assert image.shape == (3, 32, 32)
        assert float(row["score"]) < 0.15 if row["label"] == "clear" else float(row["score"]) > 0.3
    assert sorted(p.name for p in (out / "test" / "hazy").iterdir()) == [
        "video45_000004.png",
        "video45_000006.png",
    ]
    corner, centre = image[:, 0, 0], image[:, 16, 16]
    assert corner.max() < 0.05 < centre.min()  # black outside the field of view is kept


def test_prepare_cholec80_resumes_without_duplicates(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_cholec80(videos, out, fps=2, size=32, progress=False)
    first = (out / "manifest.csv").read_text()
    again = prepare_cholec80(videos, out, fps=2, size=32, progress=False)
    assert again.written == {} and (out / "manifest.csv").read_text() == first
    # simulate a crash in the middle of video45: its last rows are lost, one line half-written
    lines = first.splitlines(keepends=True)
    (out / "manifest.csv").write_text("".join(lines[:-2]) + lines[-2][:10])
    state = (out / "prepare.json").read_text().replace('"done": true', '"done": false')
    (out / "prepare.json").write_text(state)
    resumed = prepare_cholec80(videos, out, fps=2, size=32, progress=False)
    assert resumed.written == {"test/hazy": 2} and resumed.skipped == 6
    assert (out / "manifest.csv").read_text() == first
    assert len(list((out / "test" / "hazy").iterdir())) == 2
    with pytest.raises(EIDError, match="other settings"):
        prepare_cholec80(videos, out, fps=1, size=32, progress=False)


def test_prepare_cholec80_bad_inputs(tmp_path: Path, videos: Path) -> None:
    (videos / "video02.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(EIDError, match="video02.mp4: cannot read video"):
        prepare_cholec80(videos, tmp_path / "out", fps=2, size=32, progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EIDError, match="no video files"):
        prepare_cholec80(empty, tmp_path / "out2", progress=False)
    with pytest.raises(EIDError, match="inside the input folder"):
        prepare_cholec80(videos, videos / "out", progress=False)
    with pytest.raises(EIDError, match="must not exceed"):
        prepare_cholec80(videos, tmp_path / "out3", t_clear=0.5, t_hazy=0.2, progress=False)


@pytest.mark.parametrize("score", ["dark-channel", "fade"])
def test_smoke_scores_separate_the_shared_cholec80_frames(shared_data: Path, score: str) -> None:
    from eid.metrics.haze_score import SCORERS
    from eid.prepare.cholec80 import DEFAULT_THRESHOLDS, disc_mask
    from eid.prepare.common import resize_square as resize

    mask = disc_mask(256, 128, erode=4.5)
    t_clear, t_hazy = DEFAULT_THRESHOLDS[score]
    scores = {}
    for path in sorted((shared_data / "cholec80-smoke").glob("*/*.png")):
        image, _ = read_image(path)
        scores[path.parent.name, path.stem] = SCORERS[score](resize(image, 256), mask)
    assert all(s < t_clear for (kind, _), s in scores.items() if kind == "clear")
    assert all(s > t_hazy for (kind, _), s in scores.items() if kind == "hazy")


# -------------------------------------------------------------------------------------------- RESIDE


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def its(tmp_path: Path) -> Path:
    root = tmp_path / "ITS"
    for scene in range(1, 11):
        save(root / "clear" / f"{scene}.png", rgb(12, 16, scene))
        for k, a in ((1, "0.90179"), (2, "0.8")):
            save(root / "hazy" / f"{scene}_{k}_{a}.png", rgb(12, 16, 100 + scene * 10 + k))
    return root


def test_parse_reside_names() -> None:
    assert parse_reside_name("1400_3", "id_k").scene == "1400"
    name = parse_reside_name("0001_0.8_0.2", "id_A_beta")
    assert (name.scene, name.airlight, name.beta) == ("0001", 0.8, 0.2)
    assert parse_reside_name("1_1_0.90179", "id_k_A").variant == "1"
    assert parse_reside_name("hazy", "id_k") is None


def test_reside_its_unpaired_train_scenes_are_disjoint(its: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = prepare_reside(its, "its", out, seed=3, test_fraction=0.2, progress=False)
    assert summary.written == {"train/hazy": 8, "train/clear": 4, "test/hazy": 4, "test/clear": 4}
    scene = lambda p: p.stem.split("_")[0]
    hazy_scenes = {scene(p) for p in (out / "train" / "hazy").iterdir()}
    clear_scenes = {scene(p) for p in (out / "train" / "clear").iterdir()}
    test_scenes = {scene(p) for p in (out / "test" / "hazy").iterdir()}
    assert not hazy_scenes & clear_scenes and not test_scenes & (hazy_scenes | clear_scenes)
    assert len(hazy_scenes | clear_scenes | test_scenes) == 10
    # paired test set: the clear file carries the hazy file's name and the scene's pixels
    for hazy in (out / "test" / "hazy").iterdir():
        assert (out / "test" / "clear" / hazy.name).read_bytes() == (
            its / "clear" / f"{scene(hazy)}.png"
        ).read_bytes()
    # same seed, same split; a rerun writes nothing
    again = prepare_reside(its, "its", out, seed=3, test_fraction=0.2, progress=False)
    assert again.written == {} and again.skipped == 20
    other = prepare_reside(
        its, "its", tmp_path / "other", seed=4, test_fraction=0.2, progress=False
    )
    assert other.written == summary.written
    rows = read_manifest(out / "manifest.csv")
    assert {r["airlight"] for r in rows if r["kind"] == "hazy"} == {"0.90179", "0.8"}


def test_reside_max_hazy_per_scene(its: Path, tmp_path: Path) -> None:
    summary = prepare_reside(
        its, "its", tmp_path / "out", test_fraction=0.0, max_hazy_per_scene=1, progress=False
    )
    assert summary.written == {"train/hazy": 5, "train/clear": 5}


def test_reside_sots_indoor_crops_the_gt_border(tmp_path: Path) -> None:
    root = tmp_path / "SOTS" / "indoor"
    inner = rgb(20, 24, 1)
    gt = np.full((40, 44, 3), 200, np.uint8)
    gt[10:30, 10:34] = inner
    save(root / "gt" / "1400.png", gt)
    for k in (1, 2):
        save(root / "hazy" / f"1400_{k}.png", rgb(20, 24, 10 + k))
    pairs = RESIDEPairs(tmp_path / "SOTS", "sots-indoor")
    assert len(pairs) == 2 and pairs[1]["name"] == "1400_2"
    assert torch.equal(pairs[0]["clear"], torch.from_numpy(inner).permute(2, 0, 1).float() / 255)
    out = tmp_path / "out"
    assert prepare_reside(root, "sots-indoor", out, progress=False).written == {
        "test/hazy": 2,
        "test/clear": 2,
    }
    clear, _ = read_image(out / "test" / "clear" / "1400_1.png")
    assert clear.shape == (3, 20, 24) and torch.equal(clear, pairs[0]["clear"])


def test_reside_sots_outdoor_and_rtts(tmp_path: Path) -> None:
    outdoor = tmp_path / "outdoor"
    save(outdoor / "gt" / "0001.png", rgb(8, 8, 0))
    save(outdoor / "hazy" / "0001_0.8_0.2.jpg", rgb(8, 8, 1))
    save(outdoor / "hazy" / "0001_1_0.16.jpg", rgb(8, 8, 2))
    items = scan_reside(outdoor, "sots-outdoor")
    assert [(i.name.airlight, i.name.beta, i.clear.name) for i in items] == [
        (0.8, 0.2, "0001.png"),
        (1.0, 0.16, "0001.png"),
    ]
    rtts = tmp_path / "RTTS"
    save(rtts / "JPEGImages" / "AM_Bing_211.png", rgb(8, 8, 3))
    (rtts / "Annotations").mkdir()
    assert set(RESIDEPairs(rtts, "rtts")[0]) == {"hazy", "name"}
    summary = prepare_reside(rtts, "rtts", tmp_path / "rtts-out", progress=False)
    assert summary.written == {"test/hazy": 1}


def test_reside_broken_inputs(its: Path, tmp_path: Path) -> None:
    (its / "clear" / "3.png").unlink()
    with pytest.raises(
        EIDError, match=r"2 hazy image\(s\) .* no clear image .*3_1_0.90179.png needs 3.png"
    ):
        scan_reside(its, "its")
    assert len(scan_reside(its, "its", allow_missing=True)) == 18
    save(its / "hazy" / "oops.png", rgb(4, 4, 0))
    with pytest.raises(EIDError, match="oops.png: name does not follow"):
        scan_reside(its, "its", allow_missing=True)
    (tmp_path / "nowhere").mkdir()
    with pytest.raises(EIDError, match="no hazy folder"):
        scan_reside(tmp_path / "nowhere", "its")
    with pytest.raises(EIDError, match="unknown RESIDE subset"):
        scan_reside(its, "nyu")
    with pytest.raises(EIDError, match="only a centred border"):
        crop_to(torch.zeros(3, 10, 10), 9, 10, "x.png")


def test_reside_real_sots_sample(shared_data: Path) -> None:
    sample = shared_data / "sots-indoor-sample"
    items = {i.hazy.stem: i.clear.name for i in scan_reside(sample, "sots-indoor")}
    assert items == {
        "1400_10": "1400_10.png",
        "1400_3": "1400_10.png",
        "1401_10": "1401_10.png",
        "1402_10": "1402_10.png",
    }
    clear, _ = read_image(sample / "clear" / "1400_10.png")
    uncropped, _ = read_image(sample / "clear-640x480" / "1400.png")
    assert torch.equal(crop_to(uncropped, 460, 620), clear)


def test_cli_reside(its: Path, tmp_path: Path) -> None:
    from eid.cli import app

    result = CliRunner().invoke(
        app,
        [
            "data",
            "reside",
            "--root",
            str(its),
            "--subset",
            "its",
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "o" / "train" / "hazy").iterdir())) == 8


# --------------------------------------------------------------------------------------------- Cell97


@pytest.fixture
def murphy(tmp_path: Path) -> Path:
    root = tmp_path / "nuclei"
    rng = np.random.default_rng(0)
    (root / "gnf").mkdir(parents=True)
    for i in range(3):
        tifffile.imwrite(
            root / "gnf" / f"dna-{i}.tif", (rng.random((24, 32)) * 3000).astype(np.uint16)
        )
        save(root / "ic100" / f"dna-{i}.png", (rng.random((24, 32)) * 255).astype(np.uint8))
    save(
        root / "gnf" / "segmented" / "dna-0.png", np.zeros((24, 32), np.uint8)
    )  # hand segmentation, not an image to haze
    tifffile.imwrite(
        root / "ic100" / "stack.tif", np.zeros((3, 5, 24, 32), np.uint16)
    )  # multi-page stack: skipped
    (root / "README").write_text("Murphy lab")
    return root


def test_prepare_cell97_pairs_keep_bit_depth_and_are_seeded(murphy: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="stack.tif"):
        summary = prepare_cell97(murphy, tmp_path / "a", seed=1, test_fraction=0.34, progress=False)
    written = summary.written
    assert (
        written["unreadable"] == 1
        and written["train/pairs"] + written["test/pairs"] == 6
        and written["test/pairs"] >= 1
    )
    rows = read_manifest(tmp_path / "a" / "manifest.csv")
    assert {r["name"] for r in rows} == {
        f"{c}_dna-{i}.{e}" for c, e in (("gnf", "tif"), ("ic100", "png")) for i in range(3)
    }
    for row in rows:
        clear, meta = read_image(tmp_path / "a" / row["split"] / "clear" / row["name"], white="max")
        hazy, hmeta = read_image(
            tmp_path / "a" / row["split"] / "hazy" / row["name"], white=meta.white
        )
        assert meta.dtype == hmeta.dtype == ("uint16" if row["name"].endswith(".tif") else "uint8")
        assert 0.55 <= float(row["contrast"]) <= 0.75 and 0.1 <= float(row["veil"]) <= 0.2
        assert (hazy - clear).abs().mean() > 0.02  # hazed
        source, _ = read_image(murphy / row["source"])
        assert torch.allclose(
            clear * meta.white, source * (65535 if meta.dtype == "uint16" else 255), atol=0.51
        )
    with pytest.warns(UserWarning):
        prepare_cell97(murphy, tmp_path / "b", seed=1, test_fraction=0.34, progress=False)
    for path in (tmp_path / "a").rglob("*dna*"):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
    with pytest.warns(UserWarning):
        assert (
            prepare_cell97(
                murphy, tmp_path / "a", seed=1, test_fraction=0.34, progress=False
            ).skipped
            == 6
        )


def test_prepare_cell97_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(EIDError, match="not found"):
        prepare_cell97(tmp_path / "missing", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EIDError, match="no images"):
        prepare_cell97(tmp_path / "empty", tmp_path / "out", progress=False)


def test_fov_square_is_clamped_inside_the_frame() -> None:
    assert FieldOfView(5.0, 5.0, 10.0).square(40, 30) == (0, 0, 20)
    assert FieldOfView(38.0, 28.0, 30.0).square(40, 30, side=16) == (14, 24, 16)
