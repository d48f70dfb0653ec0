"""Files that ship inside the package: the seed-system configs, the published benchmark anchors and two
small official MedMNIST files.

They are read through :mod:`importlib.resources`, so they are found the same way from a source checkout, an
editable install or an installed wheel (never by walking up from ``__file__`` to a checkout).
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

PACKAGE = "medvision"


def resource(*parts: str) -> Traversable:
    """A file or folder shipped with medvision, e.g. ``resource("configs", "ham10000.yaml")``."""
    node = files(PACKAGE)
    for part in parts:
        node = node / part
    return node


def config_dir() -> Traversable:
    """The folder of the seed-system configurations (``medvision/configs/*.yaml``)."""
    return resource("configs")


def anchors_file() -> Traversable:
    """The published MedMNIST benchmark numbers (``medvision/resources/anchors/medmnist_v2_benchmark.csv``)."""
    return resource("resources", "anchors", "medmnist_v2_benchmark.csv")


def bundled_data_dir() -> Path | None:
    """The data root that ships with medvision (``medmnist/pneumoniamnist.npz`` and ``breastmnist.npz``), or
    ``None`` where the package is not installed as plain files (a zip import), so there is none to search."""
    node = resource("resources")
    return Path(str(node)) if isinstance(node, Path) and node.is_dir() else None
