"""Export a trained dehazer for other runtimes: ONNX (:func:`export_onnx`) and bioimage.io packages
(:func:`export_bioimageio`). ``eid export`` is the command; ``docs/export.md`` the guide. ``eid dehaze`` runs ONNX
exports from a cache (:func:`cached_onnx_method`) for ``--backend onnx`` and ``auto`` (:func:`backend_method`).

The exported graph maps a hazy batch ``(N,C,H,W)`` float32 in ``[0,1]`` to the dehazed batch, input preparation
(DCP, ``H^dagger``) included (:class:`ExportedDehazer`). Needs the ``export`` extra:
``pip install 'eid-dehaze[export]'``.
"""

from eid.export.bioimage import export_bioimageio
from eid.export.cache import cache_dir, cached_onnx_method
from eid.export.graph import ExportedDehazer, TraceableDarkChannelPrior, load_exportable
from eid.export.runtime import backend_method
from eid.export.to_onnx import METADATA_KEYS, OnnxExport, export_onnx, onnx_metadata

__all__ = [
    "METADATA_KEYS",
    "ExportedDehazer",
    "OnnxExport",
    "TraceableDarkChannelPrior",
    "backend_method",
    "cache_dir",
    "cached_onnx_method",
    "export_bioimageio",
    "export_onnx",
    "load_exportable",
    "onnx_metadata",
]
