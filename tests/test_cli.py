import importlib.util

from medvision.cli import main


def test_data_inspect(shared_data, capsys):
    assert main(["data", "inspect", "breastmnist", "--data-root", str(shared_data)]) == 0
    out = capsys.readouterr().out
    assert "breastmnist_28: 780 images" in out and "malignant" in out


def test_data_inspect_bad_input_exits_2_without_traceback(tmp_path, capsys):
    assert main(["data", "inspect", "nowhere", "--source", "folder", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


def test_data_commands_take_a_system_name_a_yaml_or_flags(shared_data, tmp_path, capsys):
    # `data fetch ham10000` writes ham10000/...; `data inspect ham10000` must read the same system back
    assert main(["data", "inspect", "ham10000", "--data-root", str(shared_data)]) == 0
    out = capsys.readouterr().out
    assert "nv" in out and "mel" in out and "train" in out
    yaml_file = tmp_path / "mine.yaml"
    yaml_file.write_text(f"data: {{source: folder, name: chest_xray_224, data_root: {shared_data}, size: 32}}\n")
    assert main(["data", "inspect", str(yaml_file), "--set", "data.val_fraction=0.25"]) == 0
    assert "NORMAL" in capsys.readouterr().out
    assert main(["data", "inspect", "chest_xray_224", "--source", "folder", "--data-root", str(shared_data)]) == 0
    assert "PNEUMONIA" in capsys.readouterr().out
    assert main(["data", "inspect", "breastmnist", "--set", "train.epochs=1"]) == 2
    assert "data.FIELD=VALUE overrides only" in capsys.readouterr().err
    assert main(["data", "inspect", "not_a_thing"]) == 2
    assert "available systems" in capsys.readouterr().err


def test_book_unknown_profile(capsys):
    assert main(["book", "--profile", "nope", "--no-build"]) == 2
    assert "profile 'nope' not found" in capsys.readouterr().err


def test_data_fetch_without_handle_exits_2(capsys):
    assert main(["data", "fetch", "kvasir"]) == 2
    assert "put the files as" in capsys.readouterr().err


# --- every sub-command documents itself ------------------------------------------------------------------
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from medvision.cli import build_parser  # noqa: E402


def _commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    out = []
    for name, p in sub.choices.items():
        nested = [a for a in p._actions if getattr(a, "dest", "") == "action"]
        out += [[name, child] for child in nested[0].choices] if nested else [[name]]
    return out


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_command_list_is_complete():
    top = {c[0] for c in _commands()}
    assert top == {"book", "data", "train", "evaluate", "export", "predict", "app"}
    assert {c[1] for c in _commands() if c[0] == "data"} == {"fetch", "inspect", "split", "leakage"}


def test_data_split_and_leakage(shared_data, tmp_path, capsys):
    out = tmp_path / "split.csv"
    assert main(["data", "split", "breastmnist", "--data-root", str(shared_data), "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 780
    pairs = tmp_path / "pairs.csv"
    assert main(["data", "leakage", "breastmnist", "--data-root", str(shared_data), "--out", str(pairs)]) == 0
    assert pairs.is_file() and "pairs written" in capsys.readouterr().out
    near = pd.read_csv(pairs)
    wide = tmp_path / "wide.csv"
    assert main(["data", "leakage", "breastmnist", "--data-root", str(shared_data), "--near-distance", "10",
                 "--out", str(wide)]) == 0  # the flag reaches the report (it used to be ignored)
    wider = pd.read_csv(wide)
    assert (wider["kind"] == "near").sum() > (near["kind"] == "near").sum()
    assert wider["distance"].max() > 4 >= near["distance"].max()


def test_train_evaluate_export_predict_end_to_end(shared_data, tmp_path, capsys):
    runs = tmp_path / "runs"
    overrides = ["data.name=chest_xray_224", "data.size=32", "experiment.backbone=test_efficientnet",
                 "experiment.pretrained=none", "experiment.image_size=32", "train.epochs=1"]
    argv = ["train", "chest_xray_pneumonia", "--data-root", str(shared_data), "--runs-dir", str(runs),
            "--strategy", "head_only", "--strategy", "full", "--limit", "60", "--quiet"]
    for o in overrides:
        argv += ["--set", o]
    assert main(argv) == 0
    assert "head_only" in capsys.readouterr().out and (runs / "full-scratch" / "best.pt").is_file()

    assert main(["evaluate", str(runs / "full-scratch"), "--resamples", "20", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert 0 <= metrics["accuracy"] <= 1

    bundle = tmp_path / "bundle"
    assert main(["export", str(runs), str(bundle)]) == 0  # a folder of runs: the best on validation
    captured = capsys.readouterr()
    assert "best validation macro-F1" in captured.err and "bundle written" in captured.out
    assert main(["export", str(runs / "full-scratch"), str(bundle)]) == 2
    assert "--force" in capsys.readouterr().err

    images = tmp_path / "images"
    src = sorted((shared_data / "chest_xray_224" / "test").rglob("*.jpeg"))[:3]
    images.mkdir()
    for f in src:
        Image.open(f).save(images / f"{f.stem}.png")
    (images / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    out = tmp_path / "preds.csv"
    assert main(["predict", str(bundle), str(images), "--out", str(out), "--abstain"]) == 3
    err = capsys.readouterr().err
    assert "skipped" in err and "corrupt.png" in err and "not a medical device" in err
    table = pd.read_csv(out)
    assert len(table) == 3 and {"file", "label", "confidence", "abstained", "p[NORMAL]", "p[PNEUMONIA]"} <= set(table)
    assert main(["predict", str(bundle), str(images / src[0].with_suffix(".png").name), "--out",
                 str(tmp_path / "one.json")]) == 0
    one = json.loads((tmp_path / "one.json").read_text())
    assert one[0]["label"] in ("NORMAL", "PNEUMONIA") and len(one[0]["top_k"]) == 2
    assert main(["predict", str(bundle), str(images), "--backend", "torch", "--abstain", "--out",
                 str(tmp_path / "t.csv")]) == 3
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), table)  # auto = torch: no model.onnx here
    if importlib.util.find_spec("onnxruntime"):
        assert main(["predict", str(bundle), str(images), "--backend", "onnx"]) == 2
        assert "has no model.onnx" in capsys.readouterr().err


def test_train_rejects_bad_overrides(capsys):
    assert main(["train", "ham10000", "--set", "train.epochz=3"]) == 2
    assert "unknown TrainConfig field(s) ['epochz']" in capsys.readouterr().err
    assert main(["train", "ham10000", "--set", "nonsense"]) == 2
    assert "section.field=value" in capsys.readouterr().err


def test_user_errors_exit_2_without_traceback(tiny_bundle, tmp_path):
    bad = tmp_path / "bundle"
    bad.mkdir()
    for f in tiny_bundle.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "model.safetensors").write_bytes(b"tampered")
    img = tmp_path / "x.png"
    Image.new("L", (28, 28)).save(img)
    proc = subprocess.run([sys.executable, "-m", "medvision.cli", "predict", str(bad), str(img)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "modified or corrupted" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "medvision.cli", "evaluate", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not a run directory" in proc.stderr and "Traceback" not in proc.stderr


def test_app_refuses_a_non_bundle(tmp_path, capsys):
    assert main(["app", str(tmp_path)]) == 2
    assert "not a medvision bundle" in capsys.readouterr().err
