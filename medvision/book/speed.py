"""The speed benchmarks' results as tables and sentences (``bench/train_throughput.py --json``), for the
performance chapter: every number in the sentences comes from the JSON rows passed in."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

import pandas as pd

#: Columns of the time-to-score table, in order.
SCORE_COLUMNS = ("target_val_macro_f1", "plain_seconds", "medvision_seconds_to_target", "ratio",
                 "medvision_seconds_to_mean_target", "ratio_to_mean_target", "plain_test_accuracy",
                 "medvision_test_accuracy", "plain_test_auroc", "medvision_test_auroc")


def time_to_score_table(rows: Sequence[dict]) -> pd.DataFrame:
    """One row per seed: the plain loop's final validation score and time, medvision's time to that score and
    to the mean of the plain finals, the ratios, and both test scores."""
    return pd.DataFrame(list(rows)).set_index("seed")[list(SCORE_COLUMNS)]


def _spread(values: Sequence[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def _span(ratios: Sequence[float]) -> str:
    return f", {min(ratios):.2f}x to {max(ratios):.2f}x sooner" if ratios else ""


def describe_time_to_score(rows: Sequence[dict]) -> str:
    """Sentences on the time-to-score rows: how many seeds reached their own target and the mean target, how
    much sooner, and the test scores of both sides (mean ± standard deviation over seeds)."""
    if not rows:
        return "No time-to-score runs."
    n = len(rows)
    own = [r["ratio"] for r in rows if r["ratio"]]
    mean = [r["ratio_to_mean_target"] for r in rows if r["ratio_to_mean_target"]]
    test = {who: {k: [r[f"{who}_test_{k}"] for r in rows] for k in ("accuracy", "auroc")}
            for who in ("plain", "medvision")}
    return (f"On {len(own)} of {n} seed(s) medvision reached that seed's final plain-loop validation macro-F1"
            f"{_span(own)}. The plain loop's final score varies from seed to seed; its mean over the seeds "
            f"({rows[0]['mean_target_val_macro_f1']:.3f}) was reached on {len(mean)} of {n} seed(s)"
            + (f"{_span(mean)} than the plain loop's mean time ({rows[0]['mean_plain_seconds']:.0f} s)" if mean else "")
            + ". Test accuracy: "
            f"plain {_spread(test['plain']['accuracy'])}, medvision {_spread(test['medvision']['accuracy'])}; "
            f"test AUROC: plain {_spread(test['plain']['auroc'])}, medvision {_spread(test['medvision']['auroc'])} "
            "(mean ± standard deviation over seeds).")


# ------------------------------------------------------------------------------------ pipeline benchmarks
def describe_data_fallback(data_bench: Mapping) -> str:
    """Says so when the data-pipeline benchmark timed its fallback images (empty otherwise)."""
    if not data_bench.get("fallback"):
        return ""
    return ("The data-pipeline benchmark ran on its **fallback**: the chest X-ray folder `chest_xray_224/` is not "
            "under the data root, so bundled PneumoniaMNIST train images, exported as 224 px JPEGs, were timed "
            "instead.")


def pipeline_table(data_bench: Mapping, head_bench: Mapping) -> pd.DataFrame:
    """The data-pipeline and head-only benchmarks (``bench/data_pipeline.py``, ``bench/head_only.py``): each side's
    speed, the ratio and the peak memory."""
    return pd.DataFrame([
        {"benchmark": "data pipeline: tensor cache + batch augmentation vs ImageFolder + PIL transforms",
         "medvision": f"{data_bench['medvision_images_per_s']:.0f} images/s",
         "baseline": f"{data_bench['torchvision_images_per_s']:.0f} images/s", "ratio": data_bench["ratio"],
         "peak RSS (MB)": data_bench["peak_rss_mb"]},
        {"benchmark": "head-only training: cached features vs frozen backbone each epoch",
         "medvision": f"{head_bench['cached_s_per_epoch']:.3f} s/epoch",
         "baseline": f"{head_bench['backbone_s_per_epoch']:.2f} s/epoch", "ratio": head_bench["ratio"],
         "peak RSS (MB)": head_bench["peak_rss_mb"]},
    ]).set_index("benchmark")


def describe_pipeline(data_bench: Mapping, head_bench: Mapping) -> str:
    """The two pipeline ratios in words, with the one-off costs they leave out."""
    return (f"The tensor pipeline delivers {data_bench['ratio']:.1f}x the images per second of torchvision's "
            f"ImageFolder at {data_bench['output_px']} px once its one-off cache is built "
            f"({data_bench['cache_build_s']:.2f} s for {data_bench['images']} images; first epoch included: "
            f"{data_bench['first_epoch_ratio']:.1f}x). Head-only epochs on cached features are "
            f"{head_bench['ratio']:.0f}x faster than running the frozen backbone; over 20 epochs, extraction "
            f"included, {head_bench['ratio_20_epochs_with_extraction']:.1f}x.")


def throughput_table(train_bench: Mapping) -> pd.DataFrame:
    """The rows of ``bench/train_throughput.py`` (training, evaluation, prediction against a plain loop), one per
    kind, strategy and size, indexed by a readable label."""
    rows = pd.DataFrame(list(train_bench["rows"]))
    rows["label"] = [f"{r.kind} {r.strategy} {r.size}px".replace(" - ", " ") for r in rows.itertuples()]
    return rows.set_index("label")


# ------------------------------------------------------------------------------------------ build times
def chapter_times(record: Mapping) -> pd.DataFrame:
    """Seconds per chapter of this build so far and the training runs it trained and reused (the runner's
    record: :func:`medvision.book.pages.run_record`)."""
    rows = [{"chapter": nb, "seconds": v["seconds"], "training runs": describe_runs(v.get("runs", {}))}
            for nb, v in record.get("notebooks", {}).items()]
    return pd.DataFrame(rows, columns=["chapter", "seconds", "training runs"]).set_index("chapter")


def describe_runs(runs: Mapping[str, int]) -> str:
    """``"3 trained, 2 reused"`` for a chapter's run counts; ``"—"`` for a chapter that trains nothing."""
    parts = [f"{runs[k]} {k}" for k in ("trained", "reused") if runs.get(k)]
    return ", ".join(parts) or "—"


def describe_chapter_times(times: pd.DataFrame, profile: str) -> str:
    """The build time so far, and what a reused run is."""
    return (f"Chapters before this one took {times['seconds'].sum():.0f} s in total under the **{profile}** "
            "profile. A *reused* run was found finished in its run directory (same configuration, from an earlier "
            "build) and was not trained again.")
