"""User-facing errors.

Every failure a user can cause (bad file, wrong flag, missing run folder) raises :class:`EIDError`
with a one-line message saying what was wrong and what to do. The CLI prints it as
``error: <message>`` and exits with status 2; library users can catch it.
"""

from __future__ import annotations


class EIDError(Exception):
    """A failure caused by the user's input, with a one-line explanation and remedy."""


class ImageReadError(EIDError):
    """An image file could not be read (corrupt, truncated, empty, unsupported, too large...)."""


class TiffStackError(ImageReadError):
    """A TIFF holds several 2-D planes (z-slices, time points, channels): :mod:`eid.data.stacks` reads them."""
