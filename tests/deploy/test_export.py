import json

import pytest
import torch
from safetensors.torch import load_file

from medvision import DISCLAIMER
from medvision.deploy.bundle import BundleError, load_bundle
from medvision.deploy.export import abstention_threshold, export_bundle, load_descriptions
from medvision.evaluate.evaluation import evaluate_run


def test_bundle_contents_and_model_card(tiny_run, tiny_bundle):
    names = {p.name for p in tiny_bundle.iterdir()}
    assert names == {"model.safetensors", "bundle.json", "MODEL_CARD.md", "model.pt2"}
    meta = json.loads((tiny_bundle / "bundle.json").read_text())
    ev = evaluate_run(tiny_run)
    assert meta["architecture"] == "test_efficientnet" and meta["class_names"] == ["malignant", "normal, benign"]
    assert meta["temperature"] == pytest.approx(ev.temperature) and meta["temperature_fitted_on"] == "val"
    assert meta["metrics"]["test"]["accuracy"] == pytest.approx(ev.metrics["accuracy"])
    assert meta["preprocessing"]["cache_size"] == 28 and meta["preprocessing"]["input_size"] == 32
    assert meta["data"]["md5"] == "750601b1f35ba3300ea97c75c52ff8f6"
    assert meta["disclaimer"] == DISCLAIMER
    assert meta["abstention"]["fitted_on"] == "val" and 0 <= meta["abstention"]["threshold"] <= 1
    assert meta["deploy_checks"]["model.pt2"]["max_abs_logit_diff_vs_eager"] <= 1e-4
    state = load_file(tiny_bundle / "model.safetensors")
    best = torch.load(tiny_run / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(state[k], best[k]) for k in best)
    card = (tiny_bundle / "MODEL_CARD.md").read_text()
    assert DISCLAIMER in card and "Suspicious for malignancy" in card
    assert f"{ev.metrics['accuracy']:.3f}" in card and meta["files"]["model.safetensors"] in card


def test_export_refuses_to_overwrite_and_non_runs(tiny_run, tiny_bundle, tmp_path):
    with pytest.raises(FileExistsError, match="--force"):
        export_bundle(tiny_run, tiny_bundle)
    with pytest.raises(FileNotFoundError, match="not a finished run directory"):
        export_bundle(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_descriptions_must_name_real_classes(tmp_path):
    assert load_descriptions({"a": "x"}, ["a", "b"]) == {"a": "x"}
    with pytest.raises(ValueError, match=r"unknown class\(es\) \['c'\]"):
        load_descriptions({"c": "x"}, ["a", "b"])
    f = tmp_path / "d.yaml"
    f.write_text("b: second class\n")
    assert load_descriptions(f, ["a", "b"]) == {"b": "second class"}


def test_abstention_threshold_is_chosen_on_validation():
    logits = torch.tensor([[4.0, 0.0], [3.0, 0.0], [0.0, 0.5], [0.0, 2.0]])
    targets = torch.tensor([0, 0, 0, 1])  # the least confident case is wrong
    out = abstention_threshold(logits, targets, 1.0, target_accuracy=1.0, min_errors=1)
    assert out["val_coverage"] == 0.75
    assert out["threshold"] == pytest.approx(torch.tensor([0.0, 2.0]).softmax(0)[1].item())
    assert out["fitted"] and not out["reason"]


def test_no_abstention_threshold_is_fitted_on_a_validation_split_without_mistakes():
    logits = torch.tensor([[4.0, 0.0], [3.0, 0.0], [0.0, 0.5], [0.0, 2.0]])
    out = abstention_threshold(logits, torch.tensor([0, 0, 1, 1]), 1.0, target_accuracy=0.95)
    assert out["threshold"] == 0.0 and out["val_coverage"] == 1.0 and not out["fitted"]
    assert "0 misclassified case(s) of 4" in out["reason"] and "no case abstains" in out["reason"]
    meta = {"temperature": 1.0, "temperature_fit": {"used": False, "reason": "the validation split has no "
            "misclassified case"}, "abstention": out}
    from medvision.deploy.export import _temperature_line

    assert _temperature_line(meta).startswith("Temperature kept at 1 (not fitted): the validation split has no")


def test_tampered_bundle_is_refused(tiny_bundle, tmp_path):
    import shutil

    bad = tmp_path / "tampered"
    shutil.copytree(tiny_bundle, bad)
    data = bytearray((bad / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (bad / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="modified or corrupted"):
        load_bundle(bad)


@pytest.mark.parametrize("change, message", [
    ({"architecture": "mobilenetv3_small_050"}, "does not fit architecture 'mobilenetv3_small_050'"),
    ({"class_names": ["a", "b", "c"]}, "with other shapes"),
    ({"format": "something-else"}, "is not a medvision-bundle file"),
    ({"tta": "five_crop"}, r"bundle.json asks for test-time augmentation 'five_crop'"),
])
def test_wrong_architecture_or_format_is_refused(tiny_bundle, tmp_path, change, message):
    import shutil

    bad = tmp_path / "wrong"
    shutil.copytree(tiny_bundle, bad)
    meta = json.loads((bad / "bundle.json").read_text())
    (bad / "bundle.json").write_text(json.dumps(meta | change))
    with pytest.raises(BundleError, match=message):
        load_bundle(bad)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="not a medvision bundle"):
        load_bundle(tmp_path)


def test_onnx_export_matches_eager(tiny_run, tmp_path):
    pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
    pytest.importorskip("onnxscript", reason="the [onnx] extra is not installed")
    out = export_bundle(tiny_run, tmp_path / "onnx", formats=("onnx",))
    meta = json.loads((out / "bundle.json").read_text())
    assert "model.onnx" in meta["files"] and meta["deploy_checks"]["model.onnx"]["max_abs_logit_diff_vs_eager"] <= 1e-4
    assert not any(p.name.endswith(".data") for p in out.iterdir())
