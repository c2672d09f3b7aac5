"""pytest collects doctests from ``src/eid`` too: the napari widget modules import napari and magicgui, which
only the ``[napari]`` extra installs, so without them those two modules are left out (``planes.py`` needs
neither). Kept here, not in the package, so that no test configuration ships in the wheel."""

from importlib.util import find_spec

collect_ignore = (
    []
    if find_spec("napari") and find_spec("magicgui")
    else ["src/eid/napari/dehaze_widget.py", "src/eid/napari/compare_widget.py"]
)
