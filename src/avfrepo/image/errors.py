"""The image step's error: what is missing or wrong, in one sentence a maintainer can act on."""

from __future__ import annotations

from ..errors import AvfrepoError


class ImageError(AvfrepoError):
    """The image cannot be built (missing package, tool, space, file); nothing was left at --output."""
