"""External validation: score a finished run on another labelled data set — another hospital, device or public set.

The images go through the run's own preprocessing (cache size and resize mode, input size, normalisation, test-
time augmentation) and the run's temperature; the data set's class names are mapped onto the run's (by name,
case-insensitively, or by an explicit mapping). Because public sets are often re-packagings of one another
(PneumoniaMNIST was made from the same Kermany chest X-rays as the pediatric pneumonia folder), the external
images are audited against the run's training and validation images, and the scores are given on all of them
and on those with no duplicate there. Results go to ``<run>/external/<name>/``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medvision.config import DataConfig
from medvision.config.run import RunConfig
from medvision.core.errors import ConfigError
from medvision.data.cache import build_tensor_cache
from medvision.data.leakage import cross_duplicates, image_hashes
from medvision.data.load import load_samples
from medvision.data.loader import TensorLoader, normalization_from_model
from medvision.data.paths import resolve_data_root
from medvision.data.similarity import threshold_for, versus_seen
from medvision.data.table import SampleTable
from medvision.evaluate.evaluation import clean_test, evaluate_run, load_run, whole_and_clean
from medvision.metrics.calibration import calibration_table
from medvision.metrics.classification import (
    bootstrap_ci,
    detailed_metrics,
    per_class_report,
    predictions_table,
)
from medvision.models.backbones import with_tta
from medvision.models.embeddings import embeddings_for
from medvision.train.loop import predict_logits
from medvision.train.run_dir import RunDirectory

#: A class mapped to this is left out of the external evaluation.
DROP = "-"


@dataclass
class ExternalEvaluation:
    """Scores of a run on an external data set (also written to ``<run>/external/<name>/``)."""

    name: str
    folder: Path
    class_map: dict[str, str]
    images: int
    metrics: dict
    ci: pd.DataFrame
    per_class: pd.DataFrame
    calibration: pd.DataFrame
    clean: dict
    audit: dict


def external_data_config(data: str | os.PathLike[str], overrides=()) -> DataConfig:
    """The data of an external set: a folder of class folders (or of split folders holding class folders), a
    CSV manifest (``path`` and ``label`` columns unless ``overrides`` say otherwise) — either may be given
    relative to the data root — or anything :meth:`RunConfig.load` takes (a ``configs/`` system, a YAML path, a
    MedMNIST flag)."""
    path = Path(data).expanduser()
    if not path.exists() and not path.is_absolute() and (resolve_data_root() / path).exists():
        path = resolve_data_root() / path
    if path.is_dir():
        base = {"data": {"source": "folder", "name": str(path.resolve())}}
        return RunConfig.load("", [base, *overrides]).data
    if path.suffix.lower() == ".csv":
        base = {"data": {"source": "csv", "name": str(path.resolve())}}
        return RunConfig.load("", [base, *overrides]).data
    return RunConfig.load(data, overrides).data


def match_classes(external: tuple[str, ...], run: tuple[str, ...], class_map: Mapping[str, str] | None = None
                  ) -> dict[str, str]:
    """External class name → run class name (or :data:`DROP`): ``class_map`` first, then equal names, then
    names equal but for case.

    Raises:
        ConfigError: an external class maps to no run class, or ``class_map`` names a class that exists on
            neither side.
    """
    class_map = dict(class_map or {})
    unknown_src = sorted(set(class_map) - set(external))
    unknown_dst = sorted({v for v in class_map.values() if v != DROP} - set(run))
    if unknown_src or unknown_dst:
        raise ConfigError(f"class mapping names {unknown_src or unknown_dst} which the "
                          f"{'external data set' if unknown_src else 'run'} does not have; external classes: "
                          f"{list(external)}, the run's classes: {list(run)}")
    lower = {c.lower(): c for c in run}
    mapping = {}
    for name in external:
        target = class_map.get(name) or (name if name in run else lower.get(name.lower()))
        if target is None:
            raise ConfigError(f"external class {name!r} matches none of the run's classes {list(run)}; map it "
                              f"with --map {name}=<run class> (or --map {name}={DROP} to leave it out)")
        mapping[name] = target
    return mapping


def _mapped(table: SampleTable, mapping: dict[str, str], run_classes: tuple[str, ...]) -> SampleTable:
    """The external table with its labels renumbered as the run's classes, dropped classes left out."""
    targets = [mapping[c] for c in table.class_names]
    new = np.array([run_classes.index(t) if t != DROP else -1 for t in targets], dtype=np.int64)
    labels = new[table.labels]
    return table.with_frame(table.frame.assign(label=labels)[labels >= 0], class_names=run_classes)


def evaluate_external(run_dir: str | os.PathLike[str], data: str | os.PathLike[str],
                      class_map: Mapping[str, str] | None = None, name: str = "", overrides=(),
                      n_resamples: int = 1000, seed: int = 0, n_bins: int = 15) -> ExternalEvaluation:
    """Score the best checkpoint of ``run_dir`` on every image of ``data`` (see :func:`external_data_config`).

    Args:
        run_dir: A finished run.
        data: The external data set.
        class_map: External class → run class (``"-"`` leaves a class out); unmapped classes match by name.
        name: The results' folder under ``<run>/external/`` (default: the data set's name).
        overrides: RunConfig overrides of the external data (``data.label_col=dx``...).
        n_resamples: Bootstrap resamples of the CIs.
        seed: Bootstrap seed.
        n_bins: Calibration bins.
    """
    own = evaluate_run(run_dir, n_resamples=n_resamples, seed=seed, n_bins=n_bins)  # the run's temperature
    run = load_run(run_dir)
    config = run.config
    samples = load_samples(external_data_config(data, overrides))
    mapping = match_classes(samples.class_names, run.class_names, class_map)
    table = _mapped(samples, mapping, run.class_names)
    if not len(table):
        raise ConfigError(f"no external image is left once the classes mapped to {DROP!r} are dropped")
    table = table.with_frame(table.frame.assign(split="test"))  # every external image is scored
    cache = build_tensor_cache(table, config.data.size, resize=config.data.resize, on_error=config.data.on_error,
                               progress=False)
    table = cache.table
    norm = normalization_from_model(run.model)
    images, labels = cache.split("test")
    loader = TensorLoader(images, labels, norm["mean"], norm["std"], batch_size=256,
                          out_size=config.experiment.image_size)
    logits, targets = predict_logits(with_tta(run.model, run.tta), loader, torch.device("cpu"))
    audit = external_audit(table, run.cache.table, config.data.near_distance, config.data)
    ids = table.frame["sample_id"].astype(str).tolist()
    clean = clean_test(logits, targets, ids, audit, n_resamples, seed)
    metrics = detailed_metrics(logits, targets)
    ci = bootstrap_ci(logits, targets, n_resamples, seed=seed, per_class_names=run.class_names)
    report = per_class_report(logits, targets, run.class_names)
    calib = calibration_table(logits, targets, own.temperature, n_bins)
    name = name or samples.name
    out = RunDirectory(run_dir).external(name)
    out.ensure_writable()
    preds = predictions_table(logits, targets, ids, run.class_names, own.temperature)
    out.write_predictions(preds)
    out.write_evaluation({
        "split": "external data", "data": str(data), "data_name": samples.name, "images": len(ids),
        "class_map": mapping, "classes_absent": sorted(set(run.class_names) - set(mapping.values())),
        "temperature": own.temperature, "metrics": metrics, "ci": ci.reset_index().to_dict(orient="records"),
        "per_class": report.reset_index().to_dict(orient="records"),
        "calibration": calib.reset_index(names="when").to_dict(orient="records"),
        "clean_test": clean, "audit": {k: v for k, v in audit.items() if k != "test_leaking"},
        "skipped": [list(s) for s in cache.skipped]})
    return ExternalEvaluation(name, out.path, mapping, len(ids), metrics, ci, report, calib, clean, audit)


def external_audit(external: SampleTable, trained_on: SampleTable, max_distance: int,
                   data: DataConfig | None = None) -> dict:
    """Exact and near duplicates of the external images among the run's training and validation images,
    in the shape of :func:`medvision.data.leakage.leakage_audit` (``test_leaking``: the external images that
    have one). With the run's ``data.dedupe: embedding``, feature-space near copies count too, and the audit
    holds the residual-similarity verdict (``similarity``) of the external images against the run's."""
    seen = trained_on.with_frame(trained_on.frame[trained_on.frame["split"].isin(["train", "val"])])
    ext_content, ext_hash = image_hashes(external)
    run_content, run_hash = image_hashes(seen)
    found = cross_duplicates(ext_content, ext_hash, run_content, run_hash, max_distance)
    ids = external.frame["sample_id"].astype(str).to_numpy()
    leaking = found["exact"].to_numpy() | found["near"].to_numpy()
    similarity = None
    if data is not None and data.dedupe == "embedding":
        seen_features = embeddings_for(seen, data)
        similarity, close = versus_seen(seen_features, seen.labels, embeddings_for(external, data), external.labels,
                                        threshold_for(seen, seen_features, data))
        leaking |= close
    return {"similarity": similarity, "max_distance": max_distance,
            "against": f"{trained_on.name} train+val ({len(seen)} images)",
            "pairs": {"exact": {"external-train/val": int(found["exact"].sum())},
                      "near": {"external-train/val": int(found["near"].sum())}},
            "groups": {}, "test": len(ids), "test_leaking": sorted(ids[leaking].tolist()),
            "test_clean": int((~leaking).sum()),
            "distance_quantiles": {q: int(np.quantile(found["distance"], q)) for q in (0.01, 0.5)}
            if len(found) else {}}


def load_externals(run_dir: str | os.PathLike[str]) -> dict[str, dict]:
    """The saved external evaluations of a run, by name (``evaluation.json`` of each)."""
    rd = RunDirectory(run_dir)
    return {name: rd.external(name).evaluation() for name in rd.externals()}


def external_table(saved: dict) -> pd.DataFrame:
    """A saved external evaluation (``<run>/external/<name>/evaluation.json``) as the side-by-side table of
    :func:`medvision.evaluate.evaluation.whole_and_clean`."""
    return whole_and_clean(pd.DataFrame(saved["ci"]).set_index("metric"), saved["clean_test"], "external set")


def describe_external(name: str, saved: dict) -> str:
    """Sentences on one external evaluation: the data, the class mapping, the duplicates found, the scores."""
    audit, clean, m = saved["audit"], saved["clean_test"], saved["metrics"]
    mapping = ", ".join(f"{k} → {v}" for k, v in saved["class_map"].items())
    text = (f"**{name}** ({saved['images']} images, classes {mapping}): accuracy {m['accuracy']:.3f}, macro-F1 "
            f"{m['macro_f1']:.3f}, AUROC {m.get('auroc', float('nan')):.3f}, scored with the run's "
            f"preprocessing and temperature ({saved['temperature']:.3f}).")
    exact, near = audit["pairs"]["exact"]["external-train/val"], audit["pairs"]["near"]["external-train/val"]
    if exact or near:
        text += (f" {exact} of its images are exact and {near} near duplicates (pHash distance <= "
                 f"{audit['max_distance']}) of images the run trained or validated on ({audit['against']})")
        text += (f"; without them accuracy is {clean['metrics']['accuracy']:.3f}." if clean["images"] else ".")
    else:
        text += f" None of its images duplicates an image the run trained or validated on ({audit['against']})."
    if audit.get("similarity"):
        text += " " + audit["similarity"]["sentence"]
    return text
