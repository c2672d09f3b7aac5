"""Apply an image-to-image function to images of any size, kind and number: the ``eid dehaze`` engine.

The layers, from the inside out, one module each:

* :mod:`~eid.inference.methods`: a **method** (:class:`Method`, built by :func:`build_method`), a
  function on ``(B,C,H,W)`` tensors in ``[0,1]`` (the EID dehazer, the CycleGAN pseudo-inverse
  ``G_BA`` or the dark channel prior) plus what the runner must know about it (size multiple,
  channels, whether and how exactly it may be tiled, the group it was trained with);
* :mod:`~eid.inference.tta`: optional **test-time group averaging** (:class:`GroupAverage`),
  :math:`\\bar f(y) = |G|^{-1}\\sum_g T_g^{-1} f(T_g y)` over a finite group;
* :mod:`~eid.inference.tiling`: **padding** (:func:`pad_to_multiple`) and, for large images,
  **tiling** with overlap blending (:func:`tiled_apply`), exact for networks of known receptive field;
* :mod:`~eid.inference.precision`: fp32, or **bf16** autocast where the hardware has it natively;
* :mod:`~eid.inference.runner`: the **runner** :class:`Dehazer` (``eid.Dehazer``): device, precision,
  batching, channel adaptation, and numpy/tensor input of any common shape and dtype;
* :mod:`~eid.inference.backends`: the torch module, or its ONNX export run by ONNX Runtime
  (:func:`onnx_method`, ``eid dehaze --backend onnx``) as a method of the same runner;
* :mod:`~eid.inference.files`: the **drivers** :func:`dehaze_paths` (files, folders, globs; keeps format
  and bit depth; skips bad files) and :func:`dehaze_video_file`.
"""

from eid.inference.backends import BACKENDS, onnx_method
from eid.inference.exact_tiling import exact_tiled_apply
from eid.inference.files import (
    VIDEO_SUFFIXES,
    DehazeSummary,
    dehaze_paths,
    dehaze_video_file,
    is_video,
)
from eid.inference.methods import METHODS, Method, build_method
from eid.inference.norm_tiling import REFERENCE_TILES
from eid.inference.precision import PRECISIONS, autocast_dtype, native_bf16
from eid.inference.runner import Dehazer
from eid.inference.tile_plan import TILE_NORMS, TilePlan
from eid.inference.tiling import crop_to, pad_to_multiple, pad_to_shape, tile_windows, tiled_apply
from eid.inference.tta import GroupAverage, exact_tta_group

__all__ = [
    "BACKENDS",
    "METHODS",
    "PRECISIONS",
    "REFERENCE_TILES",
    "TILE_NORMS",
    "VIDEO_SUFFIXES",
    "DehazeSummary",
    "Dehazer",
    "GroupAverage",
    "Method",
    "TilePlan",
    "autocast_dtype",
    "build_method",
    "crop_to",
    "dehaze_paths",
    "dehaze_video_file",
    "exact_tiled_apply",
    "exact_tta_group",
    "is_video",
    "native_bf16",
    "onnx_method",
    "pad_to_multiple",
    "pad_to_shape",
    "tile_windows",
    "tiled_apply",
]
