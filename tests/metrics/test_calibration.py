import numpy as np
import pytest
import torch

from medvision.metrics.calibration import (
    accuracy_at_coverage,
    bootstrap_calibration,
    brier_score,
    calibrate_temperature,
    calibration_table,
    classwise_calibration,
    coverage_for_accuracy,
    expected_calibration_error,
    fit_temperature,
    maximum_calibration_error,
    reliability_bins,
    risk_coverage,
    torchmetrics_ece,
)


def calibrated_sample(n=20000, c=3, seed=0, sharpen=1.0):
    """Labels drawn from the model's own probabilities: perfectly calibrated when sharpen == 1."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * 2
    probs = logits.softmax(1)
    targets = torch.multinomial(probs, 1, generator=g).squeeze(1)
    return logits * sharpen, targets


def test_perfect_calibration_has_small_ece_and_overconfidence_large():
    logits, y = calibrated_sample()
    assert expected_calibration_error(logits.softmax(1), y) < 0.02
    assert expected_calibration_error(logits.softmax(1), y, binning="mass") < 0.02
    over, y2 = calibrated_sample(sharpen=4.0)
    assert expected_calibration_error(over.softmax(1), y2) > 0.1
    assert maximum_calibration_error(over.softmax(1), y2) >= expected_calibration_error(over.softmax(1), y2)


def test_ece_matches_torchmetrics():
    logits, y = calibrated_sample(n=3000, sharpen=3.0, seed=2)
    p = logits.softmax(1)
    assert expected_calibration_error(p, y) == pytest.approx(torchmetrics_ece(p, y), abs=1e-4)


def test_temperature_scaling_lowers_validation_nll_of_an_overconfident_model():
    logits, y = calibrated_sample(n=5000, sharpen=3.0, seed=1)
    t = fit_temperature(logits, y, split="val")
    assert t == pytest.approx(3.0, rel=0.15)
    table = calibration_table(logits, y, t)
    assert table.loc["after", "nll"] < table.loc["before", "nll"]
    assert table.loc["after", "ece"] < table.loc["before", "ece"]


def test_temperature_is_never_fitted_on_test():
    logits, y = calibrated_sample(n=100)
    with pytest.raises(ValueError, match="test split"):
        fit_temperature(logits, y, split="test")


def test_a_separable_validation_split_never_sharpens_the_model():
    # the otoscopy case: validation carved from a train split of near-identical frames has no mistakes, and
    # fitting T there gave T = 0.044 (every confidence 1.0)
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (160,), generator=g)
    logits = torch.randn(160, 4, generator=g)
    logits[torch.arange(160), y] += 6.0  # every case right, with margin
    assert fit_temperature(logits, y, split="val") < 0.2  # what an unguarded fit does
    fit = calibrate_temperature(logits, y, split="val")
    assert fit.temperature == 1.0 and fit.fitted is None and not fit.used
    assert fit.val_errors == 0 and "no misclassified case of 160" in fit.reason
    assert "temperature kept at 1" in fit.describe()
    few = logits.clone()
    few[:3, :] = 0.0
    few[torch.arange(3), (y[:3] + 1) % 4] = 9.0  # three mistakes: still too few
    assert "only 3 misclassified" in calibrate_temperature(few, y, split="val").reason


def test_a_temperature_outside_the_trusted_range_is_not_used():
    logits, y = calibrated_sample(n=4000, seed=3)
    under = logits * 0.05  # far too unsure: the fit asks for T of about 0.05
    fit = calibrate_temperature(under, y, split="val")
    assert fit.fitted is not None and fit.fitted < 0.2
    assert fit.temperature == 1.0 and "outside the trusted range 0.2-5" in fit.reason
    over, y2 = calibrated_sample(n=5000, sharpen=3.0, seed=1)
    ok = calibrate_temperature(over, y2, split="val")
    assert ok.used and ok.temperature == pytest.approx(fit_temperature(over, y2, split="val"))
    with pytest.raises(ValueError, match="test split"):
        calibrate_temperature(over, y2, split="test")


def test_brier_and_bins():
    onehot = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert brier_score(onehot, torch.tensor([0, 1])) == 0
    assert brier_score(onehot, torch.tensor([1, 0])) == 2
    bins = reliability_bins(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 0]), n_bins=10)
    assert bins["count"].sum() == 2 and len(bins) == 10


def test_risk_coverage_and_abstention():
    probs = torch.tensor([[0.99, 0.01], [0.9, 0.1], [0.6, 0.4], [0.55, 0.45]])
    y = torch.tensor([0, 0, 1, 0])
    curve = risk_coverage(probs, y)
    assert curve["coverage"].tolist() == [0.25, 0.5, 0.75, 1.0]
    assert curve["risk"].tolist()[:2] == [0, 0] and curve["accuracy"].iloc[-1] == 0.75
    at = accuracy_at_coverage(curve, (1.0, 0.5))
    assert at["accuracy"].tolist() == [0.75, 1.0]
    assert coverage_for_accuracy(curve, 1.0) == (0.5, pytest.approx(0.9))
    assert coverage_for_accuracy(curve, 1.01) == (0.0, 1.0)


def test_classwise_calibration():
    logits, y = calibrated_sample(n=20000)
    table = classwise_calibration(logits.softmax(1), y, ["a", "b", "c"])
    assert (table["ece"] < 0.02).all()
    assert np.allclose(table["mean_prob"], table["frequency"], atol=0.02)


def test_calibration_table_equals_the_metric_functions_and_the_bootstrap_its_resamples():
    logits, y = calibrated_sample(n=700, sharpen=2.0, seed=3)
    t = 1.7
    table = calibration_table(logits, y, t, n_bins=15)
    for name, temp in (("before", 1.0), ("after", t)):
        p = (logits / temp).softmax(1)
        expected = {"ece": expected_calibration_error(p, y, 15, "width"),
                    "ece_equal_mass": expected_calibration_error(p, y, 15, "mass"),
                    "mce": maximum_calibration_error(p, y, 15), "brier": brier_score(p, y),
                    "nll": torch.nn.functional.cross_entropy(logits / temp, y).item()}
        for metric, value in expected.items():
            assert table.loc[name, metric] == pytest.approx(value, rel=1e-6, abs=1e-9), (name, metric)
    boot = bootstrap_calibration(logits, y, t, n_resamples=50, seed=4)
    rng = np.random.default_rng(4)
    draws = [calibration_table(logits[torch.from_numpy(i)], y[torch.from_numpy(i)], t)
             for i in (rng.integers(0, 700, 700) for _ in range(50))]
    ece_after = np.array([d.loc["after", "ece"] for d in draws])
    assert boot.loc[("ece", "after"), "lower"] == pytest.approx(np.percentile(ece_after, 2.5), rel=1e-9)
    assert boot.loc[("ece", "after"), "upper"] == pytest.approx(np.percentile(ece_after, 97.5), rel=1e-9)
    assert boot.loc[("ece", "after"), "estimate"] == table.loc["after", "ece"]
