"""Exceptions raised by the data layer. Each message names the file and what is wrong with it."""

from __future__ import annotations


class DataError(ValueError):
    """A data source is malformed: bad CSV, empty class folder, unknown label, path escaping the root."""


class ImageLoadError(DataError):
    """An image file could not be decoded (corrupt, truncated, empty, not an image, too large)."""


class DataNotFoundError(FileNotFoundError):
    """A data file is missing and could not be downloaded. The message says where to put it."""
