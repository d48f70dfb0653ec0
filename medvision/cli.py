"""The ``medvision`` command line.

Sub-commands: ``data`` (fetch / inspect / split / leakage), ``train``, ``evaluate``, ``export``, ``predict``,
``book`` and ``app``; each has ``--help``.

Exit codes: 0 success; 1 an unexpected error (a bug: the traceback is shown); 2 a usage or input error (bad
arguments, missing or unreadable files, a tampered bundle: one line, no traceback); 3 ``predict`` finished but
skipped unreadable images (listed on stderr); 130 interrupted (finished work is kept; training resumes).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from medvision.config import choices
from medvision.core.errors import NotFoundError, UserError
from medvision.train.run_dir import RunDirectory

EXIT_OK, EXIT_USER, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 2, 3, 130


# --- data --------------------------------------------------------------------------------------------------
def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="a configs/ system (ham10000), a YAML configuration, a MedMNIST flag "
                                "(pneumoniamnist), or with --source folder/csv a folder / CSV under the data root")
    p.add_argument("--source", choices=choices.SOURCES, default=None,
                   help="read NAME as this kind of data set instead of as a configuration")
    p.add_argument("--set", action="append", default=[], metavar="data.FIELD=VALUE",
                   help="override a data field, e.g. --set data.group_col=patient (repeatable)")
    p.add_argument("--size", type=int, default=None, help="MedMNIST file size, or the working resolution")
    p.add_argument("--data-root", default=None, help="default: $MEDVISION_DATA, then the user cache dir")
    p.add_argument("--path-col", default=None, help="CSV column of image paths")
    p.add_argument("--label-col", default=None, help="CSV column of labels")
    p.add_argument("--group-col", default=None, help="CSV column of patient / lesion ids (group-aware split)")
    p.add_argument("--seed", type=int, default=None, help="split seed")
    p.add_argument("--dedupe", choices=choices.DEDUPE_MODES, default=None,
                   help="split by clusters of exact, near-duplicate (pHash) or feature-space near-duplicate (embedding) images "
                        "(and groups): no cluster spans splits")
    p.add_argument("--near-distance", type=int, default=None, help="pHash distance of a near duplicate (of 64)")
    p.add_argument("--official-split", choices=choices.OFFICIAL_SPLIT_POLICIES, default=None,
                   help="with --dedupe, for a set with an official split: keep it, drop evaluation images that "
                        "duplicate earlier splits, or split anew by clusters")


#: The data flags of the ``data`` sub-commands and the DataConfig field each sets.
_DATA_FLAGS = {"size": "size", "data_root": "data_root", "path_col": "path_col", "label_col": "label_col",
               "group_col": "group_col", "seed": "seed", "dedupe": "dedupe", "near_distance": "near_distance",
               "official_split": "official_split"}


def _data_config(args: argparse.Namespace):
    """The :class:`DataConfig` the ``data`` sub-commands work on: NAME read as a configuration (system, YAML or
    MedMNIST flag) or, with ``--source``, as a data set of that kind; then the flags given, then ``--set``."""
    from medvision.config.run import RunConfig, parse_override
    from medvision.core.errors import ConfigError

    sets = [parse_override(item) for item in args.set]
    if any(set(o) != {"data"} for o in sets):
        raise ConfigError(f"the data sub-commands take data.FIELD=VALUE overrides only, not {' '.join(args.set)}")
    flags = {field: getattr(args, flag) for flag, field in _DATA_FLAGS.items() if getattr(args, flag) is not None}
    if args.source:
        config = RunConfig.load("", [{"data": {"source": args.source, "name": args.name}}])
    else:
        config = RunConfig.load(args.name)
    return config.override({"data": flags}, *sets).data


def _load_table(args: argparse.Namespace):
    from medvision.data import load_data

    cfg = _data_config(args)
    return load_data(cfg), cfg


def _data_inspect(args: argparse.Namespace) -> int:
    from medvision.data.dedupe import describe_split_report

    table, cfg = _load_table(args)
    print(table.summary())
    print(table.counts().to_string())
    if table.split_report:
        print(describe_split_report(table.split_report))
    if args.leakage:
        _leakage(table, cfg)
    return EXIT_OK


def _leakage(table, cfg, out: str = "") -> None:
    """Print the leakage of ``table``'s split: duplicate pairs (exact, pHash within ``cfg.near_distance``) and
    shared groups by kind and by split pair, then the feature-space residual-similarity verdict (or why it did
    not run); optionally write every duplicate pair to ``out``."""
    from medvision.core.errors import UserError
    from medvision.data import leakage_report, summarize_leakage
    from medvision.data.leakage import leakage_audit
    from medvision.models.embeddings import similarity_audit

    report = leakage_report(table, max_distance=cfg.near_distance, progress=True, on_error=cfg.on_error)
    print(summarize_leakage(report).to_string())
    if table.splits:
        audit = leakage_audit(table, cfg.near_distance, report)
        by_pair = {kind: {p: n for p, n in counts.items() if n} for kind, counts in audit["pairs"].items()}
        by_pair["group"] = {p: n for p, n in audit["groups"].items() if n}
        print("by split pair: " + ("; ".join(f"{kind} {pair} {n}" for kind, pairs in by_pair.items()
                                              for pair, n in pairs.items()) or "none"))
        try:
            print(similarity_audit(table, cfg, progress=True)["sentence"])
        except UserError as exc:
            print(f"The feature-space check did not run: {exc}")
    if out:
        from medvision.core.atomic import atomic_path

        with atomic_path(out) as tmp:
            report.to_csv(tmp, index=False)
        print(f"pairs written to {out}")


def _data_leakage(args: argparse.Namespace) -> int:
    _leakage(*_load_table(args), out=args.out)
    return EXIT_OK


def _data_split(args: argparse.Namespace) -> int:
    from medvision.core.atomic import write_json_atomic
    from medvision.data.dedupe import describe_split_report
    from medvision.data.splits import save_manifest

    table, _ = _load_table(args)
    save_manifest(table, args.out)
    print(table.counts().to_string())
    print(f"split manifest ({len(table)} rows) written to {args.out}; reuse it with DataConfig(manifest=...)")
    if table.split_report:
        report = Path(args.out).with_suffix(".report.json")
        write_json_atomic(report, table.split_report)
        print(f"{describe_split_report(table.split_report)} Every dropped or moved image: {report}")
    return EXIT_OK


def _data_fetch(args: argparse.Namespace) -> int:
    from medvision.train.systems import fetch_system, load_system

    try:
        target = fetch_system(load_system(args.name, data_root=args.data_root))
    except UserError as exc:  # no handle, no kagglehub, offline: all user-fixable
        print(f"medvision data fetch: {exc}", file=sys.stderr)
        return EXIT_USER
    print(f"{args.name}: data ready at {target}")
    return EXIT_OK


# --- train / evaluate --------------------------------------------------------------------------------------
def _train(args: argparse.Namespace) -> int:
    from medvision.core import distributed
    from medvision.data.leakage import collect_leakage
    from medvision.train.systems import load_system, train_system

    system = load_system(args.config, data_root=args.data_root, overrides=args.set)
    runs_dir = Path(args.runs_dir or Path("runs") / system.label)
    dist = distributed.setup()  # a no-op unless started by torchrun
    try:
        with collect_leakage() as leakage:
            summaries = train_system(system, runs_dir, strategies=args.strategy, limit=args.limit,
                                     progress=not args.quiet, track=args.track, tracking_uri=args.tracking_uri)
    finally:
        distributed.cleanup()
    if not dist.is_main:
        return EXIT_OK
    for message in leakage.messages:
        print(f"medvision train: warning: {message}", file=sys.stderr)
    if dist.enabled:
        print(f"trained with DistributedDataParallel on {dist.world_size} processes")
    top = sorted({k for s in summaries for k in s["test"] if k.startswith("top") and k.endswith("_accuracy")},
                 key=lambda k: int(k[3:].split("_")[0]))
    print(f"{'run':<24} {'best epoch':>10} {'val macro-F1':>13} {'test macro-F1':>14} {'test AUROC':>11}"
          + "".join(f" {'test top-' + k[3:].split('_')[0]:>11}" for k in top))
    for s in summaries:
        print(f"{s['run']:<24} {s['best_epoch']:>10} {s['val']['macro_f1']:>13.3f} {s['test']['macro_f1']:>14.3f} "
              f"{s['test'].get('auroc', float('nan')):>11.3f}" + "".join(f" {s['test'].get(k, float('nan')):>11.3f}"
                                                                      for k in top))
    print(f"run directories under {runs_dir}; export one with `medvision export {runs_dir}/<run> BUNDLE`")
    return EXIT_OK


def _parse_map(items: Sequence[str]) -> dict[str, str]:
    from medvision.core.errors import ConfigError

    out = {}
    for item in items:
        src, sep, dst = item.partition("=")
        if not sep or not src or not dst:
            raise ConfigError(f"--map {item!r} must look like EXTERNAL_CLASS=RUN_CLASS (or EXTERNAL_CLASS=- to leave "
                              "it out)")
        out[src] = dst
    return out


def _evaluate_external(args: argparse.Namespace) -> int:
    from medvision.evaluate.external import evaluate_external

    ev = evaluate_external(args.run_dir, args.data, _parse_map(args.map), name=args.name, overrides=args.set,
                           n_resamples=args.resamples)
    if args.json:
        print(json.dumps({"name": ev.name, "images": ev.images, "class_map": ev.class_map, "metrics": ev.metrics,
                          "clean": ev.clean, "audit": {k: v for k, v in ev.audit.items() if k != "test_leaking"}},
                         indent=2, default=float))
        return EXIT_OK
    print(f"{args.run_dir} on {args.data}: {ev.images} images, classes {ev.class_map}; written to {ev.folder}")
    print(ev.ci.to_string(float_format=lambda x: f"{x:.3f}"))
    exact = ev.audit["pairs"]["exact"]["external-train/val"]
    near = ev.audit["pairs"]["near"]["external-train/val"]
    print(f"{exact} exact and {near} near duplicates of the run's training/validation images "
          f"({ev.audit['against']}, pHash distance <= {ev.audit['max_distance']})"
          + (f"; without them ({ev.clean['images']} images): accuracy {ev.clean['metrics']['accuracy']:.3f}, "
             f"AUROC {ev.clean['metrics'].get('auroc', float('nan')):.3f}" if ev.clean["excluded"] and
             ev.clean["images"] else ""))
    return EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    from medvision.evaluate.evaluation import evaluate_run

    if args.data:
        return _evaluate_external(args)

    ev = evaluate_run(args.run_dir, n_resamples=args.resamples, force=args.force)
    if args.figures:
        from medvision.evaluate.evaluation import save_figures

        for path in save_figures(ev, args.figures):
            print(f"figure written: {path}", file=sys.stderr)
    if args.json:
        print(json.dumps({"metrics": ev.metrics, "temperature": ev.temperature, "clean_test": ev.clean,
                          "temperature_fit": ev.temperature_fit.to_dict(),
                          "ci95": ev.ci.reset_index().to_dict(orient="records")}, indent=2, default=float))
        return EXIT_OK
    print(f"{args.run_dir}: test split, {ev.temperature_fit.describe()}")
    print(ev.ci.to_string(float_format=lambda x: f"{x:.3f}"))
    if ev.clean["excluded"]:
        from medvision.evaluate.evaluation import whole_and_clean_test

        print(f"{ev.clean['excluded']} of {len(ev.test_ids)} test images have a duplicate in train/val "
              f"({RunDirectory.LEAKAGE}); without them:")
        print(whole_and_clean_test(ev).to_string(float_format=lambda x: f"{x:.3f}"))
    print(ev.per_class.to_string(float_format=lambda x: f"{x:.3f}"))
    print(ev.calibration.to_string(float_format=lambda x: f"{x:.4f}"))
    return EXIT_OK


# --- export / predict / app --------------------------------------------------------------------------------
def _resolve_run(path: str) -> Path:
    """A run directory, or a folder of runs (the best on validation macro-F1 is taken and named)."""
    from medvision.evaluate.evaluation import best_run

    p = Path(path)
    if RunDirectory(p).is_run():
        return p
    if not p.is_dir():
        raise NotFoundError(f"{p} does not exist")
    best = best_run(p)
    print(f"{p} holds several runs: exporting {best.name} (best validation macro-F1)", file=sys.stderr)
    return best


def _export(args: argparse.Namespace) -> int:
    from medvision.deploy.export import export_bundle

    formats = [f for f, on in (("onnx", args.onnx), ("pt2", args.pt2)) if on]
    out = export_bundle(_resolve_run(args.run_dir), args.out, descriptions=args.descriptions,
                        target_accuracy=args.target_accuracy, formats=formats, overwrite=args.force)
    meta = json.loads((out / "bundle.json").read_text())
    print(f"bundle written to {out}: {', '.join(meta['files'])}, bundle.json, MODEL_CARD.md")
    print(f"classes {meta['class_names']}; temperature {meta['temperature']:.3f}; abstention threshold "
          f"{meta['abstention']['threshold']:.3f} (validation coverage {meta['abstention']['val_coverage']:.0%})")
    return EXIT_OK


def _predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from medvision.data.errors import ImageLoadError
    from medvision.deploy.inference import Predictor, image_files

    abstain: bool | float = args.threshold if args.threshold is not None else args.abstain
    predictor = Predictor.from_bundle(args.bundle, device=args.device, abstain=abstain, batch_size=args.batch_size,
                                      backend=args.backend)
    abstention = predictor.bundle.meta.get("abstention", {})
    if abstain is True and not abstention.get("fitted", True):
        print(f"medvision predict: --abstain: the bundle's threshold was {abstention['reason']}", file=sys.stderr)
    files = image_files(args.inputs)
    if not files:
        raise NotFoundError(f"no image files in {' '.join(args.inputs)}")
    rows, skipped = [], []
    chunk = 8 * args.batch_size  # the predictor decodes batch i+1 while the model runs on batch i within a chunk
    for start in tqdm(range(0, len(files), chunk), desc="predict", unit="chunk",
                      disable=args.quiet or len(files) <= chunk):
        batch = files[start:start + chunk]
        try:
            preds = predictor.predict(batch, top_k=args.top_k)
        except ImageLoadError:  # find the bad files one by one, keep the rest
            preds = []
            for f in batch:
                try:
                    preds.append(predictor.predict(f, top_k=args.top_k))
                except ImageLoadError as exc:
                    skipped.append((str(f), str(exc)))
        rows += [p.to_dict() for p in preds]
    if not rows:
        for f, why in skipped:
            print(f"skipped {f}: {why}", file=sys.stderr)
        raise ImageLoadError(f"none of the {len(files)} input files could be read")
    _write_predictions(rows, args.out, predictor.class_names)
    if args.out and not args.quiet:
        print(f"{len(rows)} predictions written to {args.out}", file=sys.stderr)
    for f, why in skipped:
        print(f"skipped {f}: {why}", file=sys.stderr)
    print(predictor.disclaimer, file=sys.stderr)
    return EXIT_PARTIAL if skipped else EXIT_OK


def _write_predictions(rows: list[dict], out: str, class_names: Sequence[str]) -> None:
    import pandas as pd

    from medvision.core.atomic import atomic_path, write_json_atomic

    if out and out.endswith(".json"):
        write_json_atomic(out, rows)
        return
    flat = pd.DataFrame([{"file": r["source"], "label": r["label"], "confidence": r["confidence"],
                          "abstained": r["abstained"],
                          "top_k": "; ".join(f"{c}={p:.4f}" for c, p in r["top_k"]),
                          **{f"p[{c}]": r["probabilities"][c] for c in class_names},
                          "description": r["description"]} for r in rows])
    if out:
        with atomic_path(out) as tmp:
            flat.to_csv(tmp, index=False)
    else:
        flat.to_csv(sys.stdout, index=False)


def _app(args: argparse.Namespace) -> int:
    import importlib.util
    import subprocess

    from medvision.deploy.bundle import read_meta

    read_meta(args.bundle)  # fail here, not in the browser
    if importlib.util.find_spec("streamlit") is None:
        print("medvision app: the app needs the [app] extra: pip install 'medvision[app]'", file=sys.stderr)
        return EXIT_USER
    script = Path(__file__).with_name("app.py")
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(args.port),
           "--server.headless", "true", "--browser.gatherUsageStats", "false", "--", "--bundle", args.bundle]
    if args.webhook:
        cmd += ["--webhook", args.webhook]
    if args.send_image:
        cmd += ["--send-image"]
    return subprocess.call(cmd)


# --- parser ------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medvision", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("book", help="execute the notebooks of a profile and build the HTML book (see book --help)",
                   add_help=False)

    data = sub.add_parser("data", help="data sets: fetch, inspect, split, leakage")
    dsub = data.add_subparsers(dest="action", required=True, metavar="ACTION")
    inspect = dsub.add_parser("inspect", help="class counts per split (and a leakage summary)")
    _add_data_args(inspect)
    inspect.add_argument("--leakage", action="store_true", help="also hash images for duplicates")
    inspect.set_defaults(func=_data_inspect)
    split = dsub.add_parser("split", help="split a data set and save the manifest CSV")
    _add_data_args(split)
    split.add_argument("--out", required=True, help="manifest CSV to write")
    split.set_defaults(func=_data_split)
    leak = dsub.add_parser("leakage", help="exact and near-duplicate images across splits")
    _add_data_args(leak)
    leak.add_argument("--out", default="", help="also write every duplicate pair to this CSV")
    leak.set_defaults(func=_data_leakage)
    fetch = dsub.add_parser("fetch", help="download a seed system's data with kagglehub, or say where to put it")
    fetch.add_argument("name", help="a configs/*.yaml system (chest_xray_pneumonia, ham10000, ...)")
    fetch.add_argument("--data-root", default="")
    fetch.set_defaults(func=_data_fetch)

    train = sub.add_parser("train", help="train the strategies of a YAML configuration")
    train.add_argument("config", help="a configs/*.yaml name (ham10000) or a YAML path")
    train.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                       help="override a field, e.g. --set train.epochs=3 --set experiment.image_size=64")
    train.add_argument("--strategy", action="append", default=[],
                       help="strategy to run (repeatable; default: the configuration's list)")
    train.add_argument("--runs-dir", default="", help="where run directories go (default runs/<config name>)")
    train.add_argument("--data-root", default="")
    train.add_argument("--limit", type=int, default=0, help="train on at most N images (stratified) for a quick try")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument("--track", choices=choices.TRACKERS, default=None,
                       help="log every run to MLflow (the [track] extra): parameters, per-epoch metrics, run files")
    train.add_argument("--tracking-uri", default="", help="MLflow tracking URI (default: a file store in ./mlruns)")
    train.set_defaults(func=_train)

    ev = sub.add_parser("evaluate", help="test metrics with CIs, per-class report and calibration of a run")
    ev.add_argument("run_dir")
    ev.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the CIs")
    ev.add_argument("--force", action="store_true", help="recompute even if evaluation.json is fresh")
    ev.add_argument("--json", action="store_true", help="print JSON")
    ev.add_argument("--figures", default="", metavar="DIR",
                    help="also write confusion-matrix, ROC and reliability PNGs of the test split to DIR")
    ev.add_argument("--data", default="", help="score the run on this other labelled data set instead: a folder, a "
                    "CSV, a configs/ system, a YAML or a MedMNIST flag (results in RUN/external/NAME/)")
    ev.add_argument("--map", action="append", default=[], metavar="EXTERNAL=RUN",
                    help="with --data: map an external class onto a run class (EXTERNAL=- leaves it out)")
    ev.add_argument("--name", default="", help="with --data: the results' folder name (default: the data set's)")
    ev.add_argument("--set", action="append", default=[], metavar="data.FIELD=VALUE",
                    help="with --data: override a field of the external data (e.g. data.label_col=dx)")
    ev.set_defaults(func=_evaluate)

    ex = sub.add_parser("export", help="export a run as a bundle (safetensors + bundle.json + MODEL_CARD.md)")
    ex.add_argument("run_dir", help="a run directory, or a folder of runs (the best on validation is taken)")
    ex.add_argument("out", help="bundle folder to create")
    ex.add_argument("--descriptions", default=None, help="YAML/JSON file {class name: description}")
    ex.add_argument("--target-accuracy", type=float, default=0.95,
                    help="validation accuracy the abstention threshold aims at")
    ex.add_argument("--onnx", action="store_true", help="also write model.onnx (the [onnx] extra), checked")
    ex.add_argument("--pt2", action="store_true", help="also write model.pt2 (torch.export), checked")
    ex.add_argument("--force", action="store_true", help="replace an existing bundle")
    ex.set_defaults(func=_export)

    pr = sub.add_parser("predict", help="predict image files or folders with a bundle (CSV or JSON)")
    pr.add_argument("bundle")
    pr.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    pr.add_argument("--out", default="", help="write .csv or .json (default: CSV on stdout)")
    pr.add_argument("--top-k", type=int, default=3)
    pr.add_argument("--batch-size", type=int, default=32)
    pr.add_argument("--device", default="auto", help="auto, cpu or cuda")
    pr.add_argument("--backend", default="auto", choices=choices.BACKENDS,
                    help="auto: the bundle's model.onnx under ONNX Runtime on the CPU when present, else torch")
    pr.add_argument("--abstain", action="store_true", help="flag cases below the bundle's abstention threshold")
    pr.add_argument("--threshold", type=float, default=None, help="abstain below this confidence instead")
    pr.add_argument("--quiet", action="store_true")
    pr.set_defaults(func=_predict)

    app = sub.add_parser("app", help="the Streamlit upload app for a bundle (the [app] extra)")
    app.add_argument("bundle")
    app.add_argument("--port", type=int, default=8501)
    app.add_argument("--webhook", default="", help="POST each prediction as JSON to this URL")
    app.add_argument("--send-image", action="store_true", help="include the image (base64 PNG) in the webhook")
    app.set_defaults(func=_app)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "book":
        from medvision.book.build import main as book_main

        return book_main(argv[1:])
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"medvision {args.command}: interrupted; finished work is kept (training resumes from last.pt)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except UserError as exc:  # anything else is a bug: its traceback is kept (exit status 1)
        print(f"medvision {args.command}: {exc}", file=sys.stderr)
        return EXIT_USER


if __name__ == "__main__":
    sys.exit(main())
