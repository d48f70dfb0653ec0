"""The evidence chapters' sentences follow the numbers: planted curves give the crossover, winner and knee."""

import re

import numpy as np
import pandas as pd
import pytest
import torch

from medvision.book import evidence
from medvision.metrics.imbalance import adjust_logits, class_prior, fit_logit_adjustment
from medvision.plots import plot_label_budget, plot_remedies, plot_resolution


def _rows(scores: dict, factor: str, seeds=(0, 1, 2), noise=0.01) -> pd.DataFrame:
    """One row per seed around each planted mean: {(dataset, value, strategy): mean}."""
    rng = np.random.default_rng(0)
    out = []
    for (dataset, value, strategy), mean in scores.items():
        for seed in seeds:
            out.append({"dataset": dataset, factor: value, "strategy": strategy, "seed": seed,
                        "train_images": 2 * (value or 1000), "seconds_per_epoch": 1.0 + (value or 0) / 32,
                        "test_macro_f1": mean + noise * rng.standard_normal(), "test_auroc": mean})
    return pd.DataFrame(out)


BUDGETS = {("pneumo", 10, "head_only"): 0.70, ("pneumo", 10, "full"): 0.60, ("pneumo", 10, "logistic_regression"): 0.72,
           ("pneumo", 50, "head_only"): 0.75, ("pneumo", 50, "full"): 0.78, ("pneumo", 50, "logistic_regression"): 0.74,
           ("pneumo", 0, "head_only"): 0.80, ("pneumo", 0, "full"): 0.90, ("pneumo", 0, "logistic_regression"): 0.79}


def test_seed_means_give_t_intervals_clipped_to_scores():
    means = evidence.seed_means(_rows(BUDGETS, "per_class"), ["dataset", "per_class", "strategy"], ["test_macro_f1"])
    row = means[(means["per_class"] == 0) & (means["strategy"] == "full")].iloc[0]
    assert row["seeds"] == 3 and row["test_macro_f1_low"] < row["test_macro_f1"] < row["test_macro_f1_high"]
    one = evidence.seed_means(_rows(BUDGETS, "per_class", seeds=(0,)), ["dataset", "per_class", "strategy"],
                              ["test_macro_f1"])
    assert one["test_macro_f1_low"].isna().all()
    wide = evidence.seed_means(_rows(BUDGETS, "per_class", seeds=(0, 1), noise=0.3),
                               ["dataset", "per_class", "strategy"], ["test_macro_f1"])
    assert wide["test_macro_f1_low"].ge(0).all() and wide["test_macro_f1_high"].le(1).all()


def test_seed_means_count_only_seeds_with_a_value_and_survive_no_rows():
    rows = _rows(BUDGETS, "per_class")
    rows.loc[rows["seed"] == 2, "test_macro_f1"] = float("nan")
    means = evidence.seed_means(rows, ["dataset", "per_class", "strategy"], ["test_macro_f1"])
    full = means[(means["per_class"] == 0) & (means["strategy"] == "full")].iloc[0]
    two = evidence.seed_means(_rows(BUDGETS, "per_class", seeds=(0, 1)), ["dataset", "per_class", "strategy"],
                              ["test_macro_f1"])
    assert full["test_macro_f1_high"] - full["test_macro_f1_low"] > 0.05  # t with 1 degree of freedom, not 2
    assert np.isfinite(two["test_macro_f1_low"]).all()
    empty = evidence.seed_means(pd.DataFrame(columns=["dataset", "strategy", "seed"]),
                                ["dataset", "per_class", "strategy"], ["test_macro_f1"])
    assert empty.empty and "test_macro_f1_low" in empty
    assert evidence.describe_label_budget(empty) == "No finished runs."


def _with_val(rows: pd.DataFrame, val: dict) -> pd.DataFrame:
    rows = rows.copy()
    rows["val_macro_f1"] = [val.get((r.dataset, r.per_class, r.strategy), r.test_macro_f1) for r in rows.itertuples()]
    return rows


def test_label_budget_crossover_and_winners_follow_the_planted_curves():
    rows = _with_val(_rows(BUDGETS, "per_class"), {})
    means = evidence.seed_means(rows, ["dataset", "per_class", "strategy"], ["test_macro_f1", "val_macro_f1"])
    assert evidence.crossover(means, "test_macro_f1") == ("crossover", 50)
    assert list(evidence.winners(means, "test_macro_f1")["strategy"]) == ["logistic_regression", "full", "full"]
    text = evidence.describe_label_budget(means)
    assert "overtakes head_only on mean test macro f1 at **50 images per class**" in text
    assert "from logistic_regression to full at 50 images per class" in text
    assert "its 95% interval over 3 seeds lies above" in text  # 0.90 against 0.80 with 0.01 noise
    assert "beats the trained head-only network at 1 of 3 budgets" in text
    never = {k: (v if k[2] != "full" else 0.5) for k, v in BUDGETS.items()}
    never_means = evidence.seed_means(_rows(never, "per_class"), ["dataset", "per_class", "strategy"],
                                      ["test_macro_f1"])
    assert evidence.crossover(never_means, "test_macro_f1") == ("never", None)
    assert "does not overtake head_only" in evidence.describe_label_budget(never_means)
    always = {k: (v + 0.3 if k[2] == "full" else v) for k, v in BUDGETS.items()}
    always_means = evidence.seed_means(_rows(always, "per_class"), ["dataset", "per_class", "strategy"],
                                       ["test_macro_f1"])
    assert evidence.crossover(always_means, "test_macro_f1") == ("always", 10)
    fig, ax = plot_label_budget(means)
    assert ax.get_xscale() == "log" and len(ax.get_lines()) == 3


def test_the_fine_tuning_strategy_and_the_winner_are_chosen_on_validation_not_test():
    scores = {**BUDGETS, ("pneumo", 0, "last_k:2"): 0.95}  # best on test at "all"...
    rows = _with_val(_rows(scores, "per_class"), {("pneumo", 0, "last_k:2"): 0.50})  # ...but worst on validation
    means = evidence.seed_means(rows, ["dataset", "per_class", "strategy"], ["test_macro_f1", "val_macro_f1"])
    assert evidence.chosen_fine_tuning(means[means["per_class"] == 0], "test_macro_f1")["strategy"] == "full"
    assert evidence.winners(means, "test_macro_f1")["strategy"].iloc[-1] == "full"
    tied = {k: (0.8 if k[1] == 0 and k[2] in ("full", "head_only") else v) for k, v in BUDGETS.items()}
    tied_means = evidence.seed_means(_rows(tied, "per_class", noise=0), ["dataset", "per_class", "strategy"],
                                     ["test_macro_f1"])
    assert evidence.crossover(tied_means, "test_macro_f1") == ("never", None)  # level is not ahead
    assert "it is not ahead" in evidence.describe_label_budget(tied_means)

def test_resolution_knee_is_the_smallest_size_within_the_best_interval():
    scores = {("ham", 32, "full"): 0.50, ("ham", 64, "full"): 0.70, ("ham", 96, "full"): 0.705,
              ("ham", 128, "full"): 0.71}
    means = evidence.seed_means(_rows(scores, "input_px", noise=0.02), ["dataset", "input_px", "strategy"],
                                ["test_macro_f1"])
    assert evidence.knee(means, "test_macro_f1") == 64
    text = evidence.describe_resolution(means)
    assert "The knee is at **64 px**" in text and "128 px takes" in text
    rising = {("ham", 32, "full"): 0.5, ("ham", 64, "full"): 0.6, ("ham", 128, "full"): 0.9}
    rising_means = evidence.seed_means(_rows(rising, "input_px"), ["dataset", "input_px", "strategy"],
                                       ["test_macro_f1"])
    assert "still the best" in evidence.describe_resolution(rising_means)
    fig, ax = plot_resolution(means)
    assert [t.get_text() for t in ax.texts][0].endswith("s/ep")
    by_strategy = evidence.describe_resolution_by_strategy(means, ("test_macro_f1",))
    assert by_strategy == "**full, macro_f1.** " + text


def test_remedy_sentences_name_the_best_remedy_and_its_calibration():
    rows = []
    for seed in range(3):
        for remedy, ba, ece in (("cross_entropy", 0.50, 0.05), ("focal", 0.62, 0.15), ("logit_adjustment", 0.60, 0.08)):
            rows.append({"dataset": "ham", "remedy": remedy, "seed": seed, "test_balanced_accuracy": ba + 0.005 * seed,
                         "test_ece": ece, "recall_df": ba - 0.2})
    means = evidence.seed_means(pd.DataFrame(rows), ["dataset", "remedy"],
                                ["test_balanced_accuracy", "test_ece", "recall_df"])
    scored = pd.DataFrame(rows).assign(test_macro_f1=0.5)
    assert evidence.remedy_means(scored).drop(columns=["test_macro_f1", "test_macro_f1_low", "test_macro_f1_high"]
                                              ).equals(means)  # every recall_* column is averaged too
    assert evidence.remedy_scores(pd.DataFrame(columns=["run_dir"])).empty
    text = evidence.describe_remedies(means)
    assert "best remedy by mean test balanced accuracy is **focal**" in text and "lies above" in text
    assert "ECE is 0.150 against 0.050" in text and "df 0.42 against 0.30" in text
    assert "best-calibrated is cross_entropy" in text
    other = pd.DataFrame([{**r, "dataset": "breast", "recall_df": float("nan"), "recall_malignant": 0.5}
                          for r in rows])
    both = evidence.seed_means(pd.concat([pd.DataFrame(rows), other]), ["dataset", "remedy"],
                               ["test_balanced_accuracy", "test_ece", "recall_df", "recall_malignant"])
    text = evidence.describe_remedies(both)
    assert not re.search(r"\bnan\b", text) and "df" in text  # each data set names its own rare classes
    fig, ax = plot_remedies(means)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cross_entropy", "focal", "logit_adjustment"]


def test_logit_adjustment_moves_decisions_to_the_rare_class_chosen_on_validation():
    torch.manual_seed(0)
    prior = class_prior(np.array([0] * 90 + [1] * 10), 2)
    assert prior[0] > prior[1] and np.isclose(prior.sum(), 1)
    targets = torch.tensor([0] * 50 + [1] * 50)
    logits = torch.stack([torch.zeros(100), torch.where(targets == 1, 1.5, -1.0)], 1) + torch.log(
        torch.tensor(prior, dtype=torch.float32))
    fit = fit_logit_adjustment(logits, targets, prior)
    assert fit.tau > 0 and fit.scores[fit.tau] >= fit.scores[0.0]
    assert (fit.apply(logits, prior).argmax(1) == 1).sum() > (logits.argmax(1) == 1).sum()
    assert torch.allclose(adjust_logits(logits, prior, 0.0), logits)
    with pytest.raises(ValueError, match="classes"):
        adjust_logits(logits, np.array([0.5, 0.3, 0.2]), 1.0)
