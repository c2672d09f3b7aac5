"""Property-based fault tests (issue 17): ``eid dehaze --method dcp`` and ``eid evaluate`` over drawn image shapes,
sample types, sizes and option values. Whatever is drawn, a run ends with a documented exit code (0 done, 1 some
files skipped with a line each, 2 refused with one ``error:`` line), never a traceback; what is written keeps the
input's size, channels and sample type, and JSON is valid. 25 examples each (about 15 s in all)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: Few examples without deadline: each runs the real CLI; function-scoped fixtures are reset by hand per example.
FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

#: Sample types with the formats that store them (float only in TIFF), and their channel counts.
KINDS = {
    "uint8": (".png", ".tif", ".jpg", ".bmp", ".webp"),
    "uint16": (".png", ".tif"),
    "float32": (".tif",),
}


@st.composite
def images(draw: st.DrawFn, like: tuple[np.ndarray, str] | None = None) -> tuple[np.ndarray, str]:
    """An image array (grey, RGB or RGBA; odd and tiny sizes included) and a suffix that can store it; ``like``: an
    image whose sample type and suffix to keep (its channels and size are drawn anew)."""
    dtype = like[0].dtype.name if like else draw(st.sampled_from(sorted(KINDS)))
    suffix = like[1] if like else draw(st.sampled_from(KINDS[dtype]))
    channels = draw(st.sampled_from((1, 3) if suffix in (".jpg", ".bmp") else (1, 3, 4)))
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype == "float32":
        array = rng.random(shape, dtype=np.float32)
    else:
        array = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    return array, suffix


def _write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".tif":
        tifffile.imwrite(path, array, photometric="rgb" if array.ndim == 3 else "minisblack")
    elif path.suffix == ".png":  # libpng: 16-bit colour too, which Pillow cannot write
        path.write_bytes(imagecodecs.png_encode(array))
    else:
        Image.fromarray(array).save(path)
    return path


def _read(path: Path) -> np.ndarray:
    if path.suffix == ".tif":
        return tifffile.imread(path)
    return (
        imagecodecs.png_decode(path.read_bytes())
        if path.suffix == ".png"
        else np.asarray(Image.open(path))
    )


def _check_outcome(run, name: str) -> None:
    """The exit code is a documented one, without a traceback; a refusal is one ``error:`` line, a skip names the file."""
    assert "Traceback" not in run.err, run.err
    assert run.code in (0, 1, 2), run.err
    if run.code == 2:
        run.error_line()
    if run.code == 1:
        assert name in run.err


@FAST
@given(image=images())
def test_dcp_keeps_size_channels_and_sample_type(eid_cli, image):
    array, suffix = image
    with tempfile.TemporaryDirectory() as tmp:
        src = _write(Path(tmp) / "in" / f"x{suffix}", array)
        run = eid_cli(
            "dehaze", "--method", "dcp", "--device", "cpu", src.parent, "--out", Path(tmp) / "out"
        )
        _check_outcome(run, src.name)
        if run.code == 0:
            out = _read(Path(tmp) / "out" / src.name)
            expected = _read(src)  # as stored (e.g. JPEG has no alpha; the file's own layout)
            assert out.shape == expected.shape and out.dtype == expected.dtype


OPTIONS = st.one_of(
    st.tuples(st.just("--tile"), st.integers(-3, 70).map(str)),
    st.tuples(st.just("--overlap"), st.integers(-3, 40).map(str)),
    st.tuples(st.just("--batch-size"), st.integers(-2, 5).map(str)),
    st.tuples(st.just("--max-pixels"), st.integers(-5, 2000).map(str)),
    st.tuples(
        st.just("--white"),
        st.sampled_from(["dtype", "max", "0", "-1", "nan", "inf", "4095", "1", "x"]),
    ),
    st.tuples(st.just("--threads"), st.integers(-2, 2).map(str)),
)


@FAST
@given(options=st.lists(OPTIONS, min_size=1, max_size=3), side=st.integers(1, 48))
def test_dcp_options_give_a_documented_outcome(eid_cli, options, side):
    with tempfile.TemporaryDirectory() as tmp:
        src = _write(Path(tmp) / "in" / "x.png", np.full((side, side + 3, 3), 140, np.uint8))
        flags = [value for option in options for value in option]
        run = eid_cli(
            "dehaze",
            "--method",
            "dcp",
            "--device",
            "cpu",
            src.parent,
            "--out",
            Path(tmp) / "out",
            *flags,
        )
        _check_outcome(run, src.name)
        if run.code == 0:
            assert _read(Path(tmp) / "out" / "x.png").shape == (side, side + 3, 3)


def _refuse_nan(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


EVALUATE_OPTIONS = st.one_of(
    st.tuples(st.just("--white"), st.sampled_from(["dtype", "max", "0", "-1", "nan", "4095", "1"])),
    st.tuples(st.just("--max-pixels"), st.integers(-1, 1600).map(str)),
)


@FAST
@given(data=st.data(), metrics=st.sampled_from(["psnr", "ssim", "psnr,ssim", "brisque"]),
       options=st.lists(EVALUATE_OPTIONS, max_size=2))  # fmt: skip
def test_evaluate_gives_valid_json_or_one_line(eid_cli, data, metrics, options):
    pred = data.draw(images(), label="pred")
    ref = data.draw(
        st.one_of(st.just(pred), images(like=pred)), label="ref"
    )  # the same image, or another of its kind
    with tempfile.TemporaryDirectory() as tmp:
        name = "x" + pred[1]
        _write(Path(tmp) / "pred" / name, pred[0])
        _write(Path(tmp) / "ref" / name, ref[0])
        report = Path(tmp) / "m.json"
        run = eid_cli("evaluate", "--pred", Path(tmp) / "pred", "--ref", Path(tmp) / "ref", "--metrics", metrics,
                      "--json", report, "--device", "cpu", *[value for option in options for value in option])  # fmt: skip
        _check_outcome(run, name)
        if run.code == 0:
            document = json.loads(report.read_text(), parse_constant=_refuse_nan)
            assert set(document["metrics"]) == set(metrics.split(","))
