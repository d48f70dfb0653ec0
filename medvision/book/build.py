"""Run the book: execute each notebook with papermill under a profile, then build the HTML with Jupyter Book.

``python -m medvision.book --profile smoke|default|cpu|gpu`` (also ``make book`` and ``medvision book``).
Parameters per notebook come from ``profiles/<profile>.yaml``; executed copies go where ``_toc.yml`` points
(``book/generated/``), written atomically; ``jb build`` runs with warnings as errors.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import medvision
from medvision.book.install_cell import (
    repository_url,
    write_install_cells,
)
from medvision.book.launch import check_launch_block, write_launch_block
from medvision.book.notebooks import check_notebooks, ensure_kernel, execute_notebook
from medvision.book.parameters import check_parameter_cells, smoke_copies, write_parameter_cells
from medvision.book.profiles import (
    GENERATED,
    PROFILES,
    chapter_parameters,
    find_repo_root,
    load_profile,
    plan_for_system,
    plans_from_profile,
)
from medvision.book.systems import run_system, write_toc
from medvision.core import run_log
from medvision.core.atomic import write_json_atomic
from medvision.core.errors import ConfigError
from medvision.core.provenance import git_commit


def stage_book(root: Path, dest: Path) -> Path:
    """Copy the book's sources (config, toc, prose pages) to ``dest`` so a build there leaves ``root`` alone."""
    dest = dest.resolve()
    if dest == root.resolve():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, dest / name)
    shutil.rmtree(dest / "book", ignore_errors=True)
    shutil.copytree(root / "book", dest / "book", ignore=shutil.ignore_patterns("generated"))
    (dest / "notebooks").mkdir(exist_ok=True)  # find_repo_root() recognises the staged book too
    return dest


#: Chapters that read what other chapters wrote (run directories, timings); "*" means every other chapter.
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "03_per_class_analysis": ("02_training_strategies",),
    "04_calibration": ("02_training_strategies",),
    "05_feature_baselines": ("02_training_strategies",),
    "07_performance": ("*",),
    "10_resolution": ("*",),  # its seconds per epoch are measured alone
}


def dependencies(notebooks: Sequence[str]) -> dict[str, set[str]]:
    """Which of ``notebooks`` each one must wait for (only dependencies that are part of this run)."""
    present = set(notebooks)
    deps = {}
    for nb in notebooks:
        wanted = DEPENDS_ON.get(nb, ())
        deps[nb] = (present - {nb}) if "*" in wanted else (set(wanted) & present)
    return deps


def _thread_env(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(threads)


def _execute_job(source: Path, target: Path, params: dict, cwd: Path, threads: int) -> float:
    """One notebook in a worker process whose kernel may use ``threads`` CPU threads."""
    _thread_env(threads)
    os.environ[run_log.CHAPTER_VAR] = source.stem
    start = time.perf_counter()
    execute_notebook(source, target, params, cwd)
    return time.perf_counter() - start


def schedule(notebooks: Sequence[str], jobs: int, submit, on_done) -> None:
    """Run ``notebooks`` respecting :func:`dependencies`, at most ``jobs`` at a time.

    ``submit(nb)`` returns a ``concurrent.futures.Future``; ``on_done(nb, seconds)`` is called as each
    finishes. The first failure cancels what has not started and is re-raised.
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    deps = dependencies(notebooks)
    waiting, running, done = list(notebooks), {}, set()
    while waiting or running:
        for nb in [n for n in waiting if deps[n] <= done][: max(0, jobs - len(running))]:
            waiting.remove(nb)
            running[submit(nb)] = nb
        if not running:
            raise ConfigError(f"circular chapter dependencies among {waiting}")
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            nb = running.pop(future)
            if future.exception() is not None:
                for other in running:
                    other.cancel()
                raise future.exception()
            done.add(nb)
            on_done(nb, future.result())


def run_notebooks(profile_name: str, root: Path, only: Sequence[str] = (),
                  out_root: Path | None = None, jobs: int = 1) -> dict:
    """Execute the profile's notebooks into ``<out_root>/book/generated``.

    With ``jobs`` > 1, chapters that do not depend on each other (:data:`DEPENDS_ON`) run in parallel
    processes, each kernel limited to its share of the CPU threads. Returns the timings and facts that are
    also written to ``_run.json`` there.
    """
    profile = load_profile(profile_name, root)
    out_dir = (out_root or root) / GENERATED
    record = _start_run(profile_name, root, out_dir, jobs)
    selected = {nb: {**chapter_parameters(profile, nb), "profile": profile_name}
                for nb in profile["notebooks"] if not only or nb in only}

    def finished(nb: str, seconds: float) -> None:
        record["notebooks"][nb] = {"seconds": round(seconds, 1), "parameters": selected[nb]}
        print(f"[{profile_name}] {nb} done in {seconds:.1f} s", flush=True)
        _write_record(out_dir, record)  # after each chapter, so later chapters can report earlier timings

    def job(nb: str) -> tuple[Path, Path, dict, Path]:
        print(f"[{profile_name}] executing notebooks/{nb}.ipynb", flush=True)
        return root / "notebooks" / f"{nb}.ipynb", out_dir / f"{nb}.ipynb", selected[nb], root / "notebooks"

    start = time.perf_counter()
    if jobs <= 1:
        for nb in selected:
            t0 = time.perf_counter()
            os.environ[run_log.CHAPTER_VAR] = nb
            execute_notebook(*job(nb))
            finished(nb, time.perf_counter() - t0)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            schedule(list(selected), jobs, lambda nb: pool.submit(_execute_job, *job(nb), threads), finished)
    systems = _run_systems(profile, profile_name, root, out_root or root, record, out_dir, only)
    write_toc(root, out_root or root, set(profile["notebooks"]), systems)
    record["wall_seconds"] = round(time.perf_counter() - start, 1)
    _write_record(out_dir, record)
    return record


def _start_run(profile_name: str, root: Path, out_dir: Path, jobs: int = 1) -> dict:
    """Ready the kernels and the run record of a build into ``out_dir``."""
    ensure_kernel()
    # Kernels inherit the environment; a headless MPLBACKEND=Agg (CI, make) would hide every figure.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    os.environ[run_log.RECORD_VAR] = str(out_dir / "_run.json")
    for stale in out_dir.glob("_runs_*.json"):  # run counts of an earlier build
        stale.unlink()
    return {"profile": profile_name, "medvision": medvision.__version__, "python": platform.python_version(),
            "git_commit": git_commit(root), "jobs": jobs, "notebooks": {}}


def system_book(system: str, profile_name: str, root: Path, data_root: str = "", dest: Path | None = None,
                build: bool = True) -> Path:
    """A book of one data set: the EDA, training-strategies, per-class, calibration and feature-baseline
    chapters for ``system`` (a ``configs/`` name or a YAML path) under ``profile_name``'s compute budget
    (:func:`medvision.book.profiles.plan_for_system`), in ``dest`` (default ``_build/systems/<name>``).
    Returns the HTML index (or the book folder with ``build=False``)."""
    plan = plan_for_system(system, load_profile(profile_name, root), data_root)
    name = plan.run_config().label
    target = stage_book(root, dest or root / "_build" / "systems" / name)
    record = _start_run(profile_name, root, target / GENERATED)
    record["systems"] = {name: run_system(name, plan, profile_name, root, target)}
    _write_record(target / GENERATED, record)
    write_toc(root, target, set(), record["systems"])
    return build_html(target) if build else target


def _run_systems(profile: dict, profile_name: str, root: Path, out_root: Path, record: dict, out_dir: Path,
                 only: Sequence[str] = ()) -> dict[str, dict]:
    """The profile's seed systems (:mod:`medvision.book.systems`), each recorded as it finishes."""
    systems = {}
    for name, plan in plans_from_profile(profile).items():
        if only and name not in only:
            continue
        systems[name] = run_system(name, plan, profile_name, root, out_root)
        record.setdefault("systems", {})[name] = systems[name]
        _write_record(out_dir, record)
    return systems


def _write_record(out_dir: Path, record: dict) -> None:
    write_json_atomic(out_dir / "_run.json", record)


def build_html(root: Path, strict: bool = True) -> Path:
    """Run ``jupyter-book build`` (``-W -n --keep-going`` when strict) with the table of contents the runner
    generated for this build (``book/generated/_toc.yml``, else ``_toc.yml``); return the HTML index."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(root)]
    toc = root / GENERATED / "_toc.yml"
    if toc.is_file():
        cmd += ["--toc", str(toc)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=root)
    return root / "_build" / "html" / "index.html"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="medvision book", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", help=f"one of {', '.join(PROFILES)} (profiles/*.yaml)")
    parser.add_argument("--only", nargs="*", default=(), help="execute only these notebooks")
    parser.add_argument("--no-execute", action="store_true", help="build from already executed notebooks")
    parser.add_argument("--no-build", action="store_true", help="execute notebooks, skip jupyter-book")
    parser.add_argument("--root", type=Path, default=None, help="book folder (default: found from cwd)")
    parser.add_argument("--stage", type=Path, default=None,
                        help="build in a copy of the book at this folder instead of in place")
    parser.add_argument("--jobs", type=int, default=1,
                        help="run independent chapters in this many parallel processes (threads split among them)")
    parser.add_argument("--system", default="", metavar="NAME_OR_YAML",
                        help="render the EDA, training, per-class, calibration and feature-baseline chapters for one "
                             "data set (a configs/ system or a YAML path) into its own book (_build/systems/<name>, "
                             "or --stage), with --profile's compute budget")
    parser.add_argument("--data-root", default="", help="with --system: where the data set's files are")
    parser.add_argument("--check", action="store_true",
                        help="only check that notebooks/ are stripped, paired and tagged (make lint)")
    parser.add_argument("--install-cells", action="store_true",
                        help="only write the current install cell and the stored profile's parameters into every "
                             "notebook, and the launch buttons into _config.yml (make sync)")
    parser.add_argument("--smoke-copies", type=Path, default=None, metavar="DIR",
                        help="only write copies of the notebooks with the smoke profile's parameters injected into "
                             "DIR (what make test runs under nbval)")
    args = parser.parse_args(argv)
    from papermill.exceptions import PapermillExecutionError

    try:
        root = find_repo_root(args.root)
        if args.install_cells:
            for path in write_install_cells(root / "notebooks", repository_url(root)):
                print(f"install cell updated: {path}")
            if write_launch_block(root / "_config.yml", repository_url(root)):
                print(f"launch buttons updated: {root / '_config.yml'}")
            for path in write_parameter_cells(root / "notebooks", root):
                print(f"stored parameters updated: {path}")
            return 0
        if args.smoke_copies:
            copies = smoke_copies(root, args.smoke_copies.resolve())
            print(f"{len(copies)} notebooks with the smoke profile's parameters in {args.smoke_copies}")
            return 0
        if args.check:
            problems = (check_notebooks(root / "notebooks") + check_parameter_cells(root / "notebooks", root)
                        + check_launch_block(root / "_config.yml", repository_url(root)))
            for line in problems:
                print(line, file=sys.stderr)
            return 1 if problems else 0
        if args.system:
            index = system_book(args.system, args.profile, root, args.data_root, args.stage,
                                build=not args.no_build)
            print(f"book of {args.system} built: {index}")
            return 0
        target = stage_book(root, args.stage) if args.stage else root
        if not args.no_execute:
            run_notebooks(args.profile, root, args.only, out_root=target, jobs=args.jobs)
        if not args.no_build:
            index = build_html(target)
            print(f"book built: {index}")
    except (FileNotFoundError, ValueError) as exc:
        print(f"medvision book: {exc}", file=sys.stderr)
        return 2
    except PapermillExecutionError as exc:
        print(f"medvision book: a notebook failed:\n{exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"medvision book: jupyter-book failed (exit {exc.returncode})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
