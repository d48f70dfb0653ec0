"""An installed wheel carries its resources: from a folder that is not the repository, with no data root and an
empty home, it lists the seed systems, loads the published anchors and loads the bundled PneumoniaMNIST offline."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CHECK = """
import json, medvision
from medvision.evaluate.anchors import load_anchors
from medvision.data import load_medmnist
from medvision.config import available_systems
from medvision.train.systems import load_system
table = load_medmnist("pneumoniamnist", download_missing=False)
print(json.dumps({"module": medvision.__file__, "systems": available_systems(),
                  "ham10000": load_system("ham10000").name, "anchors": len(load_anchors()),
                  "images": len(table), "file": table.provenance["file"]}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the project's sources (so no build folder lands in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "medvision", src / "medvision", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    isolation = [] if importlib.util.find_spec("setuptools") else ["--use-pep517"]
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
    if not isolation:
        cmd.insert(4, "--no-build-isolation")
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = out.glob("medvision-*.whl")
    return built


@pytest.mark.slow
def test_wheel_ships_configs_anchors_and_bundled_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for expected in ("medvision/configs/ham10000.yaml", "medvision/resources/anchors/medmnist_v2_benchmark.csv",
                     "medvision/resources/medmnist/pneumoniamnist.npz",
                     "medvision/resources/medmnist/breastmnist.npz"):
        assert expected in names, f"{expected} is not in {wheel.name}"


@pytest.mark.slow
def test_installed_wheel_works_outside_the_repository(wheel, tmp_path):
    target, work, home = tmp_path / "site", tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                           "--target", str(target), str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDVISION_", "XDG_"))}
    env.update(PYTHONPATH=str(target), HOME=str(home), MEDVISION_DATA=str(tmp_path / "no-data-root"),
               MEDVISION_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(facts["module"]).is_relative_to(target), facts["module"]  # the wheel, not the checkout
    assert facts["systems"] == ["chest_xray_pneumonia", "cxr_normal_pneumonia_tb", "eardrum", "ham10000", "kvasir"]
    assert facts["ham10000"] == "ham10000"
    assert facts["anchors"] > 0
    assert facts["images"] == 4708 + 524 + 624
    assert Path(facts["file"]).is_relative_to(target)
