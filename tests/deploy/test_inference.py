import importlib.util
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from medvision import DISCLAIMER
from medvision.data.errors import ImageLoadError
from medvision.deploy.inference import Prediction, Predictor, image_files
from medvision.evaluate.evaluation import evaluate_run, load_run


@pytest.fixture(scope="module")
def predictor(tiny_bundle):
    return Predictor.from_bundle(tiny_bundle, device="cpu", batch_size=16)


def test_round_trip_gives_the_evaluation_probabilities(tiny_run, predictor):
    run, ev = load_run(tiny_run), evaluate_run(tiny_run)
    images, _ = run.cache.split("test")
    probs = predictor.predict_proba([im.transpose(1, 2, 0) for im in images])
    expected = (ev.test_logits / ev.temperature).softmax(1)
    torch.testing.assert_close(probs, expected, atol=1e-5, rtol=0)


def test_same_probabilities_from_png_files(tiny_run, predictor, tmp_path):
    run = load_run(tiny_run)
    images, _ = run.cache.split("test")
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"case{i}.png")
        Image.fromarray(images[i].transpose(1, 2, 0)).save(paths[-1])
    from_files = predictor.predict_proba(paths)
    from_arrays = predictor.predict_proba([im.transpose(1, 2, 0) for im in images[:5]])
    torch.testing.assert_close(from_files, from_arrays, atol=1e-6, rtol=0)


def test_prediction_fields(predictor):
    image = np.full((28, 28, 3), 120, np.uint8)
    pred = predictor.predict(image, top_k=5)
    assert isinstance(pred, Prediction) and pred.source == "<array>"
    assert pred.label == predictor.class_names[pred.index]
    assert len(pred.top_k) == 2 and pred.top_k[0] == (pred.label, pred.confidence)
    assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert pred.disclaimer == DISCLAIMER and pred.threshold is None and not pred.abstained
    assert pred.description == ("Suspicious for malignancy: biopsy decides." if pred.label == "malignant" else "")
    assert pred.to_dict()["top_k"][0][0] == pred.label


def test_grayscale_rgba_large_pil_and_upload_inputs(predictor, tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (40, 30), dtype=np.uint8)
    rgba = np.dstack([np.repeat(gray[..., None], 3, 2), np.full_like(gray, 255)])
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    big = rng.integers(0, 256, (3000, 2500, 3), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=80)
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="PNG")
    buf.seek(0)
    buf.name = "upload.png"
    preds = predictor.predict([tmp_path / "gray.png", tmp_path / "rgba.png", tmp_path / "big.jpg", gray, rgba,
                               Image.fromarray(gray), buf])
    assert [p.source for p in preds[:3]] == [str(tmp_path / n) for n in ("gray.png", "rgba.png", "big.jpg")]
    assert preds[-1].source == "upload.png"
    # Grayscale, its RGBA version, the array and the upload are the same pixels: same probabilities.
    for p in (preds[1], preds[3], preds[4], preds[5], preds[6]):
        assert p.probabilities == pytest.approx(preds[0].probabilities, abs=1e-6)


def test_unreadable_inputs_fail_clearly(predictor, tmp_path):
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageLoadError, match=r"scan\.png is not an image"):
        predictor.predict([np.zeros((8, 8, 3), np.uint8), bad])
    with pytest.raises(ImageLoadError, match="must be uint8"):
        predictor.predict(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ImageLoadError, match=r"\(H, W\)"):
        predictor.predict(np.zeros((8, 8, 5), np.uint8))
    with pytest.raises(TypeError, match="cannot predict on int"):
        predictor.predict(3)


def test_abstention(tiny_bundle):
    strict = Predictor.from_bundle(tiny_bundle, device="cpu", abstain=1.0)
    pred = strict.predict(np.zeros((28, 28, 3), np.uint8))
    assert pred.abstained and pred.threshold == 1.0
    default = Predictor.from_bundle(tiny_bundle, device="cpu", abstain=True)
    assert default.threshold == default.bundle.meta["abstention"]["threshold"]
    with pytest.raises(ValueError, match="abstain must be"):
        Predictor.from_bundle(tiny_bundle, abstain=1.5)


def test_explain_gives_an_overlay(predictor):
    overlay, cls = predictor.explain(np.full((28, 28, 3), 90, np.uint8))
    assert overlay.shape == (32, 32, 3) and overlay.dtype == np.uint8 and cls in (0, 1)


def test_image_files_walks_folders(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.png", "a/b/y.JPG", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in image_files([tmp_path / "a"])] == ["y.JPG", "x.png"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_files([tmp_path / "missing"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(tiny_bundle, predictor):
    gpu = Predictor.from_bundle(tiny_bundle, device="cuda")
    image = np.random.default_rng(1).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    torch.testing.assert_close(gpu.predict_proba(image), predictor.predict_proba(image), atol=1e-4, rtol=0)


def test_flip_tta_run_is_selected_scored_exported_and_predicted_with_flips(shared_data, tmp_path, monkeypatch):
    from medvision.config import DataConfig, ExperimentConfig, StrategyConfig, TrainConfig
    from medvision.config.run import RunConfig
    from medvision.data import build_tensor_cache, load_data
    from medvision.data.splits import stratified_subsample
    from medvision.deploy.export import export_bundle
    from medvision.models.backbones import FlipTTA
    from medvision.train.loop import evaluate
    from medvision.train.runner import run_strategy

    monkeypatch.setenv("MEDVISION_CACHE", str(tmp_path / "tensor-cache"))
    data_cfg = DataConfig(source="medmnist", name="breastmnist", data_root=str(shared_data))
    cache = build_tensor_cache(stratified_subsample(load_data(data_cfg), 120), 28, progress=False)
    exp = ExperimentConfig(backbone="test_efficientnet", pretrained="none", image_size=32, augment="flip")
    config = RunConfig(data_cfg, exp, TrainConfig(epochs=2, progress=False, tta="hflip"), StrategyConfig(lr=1e-2))
    summary = run_strategy(cache, "head_only", config, tmp_path / "runs")
    run_dir = tmp_path / "runs" / "head_only-scratch"
    run, ev = load_run(run_dir), evaluate_run(run_dir)
    assert summary["cached_features"]  # validation scores cached features of both views
    cpu = torch.device("cpu")
    flipped = evaluate(FlipTTA(run.model), run.loaders["val"], cpu)
    assert evaluate(run.model, run.loaders["val"], cpu)["loss"] != pytest.approx(flipped["loss"], rel=1e-6)
    assert summary["val"]["loss"] == pytest.approx(flipped["loss"], rel=1e-5)  # selection scored flips
    assert summary["test"]["auroc"] == pytest.approx(ev.metrics["auroc"], rel=1e-6)  # and so did the test
    import importlib.util

    onnx = all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnxscript"))  # the [onnx] extra
    bundle = export_bundle(run_dir, tmp_path / "bundle", formats=("pt2", "onnx") if onnx else ("pt2",))
    checks = json.loads((bundle / "bundle.json").read_text())["deploy_checks"]
    assert all(c["max_abs_logit_diff_vs_eager"] <= 1e-4 for c in checks.values())  # the files include the flips
    predictor = Predictor.from_bundle(bundle, device="cpu")
    assert predictor.bundle.meta["tta"] == "hflip" and "Test-time augmentation" in (bundle / "MODEL_CARD.md").read_text()
    images, _ = run.cache.split("test")
    probs = predictor.predict_proba([im.transpose(1, 2, 0) for im in images])
    torch.testing.assert_close(probs, (ev.test_logits / ev.temperature).softmax(1), atol=1e-5, rtol=0)
    assert predictor.explain(images[0].transpose(1, 2, 0))[0].ndim == 3


def test_torch_backend_folds_batchnorm_and_keeps_the_eager_probabilities(tiny_bundle, predictor):
    assert predictor.backend == "torch" and "backend=torch" in repr(predictor)
    eager = Predictor.from_bundle(tiny_bundle, device="cpu")
    assert predictor.model is not predictor.net  # a folded copy; Grad-CAM keeps the original
    x = torch.rand(4, 3, predictor.pre.input_size, predictor.pre.input_size)
    with torch.no_grad():
        expected = predictor.net(x)
    torch.testing.assert_close(eager.logits(x), expected, atol=1e-4, rtol=0)


def test_onnx_backend_gives_the_torch_probabilities(tiny_run, tmp_path):
    pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
    pytest.importorskip("onnxscript", reason="the [onnx] extra is not installed")
    from medvision.deploy.export import export_bundle

    out = export_bundle(tiny_run, tmp_path / "onnx", formats=("onnx",))
    auto = Predictor.from_bundle(out, device="cpu")
    torch_backend = Predictor.from_bundle(out, device="cpu", backend="torch")
    assert auto.backend == "onnx" and torch_backend.backend == "torch"
    images, _ = load_run(tiny_run).cache.split("test")
    batch = [im.transpose(1, 2, 0) for im in images]
    torch.testing.assert_close(auto.predict_proba(batch), torch_backend.predict_proba(batch), atol=1e-4, rtol=0)
    assert auto.predict(batch[0]).label == torch_backend.predict(batch[0]).label


def test_backend_errors(tiny_bundle):
    from medvision.deploy.bundle import BundleError

    with pytest.raises(ValueError, match="backend must be one of"):
        Predictor.from_bundle(tiny_bundle, device="cpu", backend="tensorrt")
    if importlib.util.find_spec("onnxruntime") is not None:
        with pytest.raises(BundleError, match="has no model.onnx"):
            Predictor.from_bundle(tiny_bundle, device="cpu", backend="onnx")
    assert Predictor.from_bundle(tiny_bundle, device="cpu").backend == "torch"  # auto: no model.onnx
