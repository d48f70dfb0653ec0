"""Which source produced a result: the git commit of a folder, and of the medvision checkout running now."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def git_commit(root: Path) -> str:
    """The commit checked out at ``root``, or ``unknown`` (not a git work tree, or no git)."""
    return _git(["rev-parse", "HEAD"], Path(root)) or "unknown"


def source_commit() -> str:
    """The commit of the medvision checkout this package is imported from; ``unknown`` for an installed wheel
    (whose folder is not the package folder of a git work tree, even when it lies inside one)."""
    package = Path(__file__).resolve().parent
    top = _git(["rev-parse", "--show-toplevel"], package)
    if top is None or (Path(top) / "medvision").resolve() != package:
        return "unknown"
    return git_commit(Path(top))
