"""The hosted-CI workflows: valid against the GitHub workflow schema (check-jsonschema's vendored copy, offline),
and running what the README promises: `make test` on every push and pull request, `make book` deployed to Pages."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"


def _lint(*files: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("check-jsonschema")
    command = [str(exe)] if exe.exists() else [shutil.which("check-jsonschema") or "check-jsonschema"]
    return subprocess.run([*command, "--builtin-schema", "vendor.github-workflows", *map(str, files)],
                          capture_output=True, text=True, check=False)


def test_the_workflows_pass_the_workflow_linter_and_a_broken_one_does_not(tmp_path):
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["book.yml", "ci.yml"]
    done = _lint(*files)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    step:\n      - run: make test\n")
    assert _lint(broken).returncode != 0


def _steps(workflow: str) -> list[dict]:
    doc = yaml.safe_load((WORKFLOWS / workflow).read_text())
    return [s for job in doc["jobs"].values() for s in job.get("steps", [])]


def test_ci_runs_the_readme_test_command_and_the_book_workflow_deploys_make_book():
    readme = (REPO / "README.md").read_text()
    assert "make test" in readme and "make book" in readme
    assert any(s.get("run") == "make test" for s in _steps("ci.yml"))
    book = _steps("book.yml")
    assert any(s.get("run") == "make book" for s in book)
    upload = next(s for s in book if str(s.get("uses", "")).startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"
    assert any(str(s.get("uses", "")).startswith("actions/deploy-pages") for s in book)
    on = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())[True]  # YAML 1.1 reads the key `on` as True
    assert {"push", "pull_request"} <= set(on)


@pytest.mark.parametrize("workflow", ["ci.yml", "book.yml"])
def test_workflows_install_nothing_the_makefile_does_not(workflow):
    """The Makefile creates .venv from pyproject.toml: a workflow that pip-installs on its own would test
    another environment than a user's."""
    assert not [s for s in _steps(workflow) if "pip install" in str(s.get("run", ""))]
