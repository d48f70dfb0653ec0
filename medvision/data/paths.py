"""Where medvision looks for data and keeps its caches.

The data root is resolved as timm and torchvision users expect: an explicit argument wins, then the
``MEDVISION_DATA`` environment variable, then the per-user cache directory; the files the package ships are
searched last.
"""

from __future__ import annotations

import os
from pathlib import Path

from medvision.resources import bundled_data_dir

ENV_VAR = "MEDVISION_DATA"


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
    """Data roots to search for a file, in order: the resolved root, then the files medvision ships (the two
    small official MedMNIST files in ``medvision/resources/medmnist/``)."""
    roots = [resolve_data_root(root)]
    bundled = bundled_data_dir()
    if bundled is not None and bundled not in roots:
        roots.append(bundled)
    return roots


def tensor_cache_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """Directory of decoded uint8 tensor caches (``$MEDVISION_CACHE`` or ``<user cache>/tensors``)."""
    if root:
        return Path(root).expanduser().resolve()
    env = os.environ.get("MEDVISION_CACHE")
    return Path(env).expanduser().resolve() if env else user_cache_dir() / "tensors"
