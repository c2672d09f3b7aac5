"""The "Dehaze layer" dock widget: an image layer through an ``eid train`` run's dehazer, in a worker thread.

The widget only gathers the choices (layer, run folder, tile, TTA, precision) and shows progress; the work is
:func:`eid.napari.planes.dehaze_planes` with the :class:`eid.Dehazer` that ``eid dehaze`` uses. The result is a new
layer with the input's scale, translate and colour map, so it lies exactly over its input.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)
from napari.layers import Image
from napari.utils.notifications import show_error
from superqt.utils import GeneratorWorker, thread_worker

from eid.errors import EIDError
from eid.napari.planes import AUTO_TILE, PRECISIONS, build_runner, dehaze_planes, plane_count

if TYPE_CHECKING:
    import napari


class DehazeWidget(Container):
    """Choose an image layer and a run folder, press Dehaze: the result is added as ``<name> dehazed``."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        self.viewer = napari_viewer
        self.layer = ComboBox(label="image", choices=self._image_layers)
        self.run_folder = FileEdit(
            label="run folder", mode="d", tooltip="A folder written by eid train"
        )
        self.tile = SpinBox(
            label="tile (-1: auto)",
            value=AUTO_TILE,
            min=AUTO_TILE,
            max=16384,
            step=64,
            tooltip="Tile side in pixels; -1: eid dehaze's default (512 times the model's space-to-depth "
            "factor); 0: whole image",
        )
        self.tta = CheckBox(text="test-time augmentation", value=False)
        self.precision = ComboBox(label="precision", choices=PRECISIONS, value="auto")
        self.button = PushButton(text="Dehaze")
        self.progress = ProgressBar(label="planes", value=0, visible=False)
        self.status = Label(value="")
        super().__init__(
            widgets=[
                self.layer,
                self.run_folder,
                self.tile,
                self.tta,
                self.precision,
                self.button,
                self.progress,
                self.status,
            ]
        )
        self.button.changed.connect(self.start)
        self.viewer.layers.events.inserted.connect(self.layer.reset_choices)
        self.viewer.layers.events.removed.connect(self.layer.reset_choices)

    def _image_layers(self, _widget: object = None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def worker(self) -> GeneratorWorker:
        """The (not yet started) worker dehazing the chosen layer, wired to the progress bar and the viewer."""
        layer: Image | None = self.layer.value
        if layer is None:
            raise EIDError("no image layer to dehaze; open an image first")
        runner = build_runner(
            Path(self.run_folder.value), self.tile.value, self.tta.value, self.precision.value
        )
        self.progress.max, self.progress.value, self.progress.visible = (
            plane_count(layer.data.shape, layer.rgb),
            0,
            True,
        )
        self.button.enabled, self.status.value = False, f"dehazing {layer.name}..."
        work = thread_worker(dehaze_planes, start_thread=False)(layer.data, runner, layer.rgb)
        work.yielded.connect(self._step)
        work.returned.connect(lambda result: self._add_result(layer, result))
        work.errored.connect(lambda exc: show_error(f"dehazing failed: {exc}"))
        work.finished.connect(self._done)
        return work

    def start(self) -> None:
        """Button action: start the worker thread (errors in the choices are shown, not raised)."""
        try:
            self.worker().start()
        except (
            EIDError,
            OSError,
        ) as exc:  # a wrong folder or an unreadable run: a notification, napari goes on
            show_error(str(exc))
            self._done()

    def _step(self, done: int) -> None:
        self.progress.value = done

    def _add_result(self, layer: Image, result: np.ndarray) -> Image:
        colormap = None if layer.rgb else layer.colormap
        return self.viewer.add_image(
            result, name=f"{layer.name} dehazed", scale=layer.scale, translate=layer.translate, rgb=layer.rgb,
            colormap=colormap, contrast_limits=layer.contrast_limits,
        )  # fmt: skip

    def _done(self) -> None:
        self.button.enabled, self.status.value = True, ""
