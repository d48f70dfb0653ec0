"""Wall time of executing the book's notebooks with ``--jobs 2`` vs ``--jobs 1`` (smoke profile by default).

Each setting runs from empty run directories (``$MEDVISION_RUNS``) in its own staging folder, one after the
other in this process; the ratio of the two wall times is printed (machines here are noisy: compare ratios
measured in one run, not absolute times).

    python bench/book_jobs.py [--profile smoke] [--jobs 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(profile: str, jobs: int, scratch: Path) -> float:
    stage, runs = scratch / f"stage-{jobs}", scratch / f"runs-{jobs}"
    env = {**os.environ, "MEDVISION_RUNS": str(runs)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "medvision.book", "--profile", profile, "--no-build", "--stage",
                    str(stage), "--jobs", str(jobs)], check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="medvision-book-jobs-"))
    try:
        serial = run(args.profile, 1, scratch)
        parallel = run(args.profile, args.jobs, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ratio = serial / parallel
    print(f"{args.profile} profile, {os.cpu_count()} CPUs: --jobs 1 {serial:.1f} s, --jobs {args.jobs} "
          f"{parallel:.1f} s -> {ratio:.2f}x faster")
    if args.json:
        args.json.write_text(json.dumps({"profile": args.profile, "cpus": os.cpu_count(), "jobs": args.jobs,
                                         "serial_s": serial, "parallel_s": parallel, "speedup": ratio}))


if __name__ == "__main__":
    main()
