import json
from pathlib import Path

import jupytext
import pytest
import yaml

from medvision import DISCLAIMER
from medvision.book.build import stage_book
from medvision.book.notebooks import check_notebooks, without_install_cells
from medvision.book.pages import run_banner
from medvision.book.profiles import (
    PROFILES,
    chapter_parameters,
    find_repo_root,
    load_profile,
    plans_from_profile,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_names_existing_notebooks(profile):
    prof = load_profile(profile, REPO)
    assert "01_eda" in prof["notebooks"] or (profile in ("systems", "reference") and prof["systems"]) or (
        profile == "evidence" and "08_label_budget" in prof["notebooks"])


def test_profile_parameters_exist_in_the_notebooks():
    """A typo in a profile would be injected silently by papermill; catch it here."""
    for profile in PROFILES:
        loaded = load_profile(profile, REPO)
        for nb in loaded["notebooks"]:
            params = chapter_parameters(loaded, nb)
            declared = _declared(nb)
            assert set(params) <= declared, (profile, nb, set(params) - declared)
        for name, plan in plans_from_profile(loaded).items():  # the systems' chapters get their parameters too
            for nb, params in plan.parameters.items():
                declared = _declared(nb)
                assert nb in plan.chapters and set(params) <= declared, (profile, name, nb, set(params) - declared)


def _declared(nb: str) -> set[str]:
    from medvision.book.parameters import parse_cell

    source = jupytext.read(REPO / "notebooks" / f"{nb}.py")
    cell = next(c for c in source.cells if "parameters" in c.metadata.get("tags", []))
    return {p.name for p in parse_cell(cell.source)}


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="profile 'nope' not found"):
        load_profile("nope", REPO)


def test_bad_profile_file(tmp_path):
    (tmp_path / "profiles").mkdir()  # no _toc.yml here: only the notebook check applies
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "profiles" / "x.yaml").write_text(yaml.safe_dump({"notebooks": {"99_missing": {}}}))
    with pytest.raises(FileNotFoundError, match="99_missing"):
        load_profile("x", tmp_path)


def test_smoke_banner_labels_results():
    text = run_banner("smoke", data="pneumoniamnist_28", seed=0).data
    assert "Smoke profile" in text and "not results" in text and DISCLAIMER in text
    assert "Smoke" not in run_banner("default", data="x").data


def test_stage_book_copies_sources_only(tmp_path):
    dest = stage_book(REPO, tmp_path / "stage")
    assert (dest / "_toc.yml").is_file() and (dest / "book" / "intro.md").is_file()
    assert not (dest / "book" / "generated").exists()
    assert find_repo_root(dest) == dest


@pytest.mark.parametrize("profile", PROFILES)
def test_toc_and_profiles_name_the_same_chapters(profile):
    """Every chapter a profile runs is in the book, and each part of executed chapters runs whole or not at all."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    notebooks = set(load_profile(profile, REPO)["notebooks"])
    parts = [{c["file"].rsplit("/", 1)[-1] for c in part["chapters"] if "generated" in c["file"]}
             for part in toc["parts"]]
    assert notebooks == set().union(*(p for p in parts if p & notebooks))
    assert all(p <= notebooks or not p & notebooks for p in parts)


def test_a_profile_missing_a_toc_chapter_is_refused(tmp_path):
    import shutil

    for name in ("_toc.yml", "notebooks"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, tmp_path / name)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "x.yaml").write_text(yaml.safe_dump({"notebooks": {"01_eda": {}}}))
    with pytest.raises(ValueError, match="_toc.yml includes"):
        load_profile("x", tmp_path)
    evidence_only = {"notebooks": {nb: {} for nb in ("08_label_budget", "09_imbalance", "10_resolution")}}
    (tmp_path / "profiles" / "y.yaml").write_text(yaml.safe_dump(evidence_only))
    assert set(load_profile("y", tmp_path)["notebooks"]) == set(evidence_only["notebooks"])


def test_notebooks_are_paired_stripped_tagged_and_use_the_medvision_kernel():
    assert check_notebooks(REPO / "notebooks") == []
    assert len(list((REPO / "notebooks").glob("*.ipynb"))) == 10


def test_check_notebooks_finds_drift_outputs_and_missing_install_cell(tmp_path):
    import shutil

    import nbformat

    for ext in ("ipynb", "py"):
        shutil.copy(REPO / "notebooks" / f"01_eda.{ext}", tmp_path / f"01_eda.{ext}")
    nb = nbformat.read(tmp_path / "01_eda.ipynb", as_version=4)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="hi")]
    nb.cells[1].metadata["tags"] = []
    nbformat.write(nb, tmp_path / "01_eda.ipynb")
    with open(tmp_path / "01_eda.py", "a") as fh:
        fh.write("\n# %%\nprint('only in the .py')\n")
    problems = "\n".join(check_notebooks(tmp_path))
    assert "outputs are not stripped" in problems and "drifted apart" in problems
    assert "install cell" in problems


def test_install_cell_is_a_no_op_here_and_never_run_by_the_book(tmp_path):
    import subprocess
    import sys

    nb = without_install_cells(REPO / "notebooks" / "01_eda.ipynb")
    assert not any("install" in c.metadata.get("tags", []) for c in nb.cells)
    full = json.loads((REPO / "notebooks" / "01_eda.ipynb").read_text())
    install = next(c for c in full["cells"] if "install" in c["metadata"].get("tags", []))
    source = "".join(install["source"])
    # medvision is importable here, so the cell must not call pip.
    proc = subprocess.run([sys.executable, "-c", source.replace("subprocess.check_call", "exit")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_book_check_flag(capsys):
    from medvision.book.build import main

    assert main(["--check", "--root", str(REPO)]) == 0


def test_executed_eda_page_has_figures(tmp_path, monkeypatch):
    """Run the EDA chapter as the book does (smoke profile) and check it shows real figures."""
    from medvision.book.build import run_notebooks

    monkeypatch.setenv("MPLBACKEND", "Agg")  # as under make/CI: the runner must still render inline
    record = run_notebooks("smoke", REPO, only=["01_eda"], out_root=tmp_path)
    assert record["notebooks"]["01_eda"]["parameters"]["profile"] == "smoke"
    nb = json.loads((tmp_path / "book" / "generated" / "01_eda.ipynb").read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 4
    assert not [o for o in outputs if o["output_type"] == "error"]
    text = json.dumps(outputs)
    assert "Smoke profile" in text and "pneumoniamnist_28" in text
    assert (tmp_path / "book" / "generated" / "_run.json").is_file()
    # the parameters show once: the notebook's defaults cell is removed from the page, papermill's cell lists
    # every parameter with the value the run used
    defaults = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    injected = next(c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    assert "remove-cell" in defaults["metadata"]["tags"]
    assert "remove-cell" not in injected["metadata"].get("tags", [])
    shown = "".join(injected["source"])
    assert shown.startswith("# Parameters of this run")
    from medvision.book.parameters import parse_cell

    stored = parse_cell("".join(defaults["source"]))
    assert [p.name for p in parse_cell(shown)] == [p.name for p in stored]  # every parameter, in order
    assert 'profile: str = "smoke"  # profile that produced this page' in shown
    assert "max_stats_images: int = 200  #" in shown  # the smoke profile's value, the notebook's comment


def test_run_log_counts_trained_and_reused_runs_per_chapter(tmp_path, monkeypatch):
    from medvision.book.pages import run_record
    from medvision.book.speed import describe_runs
    from medvision.core import run_log

    record = tmp_path / "_run.json"
    record.write_text(json.dumps({"notebooks": {"02_training_strategies": {"seconds": 9.0},
                                                "07_performance": {"seconds": 1.0}}}))
    run_log.note_run(3)  # outside a book build: nothing is written
    assert not list(tmp_path.glob("_runs_*"))
    monkeypatch.setenv("MEDVISION_RUN_RECORD", str(record))
    monkeypatch.setenv("MEDVISION_CHAPTER", "02_training_strategies")
    for epochs in (4, 0, 0):
        run_log.note_run(epochs)
    chapters = run_record()["notebooks"]
    assert chapters["02_training_strategies"]["runs"] == {"trained": 1, "reused": 2}
    assert describe_runs(chapters["02_training_strategies"]["runs"]) == "1 trained, 2 reused"
    assert describe_runs(chapters["07_performance"]["runs"]) == "—"


def test_run_record_follows_the_runner(tmp_path, monkeypatch):
    from medvision.book.pages import run_record

    record = tmp_path / "_run.json"
    record.write_text(json.dumps({"notebooks": {"01_eda": {"seconds": 1.5}}}))
    monkeypatch.setenv("MEDVISION_RUN_RECORD", str(record))
    assert run_record()["notebooks"]["01_eda"]["seconds"] == 1.5


def test_run_bench_reports_a_failing_script(tmp_path):
    from medvision.book.pages import run_bench

    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "broken.py").write_text("raise SystemExit('no data here')\n")
    with pytest.raises(RuntimeError, match="no data here"):
        run_bench("broken", root=tmp_path)


def test_runs_dir_resolution(tmp_path, monkeypatch):
    from medvision.book.pages import runs_dir

    assert runs_dir("smoke", "x", str(tmp_path)) == tmp_path
    monkeypatch.setenv("MEDVISION_RUNS", str(tmp_path / "r"))
    assert runs_dir("smoke", "pneumoniamnist") == tmp_path / "r" / "smoke" / "pneumoniamnist"
    monkeypatch.delenv("MEDVISION_RUNS")
    assert runs_dir("cpu", "d") == REPO / "runs" / "cpu" / "d"


def test_dependencies_follow_the_chapters_that_read_other_chapters():
    from medvision.book.build import dependencies

    deps = dependencies(["01_eda", "02_training_strategies", "03_per_class_analysis", "07_performance"])
    assert deps["01_eda"] == set() and deps["03_per_class_analysis"] == {"02_training_strategies"}
    assert deps["07_performance"] == {"01_eda", "02_training_strategies", "03_per_class_analysis"}
    assert dependencies(["03_per_class_analysis"]) == {"03_per_class_analysis": set()}  # --only


def test_schedule_runs_independent_chapters_together_and_keeps_the_order(tmp_path):
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from medvision.book.build import schedule

    events, lock = [], threading.Lock()

    def work(nb):
        with lock:
            events.append(("start", nb))
        time.sleep(0.2)
        with lock:
            events.append(("end", nb))
        return 0.2

    notebooks = ["01_eda", "02_training_strategies", "03_per_class_analysis", "04_calibration",
                 "06_benchmark", "07_performance"]
    done = []
    with ThreadPoolExecutor(2) as pool:
        schedule(notebooks, 2, lambda nb: pool.submit(work, nb), lambda nb, s: done.append(nb))
    pos = {e: i for i, e in enumerate(events)}
    assert pos[("start", "02_training_strategies")] < pos[("end", "01_eda")]  # ran side by side
    for later in ("03_per_class_analysis", "04_calibration"):
        assert pos[("start", later)] > pos[("end", "02_training_strategies")]
    assert pos[("start", "07_performance")] > max(pos[("end", nb)] for nb in notebooks[:-1])
    assert done[-1] == "07_performance" and sorted(done) == sorted(notebooks)
    running, peak = 0, 0
    for kind, _ in events:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 2


def test_schedule_stops_at_the_first_failure():
    from concurrent.futures import ThreadPoolExecutor

    from medvision.book.build import schedule

    def work(nb):
        if nb == "02_training_strategies":
            raise RuntimeError("chapter failed")
        return 0.0

    done = []
    with ThreadPoolExecutor(1) as pool, pytest.raises(RuntimeError, match="chapter failed"):
        schedule(["02_training_strategies", "03_per_class_analysis"], 1, lambda nb: pool.submit(work, nb),
                 lambda nb, s: done.append(nb))
    assert done == []


def test_the_gpu_profile_trains_through_the_same_code_paths_on_the_cpu_backend(shared_data, tmp_path):
    """The gpu profile's training chapter (224 px, 30 epochs, default augmentation, last_k on cached stages) runs
    on the CPU backend when shrunk to 48 images, one epoch and an offline backbone, from the 28 px MedMNIST files
    here (upsampled to the profile's 224 px input); nothing else changes."""
    from medvision.config import RunConfig
    from medvision.data.pipeline import load_cached_split
    from medvision.train.runner import run_strategy

    params = chapter_parameters(load_profile("gpu", REPO), "02_training_strategies")
    full = RunConfig.load(params["config"], [params["overrides"]])
    assert (full.experiment.image_size, full.train.epochs, full.data.size) == (224, 30, 224)
    shrunk = RunConfig.load("breastmnist", [params["overrides"], {
        "data": {"data_root": str(shared_data), "size": 28},
        "experiment": {"backbone": "tf_efficientnet_lite0", "pretrained": "package"},
        "train": {"epochs": 1, "device": "cpu", "progress": False}}])
    assert (shrunk.experiment.image_size, shrunk.train.tta, shrunk.experiment.augment) == \
        (224, full.train.tta, full.experiment.augment)
    cache = load_cached_split(shrunk.data, 48)
    summary = run_strategy(cache, "last_k:2", shrunk, tmp_path)
    assert summary["image_size"] == 224 and summary["cached"] == ["stages"]
    assert summary["stage_cache"]["views"] == shrunk.train.cache_views and 0 <= summary["test"]["accuracy"] <= 1
