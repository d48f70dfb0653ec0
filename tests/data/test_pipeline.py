"""One unreadable file under ``on_error: skip`` no longer stops anything: the one load -> subsample -> cache
function, the leakage hashing, the EDA chapter (through papermill) and a sweep all skip it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from medvision.config import DataConfig, RunConfig
from medvision.core.errors import ImageLoadError
from medvision.data import leakage_report
from medvision.data.leakage import audit_of
from medvision.data.load import load_data
from medvision.data.pipeline import load_cached_split
from medvision.train import sweeps
from tests.conftest import write_image

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def folder_with_a_bad_file(tmp_path: Path) -> Path:
    """Two classes of 16 small images each, one of them a truncated file."""
    root = tmp_path / "scans"
    for c, name in enumerate(("benign", "malignant")):
        for i in range(16):
            write_image(root / name / f"img_{i:02d}.png", size=(24, 24), seed=100 * c + i)
    bad = root / "benign" / "img_03.png"
    bad.write_bytes(bad.read_bytes()[:40])
    return root


def _config(root: Path, on_error: str) -> DataConfig:
    return DataConfig(source="folder", name=str(root), size=16, on_error=on_error, ratios=(0.5, 0.25, 0.25))


def test_load_cached_split_skips_or_raises_as_configured(folder_with_a_bad_file):
    cache = load_cached_split(_config(folder_with_a_bad_file, "skip"), max_train_samples=10, seed=1)
    assert [sid for sid, _ in cache.skipped] == ["benign/img_03.png"]
    assert len(cache.table) == len(cache) and "benign/img_03.png" not in set(cache.table.frame["sample_id"])
    assert cache.table.split_sizes()["train"] <= 10  # the draw happened before decoding
    with pytest.raises(ImageLoadError, match="img_03.png"):
        load_cached_split(_config(folder_with_a_bad_file, "raise"))


def test_the_leakage_hashing_honours_on_error(folder_with_a_bad_file):
    table = load_data(_config(folder_with_a_bad_file, "skip"))
    with pytest.raises(ImageLoadError):
        leakage_report(table)
    assert "benign/img_03.png" not in set(leakage_report(table, on_error="skip")["sample_a"])
    assert audit_of(table, on_error="skip")["test"] == table.split_sizes()["test"]


@pytest.mark.slow
def test_a_sweep_trains_past_the_bad_file(folder_with_a_bad_file, tmp_path):
    config = RunConfig.load("", [{"data": _config(folder_with_a_bad_file, "skip").to_dict(),
                                  "experiment": {"backbone": "test_efficientnet", "pretrained": "none",
                                                 "image_size": 16, "augment": "flip", "batch_size": 8},
                                  "train": {"epochs": 1, "progress": False}, "strategies": ["full"]}])
    rows = sweeps.run_sweep(config, sweeps.seeds_sweep([0]), tmp_path / "runs")
    assert len(rows) == 1 and rows["test_accuracy"].between(0, 1).all()


@pytest.mark.slow
def test_the_eda_chapter_runs_past_the_bad_file(folder_with_a_bad_file, tmp_path, monkeypatch):
    from medvision.book.notebooks import ensure_kernel, execute_notebook

    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    ensure_kernel()
    yml = tmp_path / "scans.yaml"
    yml.write_text(yaml.safe_dump({"data": _config(folder_with_a_bad_file, "skip").to_dict()}))
    out = tmp_path / "01_eda.ipynb"
    execute_notebook(REPO / "notebooks" / "01_eda.ipynb", out,
                     {"profile": "smoke", "config": str(yml), "max_stats_images": 40}, REPO / "notebooks")
    texts = json.dumps(json.loads(out.read_text())["cells"])
    assert "Traceback" not in texts and "scans" in texts
