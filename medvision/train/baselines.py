"""Classical machine learning on frozen ImageNet features: logistic regression, linear SVM and k-NN.

The seeds' "traditional ML on extracted features" done properly: features are extracted once and cached,
each classifier's hyper-parameter is chosen on the validation split, and the test split is scored once with
the same metrics as the fine-tuned networks.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from medvision.config.experiment import ExperimentConfig
from medvision.data.cache import TensorCache
from medvision.data.loader import TensorLoader
from medvision.metrics.classification import classification_metrics
from medvision.models.checkpoints import load_checkpoint, save_atomic
from medvision.models.embeddings import feature_key as embedding_key
from medvision.train.feature_cache import extract_features
from medvision.train.runner import build_model, make_loaders

#: name -> (estimator factory taking the hyper-parameter, hyper-parameter name, values tried on validation)
CLASSIFIERS = {
    "logistic_regression": (lambda c, seed: LogisticRegression(C=c, max_iter=3000, class_weight="balanced",
                                                               random_state=seed), "C", (0.001, 0.01, 0.1, 1.0, 10.0)),
    # On standardised ~1,000-dimensional embeddings, C >= 0.1 barely regularises and liblinear then needs
    # ~20 s per fit on two cores (PneumoniaMNIST, 64 px Lite0 features), where validation picked C = 0.001.
    "linear_svm": (lambda c, seed: LinearSVC(C=c, class_weight="balanced", max_iter=20000, random_state=seed),
                   "C", (0.00001, 0.0001, 0.001, 0.01)),
    "knn": (lambda k, seed: KNeighborsClassifier(n_neighbors=k, weights="distance"), "n_neighbors",
            (3, 5, 11, 21, 41)),
}


def feature_key(cache: TensorCache, exp: ExperimentConfig, weights: object) -> str:
    """The cache key of frozen-backbone features of ``cache``'s images (the one scheme of
    :func:`medvision.models.embeddings.feature_key`): the images (the table's fingerprint, which a subset
    changes), their decoded size, the backbone as built (``exp`` after any fallback), its weights and the input
    size."""
    return embedding_key(kind="frozen", table=cache.table.name, fingerprint=cache.table.fingerprint(),
                         n=len(cache), decoded=cache.size, backbone=exp.backbone, weights=str(weights),
                         size=exp.image_size)


def cached_features(model: torch.nn.Module, loaders: dict[str, TensorLoader], cache_dir: str | os.PathLike[str],
                    key: str) -> dict[str, tuple[torch.Tensor, np.ndarray]]:
    """Pooled features of every split, extracted once and cached in ``cache_dir`` under ``key``
    (:func:`feature_key`)."""
    path = Path(cache_dir) / f"features-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
    if path.is_file():
        saved = load_checkpoint(path, require_model=False)
        return {s: (saved[f"{s}_x"], saved[f"{s}_y"].numpy()) for s in loaders}
    out = {}
    for split, loader in loaders.items():
        ordered = TensorLoader(loader.images, loader.labels, loader.mean, loader.std, batch_size=256,
                               out_size=loader.out_size)
        feats, labels = extract_features(model, ordered)
        out[split] = (feats[0], labels)
    save_atomic({**{f"{s}_x": x for s, (x, _) in out.items()},
                 **{f"{s}_y": torch.from_numpy(y) for s, (_, y) in out.items()}, "key": key}, path)
    return out



def frozen_features(cache: TensorCache, exp: ExperimentConfig, cache_dir: str | os.PathLike[str]
                    ) -> tuple[dict[str, tuple[torch.Tensor, np.ndarray]], torch.nn.Module, ExperimentConfig]:
    """The frozen ImageNet backbone's pooled features of every split of ``cache``, extracted once and kept in
    ``cache_dir`` (chapter 05 and the sweeps' baseline share the key scheme of :func:`feature_key`).

    Returns:
        The features by split, the model (the offline fallback where ``exp`` sets one) and the settings it was
        built with.
    """
    model, used, _ = build_model(exp, cache.table.num_classes)
    key = feature_key(cache, used, model.weights_source)
    return cached_features(model.eval(), make_loaders(cache, model, used), cache_dir, key), model, used


def _scores(estimator, x: np.ndarray, num_classes: int) -> torch.Tensor:
    """Class scores usable as logits: log-probabilities, or SVM decision values."""
    if hasattr(estimator, "predict_proba"):
        return torch.from_numpy(np.log(np.clip(estimator.predict_proba(x), 1e-12, 1.0))).float()
    d = estimator.decision_function(x)
    if d.ndim == 1:  # binary SVM: one margin for the positive class
        d = np.stack([-d / 2, d / 2], axis=1)
    return torch.from_numpy(d).float()


def fit_feature_baselines(features: dict[str, tuple[torch.Tensor, np.ndarray]], num_classes: int,
                          classifiers=tuple(CLASSIFIERS), metric: str = "macro_f1", seed: int = 0) -> pd.DataFrame:
    """Fit each classifier on train features for every hyper-parameter value, keep the best on validation
    ``metric``, and score it once on test. Returns one row per classifier."""
    (xtr, ytr), (xva, yva), (xte, yte) = (features[s] for s in ("train", "val", "test"))
    xtr, xva, xte = (x.numpy() for x in (xtr, xva, xte))
    rows = []
    for name in classifiers:
        factory, param, values = CLASSIFIERS[name]
        best = None
        for value in values:
            model = make_pipeline(StandardScaler(), factory(value, seed)).fit(xtr, ytr)
            val = classification_metrics(_scores(model, xva, num_classes), torch.from_numpy(yva))
            if best is None or val[metric] > best[1][metric]:
                best = (value, val, model)
        value, val, model = best
        test = classification_metrics(_scores(model, xte, num_classes), torch.from_numpy(yte))
        rows.append({"classifier": name, "chosen_on_val": f"{param}={value}",
                     **{f"val_{k}": v for k, v in val.items()}, **{f"test_{k}": v for k, v in test.items()}})
    table = pd.DataFrame(rows).set_index("classifier")
    return table
