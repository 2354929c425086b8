"""The image step's errors: what is missing or wrong, in one sentence a maintainer can act on."""

from __future__ import annotations

from ..errors import AvfrepoError, ConfigError


class ImageError(AvfrepoError):
    """The image cannot be built (missing package, tool, space, file); nothing was left at --output."""


class ImageKeyMissing(ImageError, ConfigError):
    """No usable repository key to sign with (or, for --unsigned, to name): a check before
    work, exit 2 as every command's missing key."""
