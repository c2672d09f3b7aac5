"""User-facing errors.

Every failure a user can cause (bad file, wrong flag, missing run folder) raises :class:`EIDError`
with a one-line message saying what was wrong and what to do. The CLI prints it as
``error: <message>`` and exits with status 2; library users can catch it.
"""

from __future__ import annotations

import errno

_OS_REMEDIES = {
    errno.ENOSPC: "free space on that disk or write elsewhere",
    errno.EDQUOT: "free space in your quota or write elsewhere",
    errno.EACCES: "check the permissions of the file and its folder",
    errno.EPERM: "check the permissions of the file and its folder",
    errno.EROFS: "the file system is read-only; write elsewhere",
    errno.EEXIST: "remove it or choose another name",
    errno.ENOENT: "check that the folder exists and was not removed meanwhile",
    errno.EIO: "the storage failed; check the disk or the network mount",
}


def describe_os_error(exc: OSError) -> str:
    """One line for an operating-system error: the file, the real cause and the matching remedy.

    >>> describe_os_error(OSError(28, "No space left on device", "out/x.png"))
    'out/x.png: No space left on device; free space on that disk or write elsewhere'
    """
    where = f"{exc.filename}: " if exc.filename else ""
    remedy = _OS_REMEDIES.get(exc.errno or 0, "check the file and its folder")
    return f"{where}{exc.strerror or exc}; {remedy}"


class EIDError(Exception):
    """A failure caused by the user's input, with a one-line explanation and remedy."""


class ImageReadError(EIDError):
    """An image file could not be read (corrupt, truncated, empty, unsupported, too large...)."""


def read_error(path: object, problem: str, remedy: str) -> ImageReadError:
    """The :class:`ImageReadError` of an unreadable image: ``<path>: <problem>; <remedy>``."""
    return ImageReadError(f"{path}: {problem}; {remedy}")


class VideoReadError(EIDError):
    """A video file could not be opened or decoded (missing, not a video, no video stream, corrupt data)."""


class TiffStackError(ImageReadError):
    """A TIFF holds several 2-D planes (z-slices, time points, channels): :mod:`eid.data.stacks` reads them."""
