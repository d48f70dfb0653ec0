"""Profiles: which chapters and seed systems a build runs, and each chapter's papermill parameters.

``profiles/<name>.yaml`` is a :class:`~medvision.config.RunConfig` document for the whole book plus one entry per
chapter (and a ``systems`` section); :func:`load_profile` checks all of it before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from medvision.config.run import OVERRIDE_KEYS, RunConfig, merge
from medvision.core.errors import ConfigError, NotFoundError

GENERATED = Path("book") / "generated"


PROFILES = ("smoke", "default", "cpu", "gpu", "systems", "evidence", "reference")


def find_repo_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding ``_config.yml`` and ``notebooks/``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").is_file() and (folder / "notebooks").is_dir():
            return folder
    raise NotFoundError(f"no medvision book (a folder with _config.yml and notebooks/) at or above {here}")


def load_profile(name: str, root: Path) -> dict:
    """Read and check ``profiles/<name>.yaml``.

    A profile is a :class:`~medvision.config.run.RunConfig` document for the whole book plus one entry per
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

    profile = yaml.safe_load(path.read_text()) or {}
    profile.setdefault("notebooks", {})
    notebooks = profile["notebooks"]
    if not isinstance(notebooks, dict) or not (notebooks or profile.get("systems")):
        raise ConfigError(f"{path} must map 'notebooks' to {{notebook name: parameters}} (or list 'systems')")
    for key in [k for k in profile if str(k).startswith("x-")]:  # blocks held for YAML anchors only
        del profile[key]
    unknown = sorted(set(profile) - {"description", "config", "notebooks", "systems", *OVERRIDE_KEYS})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; a profile has description, config, notebooks, "
                          f"systems and the configuration sections {', '.join(OVERRIDE_KEYS)}")
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

    entry = dict(profile["notebooks"].get(notebook) or {})
    shared = {k: profile[k] for k in OVERRIDE_KEYS if k in profile}
    own = {k: entry.pop(k) for k in OVERRIDE_KEYS if k in entry}
    config = entry.pop("config", profile.get("config", ""))
    return {"config": config, "overrides": merge({}, shared, own, where=f"profile, {notebook}"), **entry}


#: The chapters of a system in the book's Seed systems part, and in a book of one system.
PART_CHAPTERS = ("01_eda", "02_training_strategies", "03_per_class_analysis", "04_calibration")


BOOK_CHAPTERS = (*PART_CHAPTERS, "05_feature_baselines")


#: The chapters a profile's ``systems`` entry may run: a system book's, and the benchmark (seeds of the chosen
#: strategies beside the system's published reference, as the reference profile runs it).
SYSTEM_CHAPTERS = (*BOOK_CHAPTERS, "06_benchmark")


#: What a MedMNIST profile lends a system's chapters in ``medvision book --system``: its compute budget (input
#: size, batch, epochs, schedule, strategy settings); data, backbone, weights, head, augmentation and the
#: strategies to compare come from the system's configuration.
COMPUTE = {"experiment": ("image_size", "batch_size"), "train": None, "strategy": None}


@dataclass
class SystemPlan:
    """What to run for one system: its configuration, the overrides of this build and each chapter's own
    parameters."""

    config: str
    overrides: dict = field(default_factory=dict)
    chapters: tuple[str, ...] = PART_CHAPTERS
    parameters: dict[str, dict] = field(default_factory=dict)

    def run_config(self):

        return RunConfig.load(self.config, [self.overrides])


def plans_from_profile(profile: dict) -> dict[str, SystemPlan]:
    """The profile's ``systems`` section: ``{name: {<RunConfig overrides>, chapters: [...], notebooks: {chapter:
    parameters}}}``, each checked (a bad override fails before anything runs)."""

    plans = {}
    for name, entry in (profile.get("systems") or {}).items():
        entry = dict(entry or {})
        unknown = sorted(set(entry) - {"config", "chapters", "notebooks", *OVERRIDE_KEYS})
        if unknown:
            raise ConfigError(f"profile systems.{name}: unknown key(s) {unknown}")
        plan = SystemPlan(config=str(entry.pop("config", name)), chapters=tuple(entry.pop("chapters", PART_CHAPTERS)),
                          parameters=dict(entry.pop("notebooks", {}) or {}),
                          overrides={k: v for k, v in entry.items() if k in OVERRIDE_KEYS})
        bad = sorted(set(plan.chapters) - set(SYSTEM_CHAPTERS))
        if bad:
            raise ConfigError(f"profile systems.{name}: chapters {bad} cannot run on a system; choose from "
                              f"{list(SYSTEM_CHAPTERS)}")
        plan.run_config()
        plans[name] = plan
    return plans


def plan_for_system(system: str, profile: dict, data_root: str = "") -> SystemPlan:
    """A book of one system under a MedMNIST ``profile``: each chapter's parameters from the profile, and of its
    overrides only the compute budget (:data:`COMPUTE`)."""
    parameters, overrides = {}, {}
    for nb in BOOK_CHAPTERS:
        params = chapter_parameters(profile, nb) if nb in profile.get("notebooks", {}) else {"overrides": {}}
        params.pop("config", None)
        chapter_overrides = params.pop("overrides")
        if nb == "02_training_strategies":
            overrides = compute_overrides(chapter_overrides)
        parameters[nb] = params
    if data_root:
        overrides["data"] = {"data_root": str(Path(data_root).expanduser().resolve())}
    plan = SystemPlan(system, overrides, BOOK_CHAPTERS, parameters)
    plan.run_config()
    return plan


def compute_overrides(overrides: dict) -> dict:
    """The parts of a chapter's overrides that are a compute budget (:data:`COMPUTE`)."""
    out = {}
    for section, keep in COMPUTE.items():
        values = overrides.get(section) or {}
        kept = {k: v for k, v in values.items() if keep is None or k in keep}
        if kept:
            out[section] = kept
    return out
