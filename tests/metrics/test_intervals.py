import numpy as np
import pytest
import torch

from medvision.core.errors import ConfigError
from medvision.metrics.classification import classification_metrics
from medvision.metrics.intervals import (
    VERDICTS,
    Interval,
    metric_intervals,
    paired_difference,
    seeds_and_cases,
    verdict,
)


def test_verdict_words():
    assert verdict(0.1, 0.2, 0.0) == "ahead" and verdict(-0.2, -0.1) == "behind"
    assert verdict(-0.1, 0.1) == "inconclusive" and verdict(np.nan, np.nan, 0.5) == "inconclusive"
    assert set(VERDICTS) == {"ahead", "behind", "inconclusive"}
    iv = Interval(0.9, 0.85, 0.95, 3, 624)
    assert iv.verdict(0.8) == "ahead" and iv.verdict(0.96) == "behind" and iv.verdict(0.9) == "inconclusive"
    assert "3 seeds x 624 test images" in str(iv)


def test_test_cases_are_drawn_once_for_every_seed():
    """Identical seeds: the interval is the test-case bootstrap of one seed, not narrowed by the seed count
    (drawing cases separately per seed would shrink it by about sqrt(3))."""
    per_case = np.random.default_rng(0).random(400)

    def score(s, idx):
        return {"m": float(per_case[idx].mean())}

    one = seeds_and_cases(score, 1, 400, n_resamples=2000)["m"]
    three = seeds_and_cases(score, 3, 400, n_resamples=2000)["m"]
    assert one.estimate == pytest.approx(per_case.mean()) and three.estimate == pytest.approx(per_case.mean())
    assert (three.upper - three.lower) == pytest.approx(one.upper - one.lower, rel=0.15)


def test_seed_spread_is_in_the_interval():
    offsets = [0.0, 0.1, 0.2]
    iv = seeds_and_cases(lambda s, idx: {"m": offsets[s]}, 3, 50, n_resamples=2000)["m"]
    assert iv.estimate == pytest.approx(0.1) and iv.lower < 0.06 and iv.upper > 0.14
    assert seeds_and_cases(lambda s, idx: {"m": 0.5}, 2, 10, n_resamples=50)["m"].lower == 0.5
    with pytest.raises(ConfigError, match="at least one seed"):
        seeds_and_cases(lambda s, idx: {"m": 0.0}, 0, 10)


def _logits(seed, n=300, c=3, skill=2.0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % c
    return torch.randn(n, c, generator=g) + skill * torch.nn.functional.one_hot(y, c), y


def test_metric_intervals_estimate_the_mean_of_the_seeds_metrics():
    logits = [_logits(s)[0] for s in range(3)]
    y = _logits(0)[1]
    ivs = metric_intervals(logits, y, n_resamples=200)
    for m in ("accuracy", "balanced_accuracy", "macro_f1", "auroc"):
        mean = np.mean([classification_metrics(lg, y)[m] for lg in logits])
        assert ivs[m].estimate == pytest.approx(mean, abs=1e-5)
        assert ivs[m].lower <= ivs[m].estimate <= ivs[m].upper and ivs[m].seeds == 3 and ivs[m].cases == 300
    with pytest.raises(ConfigError, match="same test images"):
        metric_intervals([logits[0], logits[1][:10]], y)


def test_paired_difference_reads_ahead_behind_and_inconclusive():
    y = _logits(0)[1]
    strong = [_logits(s, skill=3.0)[0] for s in range(3)]
    weak = [_logits(s + 10, skill=0.5)[0] for s in range(3)]
    same = paired_difference(strong, strong, y, n_resamples=100)
    assert all(iv.estimate == 0 and iv.lower == 0 and iv.upper == 0 for iv in same.values())
    assert same["accuracy"].verdict() == "inconclusive"
    diff = paired_difference(strong, weak, y, n_resamples=300)
    assert diff["accuracy"].verdict() == "ahead" and paired_difference(weak, strong, y, 300)["auroc"].verdict() == "behind"
    with pytest.raises(ConfigError, match="same seeds"):
        paired_difference(strong, weak[:2], y)
