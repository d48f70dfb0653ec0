"""Exceptions raised by the data layer (defined in :mod:`medvision.core.errors`). Each message names the file and
what is wrong with it."""

from medvision.core.errors import DataError, DataNotFoundError, ImageLoadError

__all__ = ["DataError", "DataNotFoundError", "ImageLoadError"]
