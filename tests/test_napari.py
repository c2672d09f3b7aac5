"""The napari plugin (issue 22): manifest, both widgets headless, and one screenshot of napari under Xvfb.

Skipped as a whole without napari, magicgui and npe2 (``pip install 'eid-dehaze[napari]'``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault(
    "QT_QPA_PLATFORM", "offscreen"
)  # headless widgets: before anything creates the Qt app
napari = pytest.importorskip("napari")
pytest.importorskip("magicgui")
npe2 = pytest.importorskip("npe2")

from napari.components import ViewerModel

from eid.inference import Dehazer
from eid.napari import compare_widget, dehaze_widget

MANIFEST = resources.files("eid.napari") / "napari.yaml"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stage-2 run of one step on the ASM oracle: a real dehazer.safetensors for the widget to load."""
    from eid.data.io import write_image
    from eid.models.dehazer import DehazerConfig
    from eid.training.eid import fit_eid
    from eid.training.eid_config import EIDConfig

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("napari")
    for i in range(2):
        write_image(
            root / "hazy" / f"h{i}.png",
            torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(i)),
        )
    cfg = EIDConfig(
        operator="asm", asm_transmission=0.6, asm_airlight=0.9, model=DehazerConfig(channels=1, scales=2, width=4),
        epochs=None, max_steps=1, batch_size=2, crop=16, checkpoint_every_n_batches=0, adversarial_weight=0.0,
    )  # fmt: skip
    fit_eid(
        cfg,
        [root / "hazy"],
        root / "run",
        accelerator="cpu",
        devices=1,
        progress=False,
        samples=False,
    )
    return root / "run"


def test_manifest_is_valid_and_importable() -> None:
    manifest = npe2.PluginManifest.from_file(str(MANIFEST))
    manifest.validate_imports()
    assert [w.display_name for w in manifest.contributions.widgets] == ["Dehaze layer", "Compare"]


def test_dehaze_widget_adds_the_result_over_its_input(run_folder: Path) -> None:
    viewer = ViewerModel()
    stack = np.random.default_rng(0).integers(0, 65536, (3, 20, 28), dtype=np.uint16)
    viewer.add_image(stack, name="cells", scale=(2.0, 0.5, 0.5), translate=(1.0, 10.0, 20.0))
    widget = dehaze_widget.DehazeWidget(viewer)
    widget.run_folder.value, widget.tile.value, widget.precision.value = run_folder, 0, "fp32"
    assert widget.layer.value is viewer.layers["cells"]
    widget.worker().run()  # the worker's body, in this thread
    result = viewer.layers["cells dehazed"]
    assert result.data.shape == stack.shape and result.data.dtype == np.uint16
    assert tuple(result.scale) == (2.0, 0.5, 0.5) and tuple(result.translate) == (1.0, 10.0, 20.0)
    expected = Dehazer.load(run_folder, tile=None, precision="fp32")(stack[1])
    np.testing.assert_array_equal(result.data[1], expected)
    assert widget.progress.value == 3 and widget.button.enabled


def test_the_widget_tile_defaults_to_eid_dehazes(run_folder: Path) -> None:
    """-1 (the widget's default) is the CLI's default tile, 0 the whole image, any other value that side."""
    from eid.napari.planes import AUTO_TILE, build_runner

    widget = dehaze_widget.DehazeWidget(ViewerModel())
    assert widget.tile.value == AUTO_TILE
    assert (
        build_runner(run_folder, AUTO_TILE, False, "fp32").plan.tile == 512
    )  # full-resolution UNet
    assert build_runner(run_folder, 0, False, "fp32").plan.tile is None
    assert build_runner(run_folder, 128, False, "fp32").plan.tile == 128


def test_dehaze_widget_reports_a_wrong_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[str] = []
    monkeypatch.setattr(dehaze_widget, "show_error", shown.append)
    viewer = ViewerModel()
    viewer.add_image(np.zeros((8, 8), np.uint8))
    widget = dehaze_widget.DehazeWidget(viewer)
    widget.run_folder.value = tmp_path
    widget.start()
    assert len(shown) == 1 and "dehazer.safetensors" in shown[0] and widget.button.enabled


def test_compare_side_by_side_and_swipe(monkeypatch: pytest.MonkeyPatch) -> None:
    viewer = ViewerModel()
    before = viewer.add_image(
        np.zeros((10, 40, 3), np.uint8), name="in", rgb=True, translate=(5, 5)
    )
    after = viewer.add_image(
        np.full((10, 40, 3), 200, np.uint8), name="out", rgb=True, translate=(5, 5)
    )
    viewer.add_image(np.ones((4, 4)), name="other")
    widget = compare_widget.CompareWidget(viewer)
    widget.before.value, widget.after.value = before, after
    widget.compare()
    assert viewer.grid.enabled and not viewer.layers["other"].visible
    widget.mode.value = "swipe"
    widget.cut.value = 0.25
    widget.compare()
    shown = viewer.layers[compare_widget.SWIPE_LAYER]
    assert not viewer.grid.enabled and tuple(shown.translate) == (5, 5)
    assert (shown.data[:, :10] == 200).all() and (shown.data[:, 10:] == 0).all()
    widget.cut.value = 0.5  # the slider moves the cut
    assert (viewer.layers[compare_widget.SWIPE_LAYER].data[:, :20] == 200).all()
    errors: list[str] = []
    monkeypatch.setattr(compare_widget, "show_error", errors.append)
    widget.after.value = before
    widget.start()
    assert errors == ["choose an input layer and a different result layer"]


_SCREENSHOT = """
import sys, napari, skimage
from eid.napari.compare_widget import CompareWidget
from eid.napari.dehaze_widget import DehazeWidget
viewer = napari.Viewer(show=True)
viewer.add_image(skimage.data.camera() * 0.6 + 0.4 * 230, name="hazy", contrast_limits=(0, 255))
viewer.window.add_dock_widget(DehazeWidget(viewer), name="Dehaze layer", area="right")
viewer.window.add_dock_widget(CompareWidget(viewer), name="Compare", area="right")
napari.qt.get_qapp().processEvents()
viewer.screenshot(sys.argv[1], canvas_only=False)
viewer.close()
"""


def test_napari_opens_with_the_widget_under_xvfb(tmp_path: Path) -> None:
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    display = f":{90 + os.getpid() % 50}"
    server = subprocess.Popen(
        [xvfb, display, "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        if server.poll() is not None:
            pytest.skip(f"Xvfb could not start on display {display}")
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
        shot = tmp_path / "napari_dehaze_widget.png"
        done = subprocess.run(
            [sys.executable, "-c", _SCREENSHOT, str(shot)],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0 and "Qt platform plugin" in done.stderr:
            pytest.skip(
                f"Qt cannot open a window under Xvfb: {done.stderr.strip().splitlines()[-1]}"
            )
        assert done.returncode == 0, done.stderr[-2000:]
        from PIL import Image

        with Image.open(shot) as image:
            assert image.width > 400 and image.height > 300
    finally:
        server.terminate()
        server.wait()
