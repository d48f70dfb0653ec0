"""Export a finished run directory as a self-contained bundle with a model card.

``export_bundle(run_dir, out)`` writes ``model.safetensors``, ``bundle.json`` and ``MODEL_CARD.md`` (and, on
request, ``model.onnx`` / ``model.pt2`` checked against the eager model) into a temporary folder that is
renamed into place, so an interrupted export never leaves a half-written bundle. The temperature and the
abstention threshold come from the *validation* split; the metrics are the run's test evaluation.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import save_file

import medvision
from medvision.config.run import RunConfig
from medvision.core.errors import ConfigError, MissingExtraError, NotFoundError, OutputExistsError
from medvision.data.loader import normalization_from_model
from medvision.deploy.bundle import (
    CARD_FILE,
    FORMAT,
    FORMAT_VERSION,
    META_FILE,
    WEIGHTS_FILE,
    BundleError,
    build_model,
    state_dict_for_export,
)
from medvision.evaluate.evaluation import describe_similarity, evaluate_run
from medvision.metrics.calibration import (
    MIN_VALIDATION_ERRORS,
    coverage_for_accuracy,
    risk_coverage,
)
from medvision.models.backbones import sha256_file, with_tta
from medvision.models.checkpoints import load_checkpoint
from medvision.models.fusion import folded_copy
from medvision.train.run_dir import RunDirectory

DEPLOY_FORMATS = ("onnx", "pt2")


def load_descriptions(source: str | os.PathLike[str] | Mapping[str, str] | None,
                      class_names: Sequence[str]) -> dict[str, str]:
    """Per-class descriptions from a mapping or a YAML/JSON file ``{class name: text}``; names must exist."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        raw, where = dict(source), "descriptions"
    else:
        path = Path(source)
        if not path.is_file():
            raise NotFoundError(f"descriptions file {path} does not exist")
        try:
            raw, where = yaml.safe_load(path.read_text()) or {}, str(path)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML ({exc})") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} must map class names to descriptions")
    unknown = sorted(set(map(str, raw)) - set(class_names))
    if unknown:
        raise ConfigError(f"{where}: unknown class(es) {unknown}; the model's classes are {list(class_names)}")
    return {str(k): str(v) for k, v in raw.items()}


def abstention_threshold(val_logits: torch.Tensor, val_targets: torch.Tensor, temperature: float,
                         target_accuracy: float, test_logits: torch.Tensor | None = None,
                         test_targets: torch.Tensor | None = None,
                         min_errors: int = MIN_VALIDATION_ERRORS) -> dict:
    """The confidence threshold that keeps the largest share of *validation* cases at ``target_accuracy``.

    Chosen on the risk-coverage curve of temperature-scaled validation probabilities. A validation split with
    fewer than ``min_errors`` mistakes cannot say where the mistakes lie (every threshold "reaches" the target),
    so none is fitted: the threshold is 0 (no case abstains) and ``reason`` says why, as for the temperature
    (:func:`medvision.metrics.calibration.calibrate_temperature`). With test logits, what the threshold then does on
    test is *reported* (coverage and accuracy of the kept cases), never used.
    """
    probs = (val_logits.float() / temperature).softmax(1)
    curve = risk_coverage(probs, val_targets)
    errors = int((probs.argmax(1) != val_targets).sum())
    if errors < min_errors:
        coverage, threshold = 1.0, 0.0
        reason = (f"not fitted: the validation split has {errors} misclassified case(s) of {len(val_targets)} "
                  f"(fewer than {min_errors}), too few to tell where mistakes lie; no case abstains")
    else:
        (coverage, threshold), reason = coverage_for_accuracy(curve, target_accuracy), ""
    out = {"target_accuracy": target_accuracy, "threshold": threshold, "val_coverage": coverage,
           "val_accuracy_all": float(curve["accuracy"].iloc[-1]), "fitted_on": "val", "fitted": not reason,
           "reason": reason}
    if test_logits is not None and test_targets is not None:
        p = (test_logits.float() / temperature).softmax(1)
        conf, pred = p.max(1)
        kept = conf >= threshold
        out["test_coverage"] = float(kept.float().mean())
        out["test_accuracy_kept"] = float((pred[kept] == test_targets[kept]).float().mean()) if kept.any() else None
    return out


def _preprocessing(model: torch.nn.Module, config: RunConfig) -> dict:
    norm = normalization_from_model(model)
    return {"cache_size": config.data.size, "input_size": config.experiment.image_size,
            "resize": config.data.resize, "mean": [float(m) for m in norm["mean"]],
            "std": [float(s) for s in norm["std"]], "channels": "RGB",
            "steps": "decode to RGB uint8; resize to cache_size (bicubic, resize mode); /255; resize to "
                     "input_size (bilinear, antialias); (x - mean) / std"}


def _check_deploy(kind: str, path: Path, model: torch.nn.Module, size: int, atol: float = 1e-4) -> float:
    """Largest absolute logit difference between the deployment file and the eager model on random input."""
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eager = model(x)
    if kind == "pt2":
        got = torch.export.load(path).module()(x)
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {"image": x.numpy()})[0])
    diff = float((got.detach() - eager).abs().max())
    if not np.isfinite(diff) or diff > atol:
        raise BundleError(f"{path.name} disagrees with the eager model (max |logit difference| {diff:.2e} > {atol})")
    return diff


def export_deploy(kind: str, model: torch.nn.Module, size: int, folder: Path) -> tuple[Path, float]:
    """Write ``model.pt2`` (``torch.export``) or ``model.onnx`` with a dynamic batch axis, and check it against
    ``model`` in eval mode. The ``torch.export`` graph gets the BatchNorms folded into the convolutions
    (:mod:`medvision.models.fusion`: one pass over the activations less per block); ONNX Runtime folds them itself."""
    x = torch.zeros(2, 3, size, size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    model.eval()
    if kind == "pt2":
        path = folder / "model.pt2"
        sample = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
        graph = folded_copy(model, sample)
        torch.export.save(torch.export.export(graph, (x,), dynamic_shapes=({0: batch},)), path)
    elif kind == "onnx":
        try:
            import onnxruntime  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError as exc:
            raise MissingExtraError("ONNX export needs the [onnx] extra: pip install 'medvision[onnx]'") from exc
        path = folder / "model.onnx"
        torch.onnx.export(model, (x,), path, dynamo=True, input_names=["image"], output_names=["logits"],
                          dynamic_shapes=({0: batch},), external_data=False, verbose=False)
    else:
        raise ConfigError(f"deployment format must be one of {DEPLOY_FORMATS}, not {kind!r}")
    return path, _check_deploy(kind, path, model, size)


def export_bundle(run_dir: str | os.PathLike[str], out: str | os.PathLike[str], *,
                  descriptions: str | os.PathLike[str] | Mapping[str, str] | None = None,
                  target_accuracy: float = 0.95, formats: Sequence[str] = (), checkpoint: str = "best",
                  overwrite: bool = False) -> Path:
    """Write a bundle for the ``checkpoint`` of a finished run.

    Args:
        run_dir: A run directory written by :func:`medvision.train.runner.run_strategy`.
        out: The bundle folder to create.
        descriptions: Per-class descriptions (a mapping, or a YAML/JSON file).
        target_accuracy: Accuracy the abstention threshold aims at on validation.
        formats: Extra deployment files, any of ``"onnx"``, ``"pt2"``; each is checked against the model.
        checkpoint: ``best`` (chosen on validation) or ``last``.
        overwrite: Replace an existing bundle at ``out``.

    Returns:
        The bundle folder.
    """
    rd, out = RunDirectory(run_dir), Path(out)
    run_dir = rd.path
    rd.require(rd.CONFIG, rd.SUMMARY, rd.CLASSES, rd.checkpoint(checkpoint).name)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass overwrite=True (--force) to replace it")
    saved, config, summary, class_names = rd.config(), rd.run_config(), rd.summary(), rd.classes()
    described = load_descriptions(descriptions, class_names)
    ev = evaluate_run(run_dir)
    exp = config.experiment
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "architecture": exp.backbone,
            "head_hidden": exp.head_hidden, "drop_rate": exp.drop_rate, "class_names": class_names,
            "descriptions": described, "tta": rd.tta()}
    model = build_model(meta)
    model.load_state_dict(load_checkpoint(rd.checkpoint(checkpoint))["model"])
    model.eval()
    meta |= {
        "preprocessing": _preprocessing(model, config),
        "temperature": float(ev.temperature), "temperature_fitted_on": "val",
        "temperature_fit": ev.temperature_fit.to_dict(),
        "abstention": abstention_threshold(ev.val_logits, ev.val_targets, ev.temperature, target_accuracy,
                                           ev.test_logits, ev.test_targets),
        "metrics": {"split": "test", "test": ev.metrics, "val": summary["val"], "clean_test": ev.clean,
                    "test_ci95": ev.ci.reset_index(names="metric").to_dict(orient="records"),
                    "per_class": ev.per_class.reset_index(names="class").to_dict(orient="records"),
                    "calibration": ev.calibration.reset_index(names="when").to_dict(orient="records")},
        "training": {"run": run_dir.name, "strategy": summary["strategy"], "checkpoint": checkpoint,
                     "best_epoch": summary["best_epoch"], "epochs_run": summary["epochs_run"],
                     "seed": config.train.seed, "pretrained_weights": saved.get("weights", {}),
                     "environment": rd.environment()},
        "data": saved.get("data", {}),
        "disclaimer": medvision.DISCLAIMER,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "medvision_version": medvision.__version__,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_file(state_dict_for_export(model), tmp / WEIGHTS_FILE,
                  metadata={"format": FORMAT, "architecture": meta["architecture"]})
        files = {WEIGHTS_FILE: sha256_file(tmp / WEIGHTS_FILE)}
        checks = {}
        for kind in dict.fromkeys(formats):
            path, diff = export_deploy(kind, with_tta(model, meta["tta"]), meta["preprocessing"]["input_size"],
                                       tmp)
            files[path.name] = sha256_file(path)
            checks[path.name] = {"max_abs_logit_diff_vs_eager": diff}
        meta["files"], meta["deploy_checks"] = files, checks
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=float))
        (tmp / CARD_FILE).write_text(model_card(meta))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.3f}"


def _test_metric_lines(metrics: dict) -> list[str]:
    """The test metrics table: the whole test split, and beside it the test images with no duplicate (or shared
    group) in train/val when the run's leakage audit found any."""
    clean = metrics.get("clean_test") or {}
    whole = [r for r in metrics["test_ci95"] if "[" not in str(r["metric"])]
    n = clean.get("images", 0) + clean.get("excluded", 0)
    if not clean.get("excluded"):
        return ["| metric | estimate | 95% CI |", "|---|---|---|",
                *[f"| {r['metric']} | {_fmt(r['estimate'])} | {_fmt(r['lower'])} – {_fmt(r['upper'])} |"
                  for r in whole]] + (["", "The leakage audit found no test image with a duplicate in train/val. "
                                       + describe_similarity(clean.get("similarity"))] if clean else [])
    by_metric = {r["metric"]: r for r in clean.get("ci", [])}
    lines = [f"{clean['excluded']} of {n} test images have an exact or near duplicate (pHash distance <= "
             f"{clean.get('max_distance')}) or a shared group in train/val; the right-hand columns leave them out.",
             "", f"| metric | whole test ({n}) | 95% CI | no duplicate in train/val ({clean['images']}) | 95% CI |",
             "|---|---|---|---|---|"]
    for r in whole:
        c = by_metric.get(r["metric"], {})
        lines.append(f"| {r['metric']} | {_fmt(r['estimate'])} | {_fmt(r['lower'])} – {_fmt(r['upper'])} | "
                     f"{_fmt(c.get('estimate'))} | {_fmt(c.get('lower'))} – {_fmt(c.get('upper'))} |")
    return [*lines, "", describe_similarity(clean.get("similarity"))]


def _temperature_line(meta: dict) -> str:
    fit = meta.get("temperature_fit")
    if fit is None or fit.get("used", True):
        return f"Temperature {meta['temperature']:.3f}, fitted on the validation split"
    return f"Temperature kept at 1 (not fitted): {fit['reason']}"


def model_card(meta: dict) -> str:
    """``MODEL_CARD.md`` from the bundle metadata (every number comes from the run's evaluation)."""
    tr, data, metrics = meta["training"], meta["data"], meta["metrics"]
    weights = tr.get("pretrained_weights", {})
    pre, abst = meta["preprocessing"], meta["abstention"]
    lines = [f"# Model card: {meta['architecture']} on {data.get('name', 'unknown data')}", "",
             f"> **{meta['disclaimer']}**", "",
             "## Model", "",
             f"- Architecture: timm `{meta['architecture']}`"
             + (f" with an MLP head ({meta['head_hidden']} hidden units)" if meta["head_hidden"] else ""),
             f"- Started from: {weights.get('source', '?')} weights {weights.get('location', '')}"
             + (f" (sha256 `{weights['sha256'][:16]}…`)" if weights.get("sha256") else ""),
             f"- Fine-tuning strategy: `{tr['strategy']}`; checkpoint `{tr['checkpoint']}` (epoch {tr['best_epoch']} "
             f"of {tr['epochs_run']}, chosen on validation); seed {tr['seed']}",
             *([f"- Test-time augmentation: `{meta['tta']}` (the mean probabilities of each image and its mirror "
                "image; the metrics below and the deployed files include it)"] if meta.get("tta", "none") != "none"
               else []),
             f"- medvision {meta['medvision_version']}, git commit "
             f"`{tr.get('environment', {}).get('git_commit', 'unknown')}`; exported {meta['created']}", "",
             "## Intended use", "",
             "Teaching and research on transfer learning for medical images. Not for clinical use: the model was "
             "trained on a small public data set, was not validated prospectively, and its errors are not "
             "bounded on images from other devices, sites or populations.", "",
             "## Classes", ""]
    lines += [f"- `{c}`" + (f": {meta['descriptions'][c]}" if c in meta["descriptions"] else "")
              for c in meta["class_names"]]
    lines += ["", "## Data", "",
              f"- {data.get('name', '?')}: {data.get('images', '?')} images; source {data.get('source', '?')}; "
              f"licence {data.get('licence', data.get('license', 'see the data set'))}",
              f"- Data md5 / fingerprint: `{data.get('md5') or tr.get('environment', {}).get('data_fingerprint', '?')}`",
              "", "## Test metrics (95% bootstrap CIs)", ""]
    lines += _test_metric_lines(metrics)
    lines += ["", "### Per class (test)", "", "| class | support | precision | recall | F1 |", "|---|---|---|---|---|"]
    lines += [f"| {r['class']} | {int(r['support'])} | {_fmt(r['precision'])} | {_fmt(r['recall'])} | "
              f"{_fmt(r['f1'])} |" for r in metrics["per_class"]]
    calib = {r["when"]: r for r in metrics["calibration"]}
    lines += ["", "## Calibration and abstention", "",
              f"- {_temperature_line(meta)}. Test ECE {_fmt(calib.get('before', {}).get('ece'))} before, "
              f"{_fmt(calib.get('after', {}).get('ece'))} after.",
              (f"- Abstention threshold {abst['threshold']:.3f} on calibrated confidence: on validation it keeps "
               f"{abst['val_coverage']:.0%} of cases at accuracy >= {abst['target_accuracy']:.0%} (all cases: "
               f"{abst['val_accuracy_all']:.3f})." if abst.get("fitted", True) else
               f"- Abstention threshold {abst['reason']}.")
              + (f" On test it keeps {abst['test_coverage']:.0%} of cases, at accuracy "
                 f"{_fmt(abst['test_accuracy_kept'])} (reported, not used to choose)." if "test_coverage" in abst
                 else "") + " Use `Predictor.from_bundle(path, abstain=True)`.", "",
              "## Preprocessing", "", f"{pre['steps']}; cache_size {pre['cache_size']}, input_size "
              f"{pre['input_size']}, resize `{pre['resize']}`, mean {pre['mean']}, std {pre['std']}.", "",
              "## Files", "", "| file | sha256 |", "|---|---|"]
    lines += [f"| {name} | `{digest}` |" for name, digest in meta["files"].items()]
    for name, check in meta.get("deploy_checks", {}).items():
        lines.append(f"\n`{name}` agrees with the PyTorch model to {check['max_abs_logit_diff_vs_eager']:.1e} "
                     "(max absolute logit difference on random input).")
    lines += ["", "## Use", "", "```python", "from medvision.deploy.inference import Predictor",
              "predictor = Predictor.from_bundle('path/to/bundle')",
              "print(predictor.predict('image.png'))", "```", ""]
    return "\n".join(lines)
