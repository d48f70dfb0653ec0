import math

import numpy as np
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

from medvision.metrics.classification import classification_metrics


def test_metrics_match_scikit_learn():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 4, generator=g)
    y = torch.randint(0, 4, (200,), generator=g)
    m = classification_metrics(logits, y)
    pred = logits.argmax(1).numpy()
    probs = logits.softmax(1).numpy()
    assert np.isclose(m["accuracy"], accuracy_score(y, pred))
    assert np.isclose(m["balanced_accuracy"], balanced_accuracy_score(y, pred))
    assert np.isclose(m["macro_f1"], f1_score(y, pred, average="macro"))
    assert np.isclose(m["auroc"], roc_auc_score(y, probs, multi_class="ovr", average="macro"), atol=1e-4)


def test_binary_accuracy_is_a_half_threshold_and_absent_class_gives_nan_auroc():
    logits = torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.0, 0.1]])
    assert np.isclose(classification_metrics(logits, torch.tensor([1, 0, 0]))["accuracy"], 2 / 3)
    assert math.isnan(classification_metrics(logits, torch.tensor([1, 1, 1]))["auroc"])


def test_detailed_metrics_and_per_class_against_sklearn():
    from sklearn.metrics import cohen_kappa_score, precision_score, recall_score

    from medvision.metrics.classification import detailed_metrics, per_class_report

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(300, 6, generator=g)
    y = torch.randint(0, 5, (300,), generator=g)  # class 5 never occurs
    pred = logits.argmax(1).numpy()
    m = detailed_metrics(logits, y)
    assert np.isclose(m["weighted_recall"], recall_score(y, pred, average="weighted", zero_division=0))
    assert np.isclose(m["cohen_kappa"], cohen_kappa_score(y, pred), atol=1e-5)
    assert "top3_accuracy" in m and "top5_accuracy" in m and m["top5_accuracy"] >= m["top3_accuracy"]
    report = per_class_report(logits, y, list("abcdef"))
    assert report.loc["f", "support"] == 0
    assert np.allclose(report["precision"].to_numpy()[:5],
                       precision_score(y, pred, average=None, labels=range(5), zero_division=0))


def test_bootstrap_ci_contains_estimate_and_is_seeded():
    from medvision.metrics.classification import bootstrap_ci

    g = torch.Generator().manual_seed(2)
    logits = torch.randn(120, 3, generator=g)
    y = torch.randint(0, 3, (120,), generator=g)
    a = bootstrap_ci(logits, y, n_resamples=200, seed=5, per_class_names=["x", "y", "z"])
    b = bootstrap_ci(logits, y, n_resamples=200, seed=5, per_class_names=["x", "y", "z"])
    assert a.equals(b)
    assert ((a["lower"] <= a["estimate"]) & (a["estimate"] <= a["upper"])).all()
    assert {"macro_f1", "f1[x]", "recall[z]"} <= set(a.index)


def test_predictions_table():
    from medvision.metrics.classification import predictions_table

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    table = predictions_table(logits, torch.tensor([0, 0]), ["s1", "s2"], ["neg", "pos"], temperature=2.0)
    assert table["predicted"].tolist() == ["neg", "pos"] and table["correct"].tolist() == [True, False]
    assert np.isclose(table.loc[0, "p[neg]"], torch.tensor([1.0, 0.0]).softmax(0)[0].item())


def test_bootstrap_resamples_equal_torchmetrics_on_the_same_cases():
    """The fast resample metrics (confusion counts, weighted Mann-Whitney AUROC) are torchmetrics' numbers,
    ties, absent classes and classes never predicted included."""
    from torchmetrics.functional.classification import multiclass_f1_score, multiclass_recall

    from medvision.metrics.classification import ResampleTerms

    g = torch.Generator().manual_seed(1)
    for n, c in ((60, 2), (45, 4), (12, 3)):
        logits = torch.randn(n, c, generator=g).round(decimals=1)  # rounded: tied scores
        logits[:, -1] -= 3  # the last class is rarely predicted
        y = torch.randint(0, c, (n,), generator=g)
        terms = ResampleTerms(logits, y)
        rng = np.random.default_rng(0)
        for _ in range(30):
            idx = rng.integers(0, n, n)
            fast, f1, recall = terms.metrics(idx)
            i = torch.from_numpy(idx)
            slow = classification_metrics(logits[i], y[i])
            for k, v in slow.items():
                assert (math.isnan(v) and math.isnan(fast[k])) or np.isclose(fast[k], v, atol=1e-6), (n, c, k)
            probs = logits[i].softmax(1)
            assert np.allclose(f1, multiclass_f1_score(probs, y[i], num_classes=c, average=None).numpy(), atol=1e-6)
            assert np.allclose(recall, multiclass_recall(probs, y[i], num_classes=c, average=None).numpy(), atol=1e-6)
