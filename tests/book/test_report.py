"""The chapters' sentences and small tables (``medvision.book.report``), computed from planted results."""

from __future__ import annotations

import pandas as pd

from medvision.book import report


def _runs(**val_test) -> pd.DataFrame:
    rows = []
    for run, (weights, val, test, spe) in val_test.items():
        rows.append({"run": run, "weights": weights, "val_macro_f1": val, "test_macro_f1": test,
                     "s_per_epoch": spe, **{f"{s}_{m}": 0.5 for s in ("val", "test")
                                            for m in ("accuracy", "balanced_accuracy", "auroc")}})
    return pd.DataFrame(rows).set_index("run")


def test_the_comparison_is_chosen_on_validation_and_names_the_scratch_gap():
    table = _runs(full=("package", 0.80, 0.70, 2.0), head_only=("package", 0.75, 0.90, 0.1),
                  **{"full-scratch": ("none", 0.60, 0.65, 2.0)})
    text = report.describe_comparison(table)
    assert "best validation macro f1 is **full** (validation 0.800, test 0.700)" in text
    assert "(full) scores +0.050 macro f1 against" in text and "(full-scratch)" in text
    assert "cheapest run per epoch is head_only (0.10 s/epoch)" in text


def test_weights_sentence_names_fallback_notes_once():
    text = report.describe_weights([{"run": "a", "weights": "package x"},
                                    {"run": "b", "weights": "package x", "weights_note": "the hub was down"},
                                    {"run": "c", "weights": "package x", "weights_note": "the hub was down"}])
    assert text.count("The hub was down") == 1 and "**a**: package x" in text


def test_abstention_sentence():
    assert "abstain below a calibrated confidence of 0.9000, answering 80.0%" in report.describe_abstention(
        "full", 0.95, 0.8, 0.9)
    assert "does not reach 95% accuracy" in report.describe_abstention("full", 0.95, 0.0, 1.0)


def test_calibration_sentence_counts_improved_runs():
    across = pd.DataFrame({"temperature": [1.5, 0.9], "ece_before": [0.10, 0.05], "ece_after": [0.04, 0.06]},
                          index=["full", "head_only"])
    text = report.describe_calibration_across(across)
    assert "lowered the test ECE of 1 of 2 runs" in text and "from 0.90 to 1.50" in text


def test_feature_baselines_against_networks():
    baselines = pd.DataFrame({"val_macro_f1": [0.7, 0.8], "test_macro_f1": [0.72, 0.81],
                              **{f"test_{m}": [0.5, 0.6] for m in ("accuracy", "balanced_accuracy", "auroc")}},
                             index=["knn", "logistic_regression"])
    nets = _runs(full=("package", 0.85, 0.78, 2.0))
    both = report.versus_finetuned(baselines, nets)
    assert list(both.index) == ["frozen features + knn", "frozen features + logistic_regression", "network: full"]
    text = report.describe_feature_baselines(baselines, nets)
    assert "**logistic_regression** (test macro f1 0.810)" in text and "(full) is -0.030 test macro f1" in text
    assert len(report.versus_finetuned(baselines, None)) == 2
    assert "No fine-tuned run" in report.describe_feature_baselines(baselines, nets.iloc[:0])


def test_calibration_across_reads_each_evaluation():
    from types import SimpleNamespace

    table = pd.DataFrame({"ece": [0.1, 0.05], "nll": [0.5, 0.4], "brier": [0.2, 0.18]}, index=["before", "after"])
    ev = SimpleNamespace(calibration=table, temperature=1.4, temperature_fit=SimpleNamespace(used=True),
                         metrics={"accuracy": 0.9})
    across = report.calibration_across({"full": ev})
    assert across.loc["full"].to_dict() == {"temperature": 1.4, "fitted": True, "accuracy": 0.9, "ece_before": 0.1,
                                            "ece_after": 0.05, "nll_before": 0.5, "nll_after": 0.4,
                                            "brier_after": 0.18}


def test_collect_leakage_gathers_each_message_once():
    import warnings

    from medvision.core.errors import LeakageWarning
    from medvision.data.leakage import collect_leakage

    with collect_leakage() as leaks:
        for _ in range(2):
            warnings.warn(LeakageWarning("breastmnist: the split leaks"), stacklevel=1)
    assert leaks.messages == ["breastmnist: the split leaks"]
    assert leaks.markdown() == "**Leakage audit.** breastmnist: the split leaks."
    with collect_leakage() as none:
        pass
    assert "No exact or near-duplicate image (pHash) or shared group" in none.markdown()
    assert "called clean only when it passes" in none.markdown()  # pair counts alone never certify a split
