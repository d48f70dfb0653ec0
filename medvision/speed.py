"""The speed benchmarks' results as tables and sentences (``bench/train_throughput.py --json``), for the
performance chapter: every number in the sentences comes from the JSON rows passed in."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

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
