"""Nothing but the tests may read ``../shared``: a user's clone has nothing beside it (the chapter-07 benchmark
once defaulted to ``../shared/data`` and failed `make book` and `make test` on a newcomer's machine)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = re.compile(r"""(\.\./shared|["']shared["'])""")


def test_only_the_tests_name_the_shared_folder():
    offenders = []
    for folder in ("medvision", "bench", "notebooks", "profiles"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix in {".py", ".ipynb", ".yaml", ".yml"} and SHARED.search(path.read_text(errors="ignore")):
                offenders.append(str(path.relative_to(REPO)))
    for name in ("Makefile", "_config.yml", "_toc.yml"):
        if SHARED.search((REPO / name).read_text()):
            offenders.append(name)
    assert not offenders, f"these files name ../shared, which a user does not have: {offenders}"
