"""Errors of `avfrepo boot`: a refusal of the archive (what the Terminal app would refuse) and
the host missing what booting needs. A boot that starts and then fails a check is not an
error: it is a report whose failed checks are named (exit 1)."""

from __future__ import annotations

from ..errors import AvfrepoError


class BootError(AvfrepoError):
    """The image cannot be booted here: a tool or file is missing (exit 1)."""


class ImageRefused(BootError):
    """The Terminal app would refuse this images.tar.gz (exit 1), with the reason in one line."""
