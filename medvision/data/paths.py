"""Where medvision looks for data and keeps its caches.

The data root is resolved as timm and torchvision users expect: an explicit argument wins, then the
``MEDVISION_DATA`` environment variable, then the per-user cache directory.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "MEDVISION_DATA"
#: Data shipped inside a source checkout (the two small official MedMNIST files).
BUNDLED_DATA = Path(__file__).resolve().parents[2] / "data"


def user_cache_dir() -> Path:
    """Return the per-user cache directory (``$XDG_CACHE_HOME/medvision`` or ``~/.cache/medvision``)."""
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "medvision"


def resolve_data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the data root: ``root`` if given, else ``$MEDVISION_DATA``, else the user cache dir.

    Args:
        root: An explicit data root. Empty strings count as not given (papermill passes ``""``).

    Returns:
        An absolute path. It is not created here.
    """
    if root:
        return Path(root).expanduser().resolve()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    return user_cache_dir()


def search_roots(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Data roots to search for a file, in order: the resolved root, then the bundled data (if any)."""
    roots = [resolve_data_root(root)]
    if BUNDLED_DATA.is_dir() and BUNDLED_DATA not in roots:
        roots.append(BUNDLED_DATA)
    return roots


def tensor_cache_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """Directory of decoded uint8 tensor caches (``$MEDVISION_CACHE`` or ``<user cache>/tensors``)."""
    if root:
        return Path(root).expanduser().resolve()
    env = os.environ.get("MEDVISION_CACHE")
    return Path(env).expanduser().resolve() if env else user_cache_dir() / "tensors"
