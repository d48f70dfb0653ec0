import numpy as np
import pytest
import torch

from medvision.core.errors import ConfigError
from medvision.metrics.operating_point import (
    choose_threshold,
    operating_points,
    positive_scores,
    rates,
)


def _scores(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    s = np.clip(0.25 + 0.4 * y + rng.normal(0, 0.18, n), 0, 1)
    return s, y


def test_youden_maximises_sensitivity_plus_specificity():
    s, y = _scores()
    t = choose_threshold(s, y)
    got = rates(s, y, t.value)
    assert got["sensitivity"] == pytest.approx(t.sensitivity) and got["specificity"] == pytest.approx(t.specificity)
    for other in np.linspace(0.05, 0.95, 37):  # no threshold does better on the same scores
        r = rates(s, y, other)
        assert r["sensitivity"] + r["specificity"] <= t.sensitivity + t.specificity + 1e-12


@pytest.mark.parametrize("rule", ["sensitivity", "specificity"])
def test_a_floor_is_kept_and_the_other_figure_maximised(rule):
    s, y = _scores()
    t = choose_threshold(s, y, rule, 0.9)
    r = rates(s, y, t.value)
    kept, other = (r["sensitivity"], r["specificity"]) if rule == "sensitivity" else (r["specificity"], r["sensitivity"])
    assert kept >= 0.9
    for v in np.linspace(0, 1, 101):
        alt = rates(s, y, v)
        alt_kept = alt["sensitivity"] if rule == "sensitivity" else alt["specificity"]
        alt_other = alt["specificity"] if rule == "sensitivity" else alt["sensitivity"]
        if alt_kept >= 0.9:
            assert alt_other <= other + 1e-12


def test_bad_requests_are_clear_errors():
    s, y = _scores()
    with pytest.raises(ConfigError, match="unknown threshold rule"):
        choose_threshold(s, y, "f1")
    with pytest.raises(ConfigError, match="needs a target"):
        choose_threshold(s, y, "sensitivity")
    with pytest.raises(ConfigError, match="one class only"):
        choose_threshold(s, np.zeros_like(y))
    with pytest.raises(ConfigError, match="two-class logits"):
        positive_scores(torch.zeros(3, 4))


def test_operating_points_apply_validation_thresholds_to_test():
    s, y = _scores(seed=1)
    ts, ty = _scores(seed=2)
    to_logits = lambda p: torch.log(torch.tensor(np.stack([1 - p, p], 1)).clamp_min(1e-6)).float()  # noqa: E731
    table = operating_points(to_logits(s), y, to_logits(ts), ty, positive=1,
                             rules=[("youden", None), ("specificity", 0.9)])
    assert list(table.index) == ["argmax", "threshold from val (Youden's J)", "threshold from val (specificity >= 0.9)"]
    chosen = choose_threshold(s, y)
    row = table.loc["threshold from val (Youden's J)"]
    assert row["threshold"] == pytest.approx(chosen.value)  # the test split played no part in choosing it
    assert row["sensitivity"] == pytest.approx(rates(ts, ty, chosen.value)["sensitivity"], abs=1e-6)
    arg = table.loc["argmax"]
    assert arg["accuracy"] == pytest.approx(float(((ts >= 0.5) == ty).mean()), abs=1e-6)
    flipped = operating_points(to_logits(s), y, to_logits(ts), ty, positive=0)
    assert flipped.loc["argmax", "sensitivity"] == pytest.approx(arg["specificity"], abs=1e-6)


def test_a_saturated_score_is_not_called_positive_by_the_nothing_positive_threshold():
    s = np.array([1.0, 1.0, 0.2, 0.1])
    y = np.array([0, 0, 1, 1])  # the most confident cases are negatives: the best point calls nothing positive
    t = choose_threshold(s, y, "specificity", 1.0)
    assert t.specificity == 1.0 and rates(s, y, t.value)["specificity"] == 1.0


def test_the_positive_class_is_the_one_not_named_as_a_negative_finding():
    from types import SimpleNamespace

    from medvision.evaluate.evaluation import binary_positive

    ev = SimpleNamespace(class_names=("abnormal", "normal"), val_targets=torch.tensor([1, 1, 1, 0]))
    assert binary_positive(ev) == "abnormal"
    ev = SimpleNamespace(class_names=("pneumonia", "tuberculosis"), val_targets=torch.tensor([0, 0, 0, 1]))
    assert binary_positive(ev) == "tuberculosis"  # neither is a negative finding: the rarer on validation
