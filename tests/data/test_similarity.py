"""Near duplicates in feature space (``dedupe: embedding``) and the residual-similarity verdict, on vectors and
on real images: "video frames" cut from HAM10000 images, and HAM10000 split by its lesion ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance

from medvision.config import DataConfig
from medvision.core.errors import DataError
from medvision.data import load_csv
from medvision.data.dedupe import SplitReport
from medvision.data.load import load_data
from medvision.data.similarity import (
    derive_threshold,
    residual_similarity,
    similar_pairs,
    threshold_for,
)
from medvision.data.table import SampleTable
from medvision.models.embeddings import image_embeddings, similarity_audit

FRAMES_PER_SOURCE = 4


def _clusters_of(n: int, centres: int, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(centres, 32))
    source = np.repeat(np.arange(centres), n // centres)
    return base[source] + spread * rng.normal(size=(len(source), 32)), source


def test_pairs_are_mutual_nearest_neighbours_above_the_threshold():
    x, source = _clusters_of(120, 30, 0.05)
    ii, jj, sims = similar_pairs(x, threshold=0.9)
    assert len(ii) and (source[ii] == source[jj]).all() and (sims >= 0.9).all() and (ii < jj).all()
    assert len(similar_pairs(x, threshold=1.01)[0]) == 0
    hub = np.vstack([x, x.mean(0, keepdims=True)])  # close to everyone, the mutual neighbour of no one
    hi, hj, _ = similar_pairs(hub, threshold=-1)
    assert not ((hi == len(x)) | (hj == len(x))).any()


def test_the_threshold_comes_from_images_known_to_be_distinct():
    x, source = _clusters_of(200, 50, 0.05)
    labels = source % 2
    t = derive_threshold(x, labels)
    assert t.derived and t.reference == "other class" and t.n_reference == 200
    other = (labels[:, None] != labels[None, :])
    f = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert t.value == pytest.approx(np.quantile(np.where(other, f @ f.T, -9).max(1), 0.99), abs=1e-5)
    assert "99.0% quantile" in t.describe()
    grouped = derive_threshold(x, labels, groups=source)
    assert grouped.reference == "other group" and grouped.value >= t.value  # same-class strangers count too
    with pytest.raises(DataError, match="too few images"):
        derive_threshold(x[:10], labels[:10])
    with pytest.raises(DataError, match="set data.embedding_threshold"):
        derive_threshold(x, np.zeros(200, int))  # one class, no groups: nothing is known to be distinct


def _table(source: np.ndarray, split: np.ndarray, labels: np.ndarray, groups=None) -> SampleTable:
    frame = pd.DataFrame({"sample_id": [f"s{i}" for i in range(len(source))], "label": labels, "split": split,
                          "index": np.arange(len(source))})
    if groups is not None:
        frame["group"] = groups
    return SampleTable(frame=frame, class_names=("a", "b"), name="planted", images=np.zeros((len(source), 2, 2, 3)))


def test_the_verdict_fails_a_scattered_split_and_passes_a_grouped_one():
    x, source = _clusters_of(400, 100, 0.05)
    labels = source % 2
    rng = np.random.default_rng(1)
    scattered = rng.choice(["train", "val", "test"], size=len(source), p=[0.7, 0.15, 0.15])
    by_source = np.array(["train", "val", "test"])[rng.choice(3, size=100, p=[0.7, 0.15, 0.15])][source]
    t = derive_threshold(x, labels)
    bad = residual_similarity(x, _table(source, scattered, labels), t)
    assert bad["verdict"] == "optimistic" and bad["splits"]["test"]["nearest"]["close"] > 0.5
    assert "treat their scores as optimistic" in bad["sentence"]
    good = residual_similarity(x, _table(source, by_source, labels), t)
    assert good["verdict"] == "clean" and "the split passes" in good["sentence"]
    assert sum(good["splits"]["test"]["nearest"]["histogram"]) == (by_source == "test").sum()


# ------------------------------------------------------------------------------------------ real images
def _frame(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A hand-held camera's next frame: a small rotation, a shifted crop, another exposure."""
    w, h = image.size
    out = image.rotate(rng.uniform(-8, 8), resample=Image.BILINEAR)
    s = rng.uniform(0.8, 0.95)
    cw, ch = int(w * s), int(h * s)
    x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
    out = out.crop((x, y, x + cw, y + ch)).resize((w, h))
    return ImageEnhance.Brightness(out).enhance(rng.uniform(0.8, 1.2))


@pytest.fixture(scope="module")
def frames(shared_data, tmp_path_factory) -> tuple[DataConfig, pd.DataFrame]:
    """Four frames of each of 120 HAM10000 lesions (one image per lesion), as a CSV with a hidden source."""
    root = tmp_path_factory.mktemp("frames")
    ham = pd.read_csv(shared_data / "ham10000" / "subset.csv").drop_duplicates("lesion_id").head(120)
    rng = np.random.default_rng(0)
    rows = []
    for k, row in enumerate(ham.itertuples()):
        image = Image.open(shared_data / "ham10000" / row.file).convert("RGB")
        for f in range(FRAMES_PER_SOURCE):
            name = f"frames/{row.lesion_id}_{f}.png"
            (root / "frames").mkdir(exist_ok=True)
            _frame(image, rng).save(root / name)
            rows.append({"file": name, "dx": row.dx, "source": k})
    manifest = pd.DataFrame(rows)
    manifest.to_csv(root / "frames.csv", index=False)
    cfg = DataConfig(source="csv", name=str(root / "frames.csv"), path_col="file", label_col="dx", size=128,
                     ratios=(0.7, 0.15, 0.15))
    return cfg, manifest


def _straddling(table: SampleTable, source: pd.Series) -> float:
    """The fraction of sources with frames both in test and outside it."""
    split = table.frame.set_index("sample_id")["split"]
    by_source = pd.DataFrame({"source": source.to_numpy(), "split": split.loc[source.index].to_numpy()})
    sides = by_source.groupby("source")["split"].agg(lambda s: ("test" in set(s)) and len(set(s)) > 1)
    return float(sides.mean())


@pytest.mark.slow
def test_embedding_keeps_each_sources_frames_in_one_split(frames):
    cfg, manifest = frames
    source = manifest.set_index("file")["source"]
    near = [_straddling(load_data(DataConfig(**{**cfg.to_dict(), "dedupe": "near", "seed": s,
                                                "classes": (), "ratios": cfg.ratios})), source)
            for s in range(3)]
    assert np.mean(near) >= 0.40  # the frames are not trivially easy: pHash alone scatters them
    tables = [load_data(DataConfig(**{**cfg.to_dict(), "dedupe": "embedding", "seed": s, "classes": (),
                                      "ratios": cfg.ratios})) for s in range(3)]
    assert np.mean([_straddling(t, source) for t in tables]) <= 0.10
    report = tables[0].split_report
    assert report["dedupe"] == "embedding" and report["embedding"]["threshold"]["derived"]
    assert report["embedding"]["largest_cluster"] <= 0.05 * len(manifest)
    assert "feature-space pair(s) at cosine similarity >=" in SplitReport(**report).describe()
    table = load_csv(cfg.name, path_col="file", label_col="dx")
    features = image_embeddings(table, size=cfg.embedding_size)
    ii, jj, _ = similar_pairs(features, threshold_for(table, features, cfg).value)
    src = source.loc[table.frame["sample_id"]].to_numpy()
    assert (src[ii] == src[jj]).mean() >= 0.9  # pair precision


@pytest.mark.slow
def test_the_verdict_fails_scattered_frames_and_passes_ham_split_by_lesion(frames, shared_data):
    cfg, _ = frames
    scattered = load_data(cfg)  # dedupe none: a random split of the frames
    assert similarity_audit(scattered, cfg)["verdict"] == "optimistic"
    ham = DataConfig(source="csv", name=str(shared_data / "ham10000" / "subset.csv"), path_col="file",
                     label_col="dx", group_col="lesion_id", size=128)
    audit = similarity_audit(load_data(ham), ham)
    assert audit["verdict"] == "clean", audit["sentence"]
