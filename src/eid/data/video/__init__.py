"""Video files <-> frame tensors (PyAV).

PyAV ships its own FFmpeg, so no system ``ffmpeg`` is needed. Frames are float32 ``(3, H, W)``
tensors in ``[0, 1]`` (RGB; grey videos are decoded as RGB).

* :class:`VideoReader` iterates over frames with their index and time, optionally sampled at a
  chosen rate or from a start time (seek to the preceding key frame, then decode forward).
* :class:`VideoWriter` encodes H.264 (``libx264``) when PyAV's FFmpeg has it, MPEG-4 Part 2
  otherwise, in ``yuv420p`` at the source frame rate. 4:2:0 chroma needs even sides, so a frame
  with an odd width or height is encoded in H.264 4:4:4 (``yuv444p``), which keeps its exact size
  (some players, such as browsers, do not play 4:4:4); only MPEG-4, which has no 4:4:4, pads it by
  one replicated row/column. The file is written to a temporary name and moved into place when the
  writer is closed cleanly.

Video dehazing is in :mod:`eid.inference.video`, temporal smoothing and the flicker measure in
:mod:`eid.inference.temporal`.
"""

from eid.data.video.reader import (
    VIDEO_SUFFIXES,
    Frame,
    VideoInfo,
    VideoReader,
    array_to_tensor,
    tensor_to_array,
)
from eid.data.video.writer import VideoWriter

__all__ = [
    "VIDEO_SUFFIXES",
    "Frame",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "array_to_tensor",
    "tensor_to_array",
]
