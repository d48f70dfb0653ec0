"""Run the book: execute each notebook with papermill under a profile, then build the HTML with Jupyter Book.

``python -m medvision.book --profile smoke|default|cpu|gpu`` (also ``make book`` and ``medvision book``).
Parameters per notebook come from ``profiles/<profile>.yaml``; executed copies go where ``_toc.yml`` points
(``book/generated/``), written atomically; ``jb build`` runs with warnings as errors.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

import medvision
from medvision import run_log
from medvision.atomic import write_json_atomic
from medvision.errors import ConfigError, NotFoundError
from medvision.install_cell import (
    INSTALL_TAG,
    install_cell_source,
    repository_url,
    write_install_cells,
)
from medvision.provenance import git_commit
from medvision.systems_book import write_toc

KERNEL_NAME = "medvision"
GENERATED = Path("book") / "generated"
PROFILES = ("smoke", "default", "cpu", "gpu", "systems", "evidence")


def find_repo_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding ``_config.yml`` and ``notebooks/``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").is_file() and (folder / "notebooks").is_dir():
            return folder
    raise NotFoundError(f"no medvision book (a folder with _config.yml and notebooks/) at or above {here}")


def load_profile(name: str, root: Path) -> dict:
    """Read and check ``profiles/<name>.yaml``.

    A profile is a :class:`~medvision.run_config.RunConfig` document for the whole book plus one entry per
    chapter::

        description: what the profile is for
        config: pneumoniamnist          # every chapter's configuration: a configs/ system, YAML path or MedMNIST flag
        experiment: {image_size: 64}    # overrides for every chapter, in the configs/ schema
        notebooks:
          02_training_strategies:
            train: {epochs: 3}          # this chapter's overrides, in the same schema
            lr_find_steps: 40           # any other key: one of the chapter's own parameters

    Each chapter's configuration is built once here, so an unknown field fails before anything runs.
    """
    path = root / "profiles" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (root / "profiles").glob("*.yaml"))
        raise NotFoundError(f"profile {name!r} not found: no {path}; profiles are {known}")
    from medvision.run_config import OVERRIDE_KEYS as OVERRIDE_SECTIONS
    from medvision.systems_book import plans_from_profile

    profile = yaml.safe_load(path.read_text()) or {}
    profile.setdefault("notebooks", {})
    notebooks = profile["notebooks"]
    if not isinstance(notebooks, dict) or not (notebooks or profile.get("systems")):
        raise ConfigError(f"{path} must map 'notebooks' to {{notebook name: parameters}} (or list 'systems')")
    for key in [k for k in profile if str(k).startswith("x-")]:  # blocks held for YAML anchors only
        del profile[key]
    unknown = sorted(set(profile) - {"description", "config", "notebooks", "systems", *OVERRIDE_SECTIONS})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; a profile has description, config, notebooks, "
                          f"systems and the configuration sections {', '.join(OVERRIDE_SECTIONS)}")
    for caption, chapters in generated_parts(root).items():  # a part of the book is built whole or left out
        missing = [nb for nb in chapters if nb not in notebooks]
        if missing and len(missing) < len(chapters):
            raise ConfigError(f"{path} runs part of the {caption!r} chapters but not {missing}, which _toc.yml "
                              "includes there; a part is built whole or left out")
    try:
        plans_from_profile(profile)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    for nb, params in notebooks.items():
        if not (root / "notebooks" / f"{nb}.ipynb").is_file():
            raise NotFoundError(f"{path} names notebook {nb!r} but notebooks/{nb}.ipynb does not exist")
        if params is not None and not isinstance(params, dict):
            raise ConfigError(f"{path}: parameters of {nb!r} must be a mapping")
        from medvision.run_config import RunConfig

        chapter = chapter_parameters(profile, nb)
        RunConfig.load(chapter["config"], [chapter["overrides"]])  # raises, naming the field, on a bad override
    return profile


def generated_parts(root: Path) -> dict[str, list[str]]:
    """The parts of ``_toc.yml`` made of executed chapters: caption -> notebook names."""
    toc = yaml.safe_load((root / "_toc.yml").read_text()) if (root / "_toc.yml").is_file() else {}
    parts = {}
    for part in toc.get("parts", []):
        chapters = [c["file"].rsplit("/", 1)[-1] for c in part.get("chapters", [])
                    if c.get("file", "").startswith(GENERATED.as_posix())]
        if chapters:
            parts[part.get("caption", "")] = chapters
    return parts


def chapter_parameters(profile: dict, notebook: str) -> dict:
    """The papermill parameters of one chapter under ``profile``: ``config`` (the chapter's or the profile's),
    ``overrides`` (the profile's sections, then the chapter's, merged section by section) and the chapter's own
    parameters."""
    from medvision.run_config import OVERRIDE_KEYS as OVERRIDE_SECTIONS
    from medvision.run_config import merge

    entry = dict(profile["notebooks"].get(notebook) or {})
    shared = {k: profile[k] for k in OVERRIDE_SECTIONS if k in profile}
    own = {k: entry.pop(k) for k in OVERRIDE_SECTIONS if k in entry}
    config = entry.pop("config", profile.get("config", ""))
    return {"config": config, "overrides": merge({}, shared, own, where=f"profile, {notebook}"), **entry}


def ensure_kernel() -> None:
    """Register the ``medvision`` Jupyter kernel for this Python if it is not registered yet."""
    from jupyter_client.kernelspec import KernelSpecManager

    if KERNEL_NAME in KernelSpecManager().find_kernel_specs():
        return
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python (medvision)", prefix=sys.prefix)


def without_install_cells(path: Path):
    """The notebook at ``path`` without its ``install``-tagged cells (an ``nbformat`` node)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if INSTALL_TAG not in c.get("metadata", {}).get("tags", [])]
    return nb


def check_notebooks(folder: Path) -> list[str]:
    """Problems with the notebook sources: outputs left in, a ``.py`` twin that drifted, a missing install or
    parameters cell, another kernel. An empty list means all is well (``make lint`` runs this)."""
    import jupytext
    import nbformat

    problems = []
    project = next((p for p in (folder, *folder.resolve().parents) if (p / "pyproject.toml").is_file()), None)
    install_source = install_cell_source(repository_url(project) if project else "")
    for ipynb in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(ipynb, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        if any(c.outputs or c.execution_count is not None for c in code):
            problems.append(f"{ipynb}: outputs are not stripped (clear them, or run `make sync`)")
        if nb.metadata.get("kernelspec", {}).get("name") != KERNEL_NAME:
            problems.append(f"{ipynb}: kernel is not {KERNEL_NAME!r}")
        tags = [c.metadata.get("tags", []) for c in code]
        if not tags or INSTALL_TAG not in tags[0] or "nbval-skip" not in tags[0]:
            problems.append(f"{ipynb}: the first code cell must be the install cell tagged "
                            f"{INSTALL_TAG!r} and 'nbval-skip'")
        elif code[0].source != install_source:
            problems.append(f"{ipynb}: the install cell is not the one pyproject.toml's [project.urls] gives: "
                            "run `make sync`")
        if sum("parameters" in t for t in tags) != 1:
            problems.append(f"{ipynb}: needs exactly one cell tagged 'parameters'")
        twin = ipynb.with_suffix(".py")
        if not twin.is_file():
            problems.append(f"{ipynb}: no paired {twin.name}")
        elif [c.source for c in jupytext.read(twin).cells] != [c.source for c in nb.cells]:
            problems.append(f"{ipynb} and {twin.name} drifted apart: run `make sync`")
    return problems


def _local_kernel() -> dict:
    """Talk to the chapter's kernel over local IPC sockets where the OS has them: nothing travels over TCP, and
    the kernel does not print its "running over TCP without encryption" warning into the runner's output. The
    sockets live in a folder of their own under the temporary directory (by default they would be created in
    the notebook's working folder, and a killed build would leave them among the chapters)."""
    if os.name != "posix":
        return {}
    import tempfile

    from traitlets.config import Config

    folder = Path(tempfile.gettempdir()) / f"medvision-kernels-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return {"config": Config({"KernelManager": {"transport": "ipc", "ip": str(folder / f"kernel-{os.getpid()}")}})}


def execute_notebook(source: Path, target: Path, parameters: dict, cwd: Path) -> None:
    """Execute ``source`` (minus its install cell) with papermill into ``target``, atomically: a failed run
    leaves no page."""
    import papermill as pm

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.running.ipynb")
    try:
        pm.execute_notebook(without_install_cells(source), str(tmp), parameters=parameters, kernel_name=KERNEL_NAME,
                            cwd=str(cwd), progress_bar=False, log_output=False, **_local_kernel())
    except BaseException:
        failed = target.with_name(f"{target.stem}.failed.ipynb")
        if tmp.exists():
            os.replace(tmp, failed)
            print(f"  the executed notebook with the error is at {failed}", file=sys.stderr)
        raise
    import nbformat

    executed = nbformat.read(tmp, as_version=4)
    show_parameters_once(executed)
    nbformat.write(executed, tmp)
    os.replace(tmp, target)


def _parameter_lines(source: str, values: dict) -> list[str]:
    """The defaults cell's lines with each parameter that ``values`` sets given that value (type hint and
    comment kept)."""
    import ast
    import io
    import tokenize

    from papermill.translators import PythonTranslator

    lines = []
    for line in source.splitlines():
        try:
            node = ast.parse(line).body[0]
        except (SyntaxError, IndexError):
            lines.append(line)
            continue
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
        if not isinstance(target, ast.Name) or target.id not in values:
            lines.append(line)
            continue
        comment = next((t.string for t in tokenize.generate_tokens(io.StringIO(line).readline)
                        if t.type == tokenize.COMMENT), "")
        hint = f": {ast.unparse(node.annotation)}" if isinstance(node, ast.AnnAssign) else ""
        value = PythonTranslator.translate(values[target.id])
        lines.append(f"{target.id}{hint} = {value}" + (f"  {comment}" if comment else ""))
    return lines


def show_parameters_once(nb) -> None:
    """Show a chapter's parameters in one cell: papermill leaves the notebook's defaults cell and its own
    injected cell one after the other. The injected cell becomes the full list (defaults with the profile's
    values put in, as the kernel ended up with them) and the defaults cell is left out of the rendered page."""
    import ast

    defaults = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    injected = next((c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])), None)
    if defaults is None or injected is None:
        return
    values = {}
    for node in ast.parse(injected.source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    injected.source = "\n".join(["# Parameters of this run: the profile's values in the notebook's defaults",
                                  *_parameter_lines(defaults.source, values)])
    tags = defaults.metadata.setdefault("tags", [])
    if "remove-cell" not in tags:
        tags.append("remove-cell")


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
    (:func:`medvision.systems_book.plan_for_system`), in ``dest`` (default ``_build/systems/<name>``).
    Returns the HTML index (or the book folder with ``build=False``)."""
    from medvision.systems_book import plan_for_system, run_system

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
    """The profile's seed systems (:mod:`medvision.systems_book`), each recorded as it finishes."""
    from medvision.systems_book import plans_from_profile, run_system

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


def run_record(root: Path | None = None) -> dict:
    """The timings written so far by the current book run (``$MEDVISION_RUN_RECORD``, set by the runner), or
    by the last run in ``book/generated/_run.json``; each chapter's ``runs`` counts the training runs it
    trained and reused (:mod:`medvision.run_log`)."""
    env = os.environ.get(run_log.RECORD_VAR)
    path = Path(env) if env else (root or find_repo_root()) / GENERATED / "_run.json"
    record = json.loads(path.read_text()) if path.is_file() else {"notebooks": {}}
    for nb, facts in record["notebooks"].items():
        facts["runs"] = run_log.chapter_runs(path, nb)
    return record


def describe_runs(runs: dict[str, int]) -> str:
    """``"3 trained, 2 reused"`` for a chapter's run counts; ``"—"`` for a chapter that trains nothing."""
    parts = [f"{runs[k]} {k}" for k in ("trained", "reused") if runs.get(k)]
    return ", ".join(parts) or "—"


def run_bench(script: str, *args: str, root: Path | None = None) -> dict:
    """Run ``bench/<script>.py --json`` in a fresh process and return the JSON it wrote."""
    import tempfile

    root = root or find_repo_root()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        done = subprocess.run([sys.executable, str(root / "bench" / f"{script}.py"), *args, "--json", str(out)],
                              cwd=root, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"bench/{script}.py failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        return json.loads(out.read_text())


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


def runs_dir(profile: str, dataset: str, override: str = "") -> Path:
    """Where a chapter's run directories go: ``override`` if given, else ``$MEDVISION_RUNS/<profile>/<dataset>``,
    else ``<repo>/runs/<profile>/<dataset>`` (``./runs/...`` outside a checkout)."""
    if override:
        return Path(override).expanduser().resolve()
    if os.environ.get("MEDVISION_RUNS"):  # make test points this at a fresh folder
        return Path(os.environ["MEDVISION_RUNS"]).expanduser().resolve() / profile / dataset
    try:
        base = find_repo_root()
    except FileNotFoundError:
        base = Path.cwd()
    return base / "runs" / profile / dataset


def run_banner(profile: str, **facts: object):
    """A Markdown block for the top of a results page: profile, data, model, seed; smoke runs flagged.

    Returns an ``IPython.display.Markdown`` object so notebooks show it as their output.
    """
    from IPython.display import Markdown

    lines = []
    if profile == "smoke":
        lines.append("> **Smoke profile.** This page was produced by the tiny settings used by tests and CI. "
                     "It shows that the pipeline runs; its numbers are not results. Build the book with "
                     "`make book` (default profile) for real ones.")
        lines.append(">")
    facts_text = "; ".join(f"{k.replace('_', ' ')}: `{v}`" for k, v in facts.items())
    lines.append(f"> Produced by the **{profile}** profile — {facts_text}.")
    lines.append(">")
    lines.append(f"> *{medvision.DISCLAIMER}*")
    return Markdown("\n".join(lines))


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
                        help="only write the current install cell into every notebook (make sync)")
    args = parser.parse_args(argv)
    if args.install_cells:
        root = find_repo_root(args.root)
        for path in write_install_cells(root / "notebooks", repository_url(root)):
            print(f"install cell updated: {path}")
        return 0
    if args.check:
        problems = check_notebooks(find_repo_root(args.root) / "notebooks")
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    from papermill.exceptions import PapermillExecutionError

    try:
        root = find_repo_root(args.root)
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
