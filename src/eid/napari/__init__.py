"""napari plugin (``pip install 'eid-dehaze[napari]'``): two dock widgets, declared in ``napari.yaml`` (npe2).

* **Dehaze layer** (:class:`~eid.napari.dehaze_widget.DehazeWidget`): the selected image layer through the
  dehazer of an ``eid train`` run folder, the same :class:`eid.Dehazer` as ``eid dehaze``, in a worker thread;
  the result is a new layer with the input's scale and translate.
* **Compare** (:class:`~eid.napari.compare_widget.CompareWidget`): input and result side by side, or as a swipe.

The array logic lives in :mod:`eid.napari.planes` and needs no display; the widgets only wire it to napari.
Nothing here is imported by ``eid`` itself, so napari stays out of the default install.
"""
