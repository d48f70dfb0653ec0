"""Which training runs a book build trained and which it reused, per chapter, for the performance chapter.

The book runner names the chapter it executes (``$MEDVISION_CHAPTER``) and its build record
(``$MEDVISION_RUN_RECORD``); :func:`medvision.train.runner.run_strategy` notes each run here. Outside a book
build nothing is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from medvision.core.atomic import write_json_atomic

CHAPTER_VAR = "MEDVISION_CHAPTER"
RECORD_VAR = "MEDVISION_RUN_RECORD"


def _log_path(record: Path, chapter: str) -> Path:
    return record.with_name(f"_runs_{chapter}.json")


def note_run(trained_epochs: int) -> None:
    """Count one run of the current chapter as trained (``trained_epochs`` > 0) or reused (a finished run
    directory was found and nothing trained)."""
    chapter, record = os.environ.get(CHAPTER_VAR), os.environ.get(RECORD_VAR)
    if not chapter or not record:
        return
    path = _log_path(Path(record), chapter)
    counts = json.loads(path.read_text()) if path.is_file() else {"trained": 0, "reused": 0}
    counts["trained" if trained_epochs > 0 else "reused"] += 1
    write_json_atomic(path, counts)


def chapter_runs(record: Path, chapter: str) -> dict[str, int]:
    """``{"trained": n, "reused": m}`` for a chapter of the build whose record is ``record`` (empty: none)."""
    path = _log_path(record, chapter)
    return json.loads(path.read_text()) if path.is_file() else {}
