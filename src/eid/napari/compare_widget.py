"""The "Compare" dock widget: an input and its result side by side (napari's grid) or as a swipe.

Side by side shows only the two layers, one per grid cell, with linked cameras. The swipe is one extra layer,
``swipe``, showing the result left of a slider's position and the input right of it
(:func:`eid.napari.planes.swipe`), over both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, Container, FloatSlider, PushButton, RadioButtons
from napari.layers import Image
from napari.utils.notifications import show_error

from eid.errors import EIDError
from eid.napari.planes import swipe

if TYPE_CHECKING:
    import napari

SWIPE_LAYER = "swipe"
MODES = ("side by side", "swipe")


class CompareWidget(Container):
    """Pick the input and the result layers and a mode, press Compare; the slider moves the swipe."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        self.viewer = napari_viewer
        self.before = ComboBox(label="input", choices=self._image_layers)
        self.after = ComboBox(label="result", choices=self._image_layers)
        self.mode = RadioButtons(label="mode", choices=MODES, value=MODES[0])
        self.cut = FloatSlider(label="swipe", min=0.0, max=1.0, step=0.01, value=0.5)
        self.button = PushButton(text="Compare")
        super().__init__(widgets=[self.before, self.after, self.mode, self.cut, self.button])
        self.button.changed.connect(self.start)
        self.cut.changed.connect(self._update_swipe)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self.before.reset_choices)
            event.connect(self.after.reset_choices)

    def _image_layers(self, _widget: object = None) -> list[tuple[str, Image]]:
        return [
            (layer.name, layer)
            for layer in self.viewer.layers
            if isinstance(layer, Image) and layer.name != SWIPE_LAYER
        ]

    def compare(self) -> None:
        """Show the chosen layers in the chosen mode; raises when they are missing or differ in shape."""
        before, after = self.before.value, self.after.value
        if before is None or after is None or before is after:
            raise EIDError("choose an input layer and a different result layer")
        for layer in self.viewer.layers:
            layer.visible = layer is before or layer is after
        self.viewer.grid.enabled = self.mode.value == "side by side"
        if self.mode.value == "swipe":
            self._update_swipe()

    def start(self) -> None:
        """Button action: :meth:`compare`, its errors shown as a notification."""
        try:
            self.compare()
        except EIDError as exc:  # a wrong choice must not end the napari session
            show_error(str(exc))

    def _update_swipe(self) -> None:
        before, after = self.before.value, self.after.value
        if self.mode.value != "swipe" or before is None or after is None:
            return
        shown = swipe(before.data, after.data, self.cut.value, before.rgb)
        if SWIPE_LAYER in self.viewer.layers:
            self.viewer.layers[SWIPE_LAYER].data = shown
            self.viewer.layers[SWIPE_LAYER].visible = True
        else:
            self.viewer.add_image(
                shown, name=SWIPE_LAYER, scale=before.scale, translate=before.translate, rgb=before.rgb,
                colormap=None if before.rgb else before.colormap, contrast_limits=before.contrast_limits,
            )  # fmt: skip
