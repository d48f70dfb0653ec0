import sys

import pytest


def test_fit_logs_params_metrics_and_artifacts(fake_mlflow, shared_data, tmp_path):
    from medvision.config import StrategyConfig, TrainConfig
    from medvision.data import build_tensor_cache, load_medmnist
    from medvision.data.splits import stratified_subsample
    from medvision.train.loop import fit
    from medvision.train.tracking import MLflowTracker
    from tests.train.test_loop import loaders, model_for

    cache = build_tensor_cache(stratified_subsample(load_medmnist("breastmnist", root=shared_data), 64), 28,
                               progress=False)
    with MLflowTracker("test", tracking_uri=tmp_path / "mlruns") as tracker:
        fit(model_for(), *loaders(cache), TrainConfig(epochs=2, progress=False), StrategyConfig("full"),
            tmp_path / "run", ("m", "b"), tracker=tracker)
    names = [c[0] for c in fake_mlflow]
    assert names[:3] == ["set_tracking_uri", "set_experiment", "start_run"]
    params = next(c[1][0] for c in fake_mlflow if c[0] == "log_params")
    assert params["train.epochs"] == "2" and params["strategy.name"] == "full"
    steps = [c[2]["step"] for c in fake_mlflow if c[0] == "log_metrics"]
    assert steps == [1, 2]
    assert any(c[0] == "log_artifact" and c[1][0].endswith("history.csv") for c in fake_mlflow)
    assert fake_mlflow[-1][0] == "end_run" and fake_mlflow[-1][2]["status"] == "FINISHED"


def test_missing_mlflow_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    from medvision.train.tracking import MLflowTracker

    with pytest.raises(ImportError, match=r"\[track\] extra"):
        MLflowTracker()
