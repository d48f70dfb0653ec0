"""pyproject.toml and environment.yml must name the same dependencies with the same lower bounds."""


from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[1]


def test_environment_mirrors_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = set(project["dependencies"])
    for req in extras["dev"]:  # dev pulls in other extras by name: medvision[app,onnx]
        if req.startswith("medvision["):
            for name in req[len("medvision["):-1].split(","):
                wanted |= set(extras[name])
        else:
            wanted.add(req)
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert wanted == {p for p in pip if not p.startswith("-e")}
    assert any("jupyter-book" in d and "<2" in d for d in project["dependencies"])
