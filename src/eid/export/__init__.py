"""Export a trained dehazer for other runtimes: ONNX (:func:`export_onnx`) and bioimage.io packages
(:func:`export_bioimageio`). ``eid export`` is the command; ``docs/export.md`` the guide.

The exported graph maps a hazy batch ``(N,C,H,W)`` float32 in ``[0,1]`` to the dehazed batch, input preparation
(DCP, ``H^dagger``) included (:class:`ExportedDehazer`). Needs the ``export`` extra:
``pip install 'eid-dehaze[export]'``.
"""

from eid.export.bioimage import export_bioimageio
from eid.export.graph import ExportedDehazer, TraceableDarkChannelPrior, load_exportable
from eid.export.to_onnx import METADATA_KEYS, OnnxExport, export_onnx, onnx_metadata

__all__ = [
    "METADATA_KEYS",
    "ExportedDehazer",
    "OnnxExport",
    "TraceableDarkChannelPrior",
    "export_bioimageio",
    "export_onnx",
    "load_exportable",
    "onnx_metadata",
]
