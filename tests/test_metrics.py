import math

import numpy as np
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

from medvision.metrics import classification_metrics


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
