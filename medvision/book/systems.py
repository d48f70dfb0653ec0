"""The book's *Seed systems* part, and a book of its own for any one data set (``medvision book --system``).

A system's chapters are the book's own notebooks (EDA, training strategies, per-class analysis, calibration,
and for a system book the feature baselines) executed with ``config`` set to the system — a ``configs/`` name
or the path of a user's YAML — into ``book/generated/systems/<name>/``, with a landing page that says what the
data is, which recipe ran and what was published for it. A system whose data is not under the data root gets a
landing page saying how to fetch it instead of an error. The table of contents of a build is generated
(:func:`write_toc`), so the systems appear only where they ran.
"""

from __future__ import annotations

import copy
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from medvision import DISCLAIMER
from medvision.book.notebooks import execute_notebook
from medvision.book.pages import runs_dir
from medvision.book.profiles import GENERATED, SystemPlan
from medvision.core import run_log
from medvision.core.atomic import write_text_atomic
from medvision.core.errors import UserError
from medvision.data.load import data_problem as _data_problem
from medvision.evaluate.anchors import chosen_intervals
from medvision.train.run_dir import RunDirectory

SYSTEMS = GENERATED / "systems"

#: Parameters that keep a chapter on the system alone, whatever the chapter stores (the benchmark stores the
#: default build's data sets).
ON_THE_SYSTEM: dict[str, dict[str, Any]] = {"06_benchmark": {"datasets": [], "per_dataset": {}}}


def data_problem(plan: SystemPlan) -> str:
    """Why the system's data cannot be read here (empty when it can)."""
    return _data_problem(plan.run_config().data)


def run_system(name: str, plan: SystemPlan, profile_name: str, root: Path, out_root: Path) -> dict:
    """Execute a system's chapters into ``<out_root>/book/generated/systems/<name>/`` and write its landing page;
    returns what ran (``{"chapters": {chapter: seconds}, "missing": reason}``)."""
    folder = out_root / SYSTEMS / name
    folder.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"config": plan.config, "overrides": plan.overrides, "chapters": {}, "missing": ""}
    record["missing"] = data_problem(plan)
    if not record["missing"]:
        for nb in plan.chapters:
            params = {"config": plan.config, "overrides": plan.overrides, **ON_THE_SYSTEM.get(nb, {}),
                      **plan.parameters.get(nb, {}), "profile": profile_name}
            print(f"[{profile_name}] {name}: executing notebooks/{nb}.ipynb", flush=True)
            os.environ[run_log.CHAPTER_VAR] = f"{name}-{nb}"
            start = time.perf_counter()
            execute_notebook(root / "notebooks" / f"{nb}.ipynb", folder / f"{nb}.ipynb", params, root / "notebooks")
            record["chapters"][nb] = round(time.perf_counter() - start, 1)
            print(f"[{profile_name}] {name}: {nb} done in {record['chapters'][nb]:.1f} s", flush=True)
    if not record["missing"]:
        record["split"] = publish_split(profile_name, plan.run_config().label, folder)
    write_text_atomic(out_root / SYSTEMS / f"{name}.md", landing_page(name, plan, record, profile_name))
    return record


#: The file name of a system's published split manifest, beside its chapters (a run's own split file).
SPLIT_FILE = RunDirectory.SPLIT


def publish_split(profile_name: str, label: str, folder: Path) -> str:
    """Copy the split manifest (``split.csv``: image id, split, label, group; ids relative to the data folder) of
    this build's runs of ``label`` into ``folder``, so the book publishes the exact train/val/test split its
    numbers are on. Every run of a system in one build shares the split (``data.seed``, not the training seed,
    draws it). Returns the file's name, or ``""`` when no run left one."""
    candidates = [*sorted(runs_dir(profile_name, label).glob(f"*/{SPLIT_FILE}")),
                  *sorted((runs_dir(profile_name, "benchmark") / label).glob(f"*/seed*/*/{SPLIT_FILE}"))]
    if not candidates:
        return ""
    write_text_atomic(folder / SPLIT_FILE, candidates[0].read_text())
    return SPLIT_FILE


def landing_page(name: str, plan: SystemPlan, record: dict, profile_name: str) -> str:
    """The system's page: what the data is, the recipe that ran (or how to get the data), the reference."""
    config = plan.run_config()
    exp, train, data = config.experiment, config.train, config.data
    lines = [f"# {name}", "", f"{config.description or name}.", "", f"> *{DISCLAIMER}*", ""]
    if record["missing"]:
        how = (f"`medvision data fetch {plan.config}` downloads it from Kaggle (`{config.kaggle}`; the `[kaggle]` "
               "extra and Kaggle credentials)" if config.kaggle else "it has no public download")
        lines += ["## The data is not here", "",
                  f"This build could not read the data: {record['missing']}", "",
                  f"Put the files as `{config.layout}`, or: {how}; then set `MEDVISION_DATA` (or pass "
                  f"`--data-root`) and run `make book PROFILE={profile_name}` or `medvision book --system "
                  f"{plan.config}` again.", ""]
    else:
        fallback = f" (or {exp.fallback} with offline weights where those cannot be had)" if exp.fallback else ""
        lines += ["## What ran", "",
                  f"Produced by the **{profile_name}** profile from the configuration `{plan.config}`"
                  + (f" with the overrides `{json.dumps(plan.overrides)}`" if plan.overrides else "") + ":", "",
                  f"- data: {data.source} `{data.name}`, cached at {data.size} px ({data.resize}); split: "
                  + ("official split kept, " if data.official_split == "keep" else f"{data.official_split}, ")
                  + (f"groups from `{data.group_col}`" if data.group_col else
                     f"groups from file names (`{data.group_pattern}`)" if data.group_pattern else "no groups")
                  + (f", duplicates clustered ({data.dedupe})" if data.dedupe != "none" else ""),
                  f"- model: `{exp.backbone}`{fallback}, weights `{exp.pretrained}`, input {exp.image_size} px, "
                  f"batch {exp.batch_size}, head {exp.head_hidden or 'linear'}, augmentation `{exp.augment}`",
                  f"- training: {train.epochs} epoch{'s' if train.epochs != 1 else ''}, `{train.scheduler}` schedule, loss `{train.loss}`, "
                  f"learning rate {config.strategy.lr:g}, chosen on validation `{train.monitor}`; strategies "
                  + ", ".join(f"`{s}`" for s in config.strategies), "",
                  ("The chapters of this system follow; the weights each run actually started from are on the "
                   "training-strategies page." if "02_training_strategies" in record["chapters"] else
                   "Its benchmark page follows: the seeds of each strategy, and the one chosen on validation set "
                   "beside what was published."), ""]
        if record.get("split"):
            lines += [f"Every number of this system's chapters is on one split, published as {{download}}`its "
                      f"manifest <{name}/{record['split']}>` (one row per image: its file relative to the data "
                      "folder, split, class and group).", ""]
    if config.reference:
        metrics = ", ".join(f"{k.replace('_', ' ')} {'-'.join(f'{x:g}' for x in v) if isinstance(v, list) else v}"
                            for k, v in config.reference["metrics"].items())
        source = config.reference.get("source", "the reference")
        where = ("The per-class page" if "03_per_class_analysis" in record["chapters"] else
                 "The benchmark page" if "06_benchmark" in record["chapters"] else "")
        lines += ["## What was published", "", f"{source[0].upper()}{source[1:]}: {metrics}."
                  + (f" {where} sets our test metrics beside these numbers." if where else ""), ""]
    if profile_name != REFERENCE_PROFILE:
        lines += reference_results(config.label)
    return "\n".join(lines)


#: The profile that trains the seed systems at the seeds' input size, whose runs a system's page cites.
REFERENCE_PROFILE = "reference"


def reference_results(label: str, runs_root: Path | None = None) -> list[str]:
    """Markdown lines citing the reference profile's runs of the system ``label`` where this machine has them
    (``<runs>/reference/benchmark/<label>/``): per strategy, the mean test metrics over its seeds with the book's
    interval, the input size and the date the runs finished. Empty when there are none."""
    root = (runs_root or runs_dir(REFERENCE_PROFILE, "benchmark")) / label / "all"
    found = sorted(root.glob(f"seed*/*/{RunDirectory.SUMMARY}"))
    if not found:
        return []
    try:
        return _reference_lines(label, found)
    except (UserError, OSError, ValueError, KeyError) as exc:  # a damaged or partial run: say so, build on
        return ["## At the seeds' input size (reference profile)", "",
                f"This machine holds runs of the `reference` profile for this system, but they could not be read "
                f"({type(exc).__name__}); run `make book PROFILE=reference` again.", ""]


def _reference_lines(label: str, found: list[Path]) -> list[str]:
    rows = []
    for path in found:
        summary = json.loads(path.read_text())
        rows.append({"dataset": label, "seed": int(path.parent.parent.name.removeprefix("seed")),
                     "run_dir": str(path.parent), "image_size": summary.get("image_size"),
                     **{f"{split}_{k}": v for split in ("val", "test") for k, v in summary[split].items()}})
    frame = pd.DataFrame(rows)
    run, intervals = chosen_intervals(frame)[label]
    finished = datetime.fromtimestamp(max(p.stat().st_mtime for p in found), tz=timezone.utc).date()
    size = frame["image_size"].dropna().astype(int).unique()
    shown = ", ".join(f"{m.replace('_', ' ')} {iv}" for m, iv in intervals.items())
    return ["## At the seeds' input size (reference profile)", "",
            f"The `reference` profile (`make book PROFILE=reference`) trained this system at "
            f"{'/'.join(str(s) for s in size)} px; its runs on this machine finished on {finished.isoformat()}. "
            f"The strategy chosen on validation, {run}, scores on test: {shown} (means over seeds; the interval "
            "covers the seeds and the test images). Its benchmark page sets these beside what was published.", ""]


def write_toc(root: Path, out_root: Path, ran: set[str], systems: dict[str, dict]) -> Path:
    """The table of contents of this build: the repository's ``_toc.yml`` without the parts of executed
    chapters the profile did not run (``ran``: the chapters it ran), with each system's landing page (and the
    chapters that ran under it) added to the Seed systems part."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    parts = []
    for part in copy.deepcopy(toc["parts"]):
        generated = [c["file"].rsplit("/", 1)[-1] for c in part["chapters"]
                     if c["file"].startswith(GENERATED.as_posix())]
        if generated and not set(generated) & ran:
            continue
        if part.get("caption") == "Seed systems":
            for name, record in systems.items():
                entry: dict[str, Any] = {"file": (SYSTEMS / name).as_posix()}
                if record["chapters"]:
                    entry["sections"] = [{"file": (SYSTEMS / name / nb).as_posix()} for nb in record["chapters"]]
                part["chapters"].append(entry)
        parts.append(part)
    toc["parts"] = parts
    path = out_root / GENERATED / "_toc.yml"
    write_text_atomic(path, "# Generated by medvision.book for this build (from _toc.yml)\n"
                      + yaml.safe_dump(toc, sort_keys=False))
    return path
