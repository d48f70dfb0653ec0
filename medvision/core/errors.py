"""One error hierarchy for medvision.

Everything medvision raises on purpose derives from :class:`MedvisionError`. :class:`UserError` and its
subclasses are problems the user can fix (bad data, a bad configuration, a missing file or extra, a tampered
bundle, a run directory that holds another run, a diverged run); the command line prints them in one line and
exits with status 2. Any other exception is a bug: it keeps its traceback and the command exits with status 1.

Each class also derives from the built-in exception that code caught before the hierarchy existed
(``ValueError``, ``FileNotFoundError``, ``RuntimeError``, ``ImportError``), so ``except ValueError`` around a
medvision call keeps working.
"""

from __future__ import annotations


class MedvisionError(Exception):
    """Root of the exceptions medvision raises on purpose."""


class UserError(MedvisionError):
    """Something the user can fix; the message says what and where (the CLI: one line, exit status 2)."""


class ConfigError(UserError, ValueError):
    """A configuration value, field, section, override, strategy, profile or option is invalid."""


class NotFoundError(UserError, FileNotFoundError):
    """A file or folder the user named (an input, a system, a profile, a book) does not exist."""


class RunDirectoryError(UserError, FileNotFoundError):
    """A folder is not a (finished) run directory, or a folder of runs holds none."""


class RunConfigMismatchError(UserError, ValueError):
    """A run directory holds a run made with another configuration."""


class MixedRunsError(UserError, ValueError):
    """A folder of runs holds runs made with different data, model or training settings."""


class DataError(UserError, ValueError):
    """A data source is malformed: bad CSV, empty class folder, unknown label, path escaping the root."""


class ImageLoadError(DataError):
    """An image file could not be decoded (corrupt, truncated, empty, not an image, too large)."""


class DataNotFoundError(UserError, FileNotFoundError):
    """A data file is missing and could not be downloaded. The message says where to put it."""


class DownloadError(UserError, RuntimeError):
    """Data could not be fetched: no public source (the message says where to put the files), offline, no
    credentials, or an incomplete download."""


class OutputExistsError(UserError, FileExistsError):
    """The output folder or file exists and overwriting was not asked for."""


class CacheError(UserError, RuntimeError):
    """A tensor cache file does not match its data set; the message says which file to delete."""


class BundleError(UserError, ValueError):
    """A bundle is missing, tampered with, or does not fit its declared architecture. Names the file."""


class WeightsError(UserError, RuntimeError):
    """Pretrained weights could not be found, downloaded or loaded. The message names the file."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, truncated or not a medvision checkpoint. The message names the file."""


class TrainingDivergedError(UserError, RuntimeError):
    """The loss became NaN or infinite. The last good checkpoint is kept."""


class RunDirectoryNotWritableError(UserError, OSError):
    """A run directory cannot be written (permissions, disk full); nothing was trained."""


class FileWriteError(UserError, OSError):
    """A result file cannot be written (disk full, no permission, read-only folder); the previous file is kept."""


class MissingExtraError(UserError, ImportError, RuntimeError):
    """An optional extra (``[onnx]``, ``[app]``, ``[track]``, ``[kaggle]``) is needed and not installed."""


class LeakageWarning(UserError, UserWarning):
    """A warning, not an error: the split puts duplicates (or one patient) in train and in val or test, so
    validation and test scores are flattered. ``data.dedupe`` fixes the split."""
