"""pytest collects doctests from ``src/eid``: the widget modules import napari and magicgui, which only the
``[napari]`` extra installs, so without them those two modules are left out (``planes.py`` needs neither)."""

from importlib.util import find_spec

collect_ignore = [] if find_spec("napari") and find_spec("magicgui") else ["dehaze_widget.py", "compare_widget.py"]
