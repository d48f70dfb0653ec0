import dataclasses
import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from medvision.config import StrategyConfig, TrainConfig
from medvision.data import TensorLoader, build_tensor_cache, load_medmnist
from medvision.data.splits import stratified_subsample
from medvision.models.backbones import create_model
from medvision.models.checkpoints import CheckpointError, load_checkpoint, save_atomic
from medvision.train import loop as training
from medvision.train.loop import (
    CachedHead,
    RunConfigMismatchError,
    TrainingDivergedError,
    extract_features,
    fit,
    make_scheduler,
)

FAST = TrainConfig(epochs=4, patience=0, progress=False, scheduler="cosine", seed=1)


@pytest.fixture(scope="module")
def small(shared_data):
    table = stratified_subsample(load_medmnist("breastmnist", root=shared_data), 96, seed=0)
    cache = build_tensor_cache(table, 28, progress=False)
    return cache


def loaders(cache, augment=None, seed=0):
    from medvision.config import AugmentConfig

    x, y = cache.split("train")
    vx, vy = cache.split("val")
    mean = std = (0.5, 0.5, 0.5)
    train = TensorLoader(x, y, mean, std, batch_size=32, shuffle=True,
                         augment=augment if augment is not None else AugmentConfig(), seed=seed)
    return train, TensorLoader(vx, vy, mean, std, batch_size=64)


def model_for(seed=0, name="test_efficientnet"):
    torch.manual_seed(seed)
    return create_model(name, 2, pretrained="none", drop_rate=0.1)


def test_fit_writes_a_complete_run_directory(small, tmp_path):
    tr, va = loaders(small)
    result = fit(model_for(), tr, va, FAST, StrategyConfig("full", lr=1e-3), tmp_path / "run",
                 ("malignant", "benign"))
    run = tmp_path / "run"
    for name in ("config.yaml", "history.csv", "best.pt", "last.pt", "classes.json"):
        assert (run / name).is_file(), name
    history = pd.read_csv(run / "history.csv")
    assert len(history) == 4 and {"train_loss", "val_macro_f1", "val_auroc", "seconds"} <= set(history)
    best = load_checkpoint(run / "best.pt")
    assert best["epoch"] + 1 == result.best_epoch
    assert result.best_metrics["macro_f1"] == pytest.approx(history["val_macro_f1"].max())
    assert not list(run.glob(".*tmp"))


def _interrupt_at(monkeypatch, epoch_index):
    real = training.train_one_epoch
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        if calls["n"] == epoch_index:
            raise KeyboardInterrupt("simulated interruption")
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_one_epoch", flaky)


@pytest.mark.parametrize("strategy,ema,mixup", [(StrategyConfig("full", lr=1e-3), 0.0, 0.0),
                                                (StrategyConfig("two_phase", lr=1e-3, phase1_epochs=2, k=1), 0.0, 0.0),
                                                (StrategyConfig("full", lr=1e-3), 0.99, 0.0),
                                                (StrategyConfig("full", lr=1e-3), 0.0, 0.4)])
def test_resume_reproduces_the_uninterrupted_run(small, tmp_path, monkeypatch, strategy, ema, mixup):
    cfg = dataclasses.replace(FAST, ema_decay=ema, mixup=mixup)
    tr, va = loaders(small)
    full = fit(model_for(), tr, va, cfg, strategy, tmp_path / "a", ("m", "b"))
    _interrupt_at(monkeypatch, 3 if strategy.name == "full" else 2)
    with pytest.raises(KeyboardInterrupt):
        fit(model_for(), *loaders(small), cfg, strategy, tmp_path / "b", ("m", "b"))
    monkeypatch.undo()
    assert len(pd.read_csv(tmp_path / "b" / "history.csv")) < 4
    resumed = fit(model_for(), *loaders(small), cfg, strategy, tmp_path / "b", ("m", "b"), resume=True)
    assert 0 < resumed.extra["epochs_trained"] < full.extra["epochs_trained"] == cfg.epochs
    cols = [c for c in full.history if c != "seconds"]
    pd.testing.assert_frame_equal(full.history[cols], resumed.history[cols])
    assert resumed.best_metrics == full.best_metrics


def test_resume_refuses_a_different_config(small, tmp_path):
    tr, va = loaders(small)
    fit(model_for(), tr, va, dataclasses.replace(FAST, epochs=1), StrategyConfig("full"), tmp_path, ("m", "b"))
    with pytest.raises(RunConfigMismatchError, match="different configuration"):
        fit(model_for(), tr, va, dataclasses.replace(FAST, epochs=1, seed=7), StrategyConfig("full"), tmp_path,
            ("m", "b"), resume=True)


def test_resume_accepts_the_same_data_file_elsewhere_but_not_other_data(small, tmp_path, monkeypatch):
    cfg = dataclasses.replace(FAST, epochs=1)
    data = {"name": "breastmnist_28", "md5": "750601b1f35ba3300ea97c75c52ff8f6", "file": "/repo/data/b.npz"}
    tr, va = loaders(small)
    fit(model_for(), tr, va, cfg, StrategyConfig("full"), tmp_path, ("m", "b"), extra_config={"data": data})
    moved = {**data, "file": "/shared/data/medmnist/breastmnist.npz"}  # the same file under $MEDVISION_DATA
    monkeypatch.setattr(training, "train_one_epoch", lambda *a, **k: pytest.fail("a finished run trained again"))
    again = fit(model_for(), tr, va, cfg, StrategyConfig("full"), tmp_path, ("m", "b"), resume=True,
                extra_config={"data": moved})
    assert len(again.history) == 1  # resumed the finished run
    with pytest.raises(RunConfigMismatchError, match="different configuration"):
        fit(model_for(), tr, va, cfg, StrategyConfig("full"), tmp_path, ("m", "b"), resume=True,
            extra_config={"data": {**moved, "md5": "0" * 32}})


def test_two_phase_rebuilds_the_optimizer(small, tmp_path, monkeypatch):
    built = []
    real = training.make_optimizer

    def spy(groups):
        built.append(sum(p.numel() for g in groups for p in g["params"]))
        return real(groups)

    monkeypatch.setattr(training, "make_optimizer", spy)
    tr, va = loaders(small)
    fit(model_for(), tr, va, dataclasses.replace(FAST, epochs=3), StrategyConfig("two_phase", phase1_epochs=1, k=1),
        tmp_path, ("m", "b"))
    assert len(built) == 2 and built[1] > built[0]


def test_nan_loss_stops_cleanly_and_keeps_the_last_good_checkpoint(small, tmp_path, monkeypatch):
    real = training.make_loss
    state = {"batches": 0}

    def poisoned(*args, **kwargs):
        loss = real(*args, **kwargs)

        def forward(logits, y):
            state["batches"] += 1
            value = loss(logits, y)
            return value * float("nan") if state["batches"] > 3 else value  # epoch 2 of 3 batches

        return forward

    monkeypatch.setattr(training, "make_loss", lambda *a, **k: _Wrap(poisoned(*a, **k)))
    tr, va = loaders(small)
    with pytest.raises(TrainingDivergedError, match="loss became nan"):
        fit(model_for(), tr, va, FAST, StrategyConfig("full"), tmp_path, ("m", "b"))
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 0 and all(torch.isfinite(v).all() for v in last["model"].values()
                                      if v.is_floating_point())


class _Wrap(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, logits, y):
        return self.fn(logits, y)


def test_unwritable_run_dir_fails_before_training(small, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    tr, va = loaders(small)
    with pytest.raises(OSError, match="nothing was trained"):
        fit(model_for(), tr, va, FAST, StrategyConfig("full"), blocker / "run", ("m", "b"))


def test_atomic_save_survives_a_crash_mid_save(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic({"model": {"w": torch.ones(3)}}, path)

    def crash(obj, fh):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_atomic({"model": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert list(tmp_path.iterdir()) == [path]


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/medvision-pwned",))


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"model": _Exploit()}, fh)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(path)
    assert not os.path.exists("/tmp/medvision-pwned")
    (tmp_path / "trunc.pt").write_bytes(b"PK\x03\x04broken")
    with pytest.raises(CheckpointError, match="trunc.pt"):
        load_checkpoint(tmp_path / "trunc.pt")


def test_cached_head_gives_the_same_logits_as_the_full_forward(small):
    model = model_for().eval()
    _, va = loaders(small)
    feats, labels = extract_features(model, va)
    head = CachedHead(model).eval()
    x = torch.cat([x for x, _ in va])
    with torch.no_grad():
        assert torch.allclose(head(feats[0]), model(x), atol=1e-5)
    flipped, _ = extract_features(model, va, flips=True)
    assert flipped.shape[0] == 2 and torch.allclose(flipped[0], feats[0])


def test_head_only_uses_cached_features_only_without_heavy_augmentation(small, tmp_path):
    from medvision.config import AugmentConfig

    flips = AugmentConfig(hflip=0.5, degrees=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0)
    cfg = dataclasses.replace(FAST, epochs=2)
    cached = fit(model_for(), *loaders(small, flips), cfg, StrategyConfig("head_only", lr=1e-2), tmp_path / "a", ())
    head = model_for().get_classifier()
    assert cached.cached_features and cached.trainable_params == sum(p.numel() for p in head.parameters())
    slow = fit(model_for(), *loaders(small), cfg, StrategyConfig("head_only", lr=1e-2), tmp_path / "b", ())
    assert not slow.cached_features


@pytest.mark.parametrize("name", ["cosine", "cosine_restarts", "onecycle", "plateau", "none"])
def test_schedulers(name):
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    sched, per_batch = make_scheduler(name, opt, epochs=3, steps_per_epoch=4)
    assert (sched is None) == (name == "none")
    assert per_batch == (name in {"cosine", "cosine_restarts", "onecycle"})
    with pytest.raises(ValueError, match="unknown scheduler"):
        make_scheduler("linear", opt, 3, 4)


def test_seeded_fit_is_deterministic(small, tmp_path):
    cfg = dataclasses.replace(FAST, epochs=2)
    a = fit(model_for(), *loaders(small), cfg, StrategyConfig("full"), tmp_path / "a", ())
    b = fit(model_for(), *loaders(small), cfg, StrategyConfig("full"), tmp_path / "b", ())
    assert np.allclose(a.history["train_loss"], b.history["train_loss"])


def test_early_stopping_and_resuming_a_finished_run(small, tmp_path, monkeypatch):
    cfg = dataclasses.replace(FAST, epochs=6, patience=1, monitor="loss", scheduler="none")
    monkeypatch.setattr(training, "evaluate", lambda *a, **k: {"loss": 1.0, "accuracy": 0.5,
                                                                "balanced_accuracy": 0.5, "macro_f1": 0.5,
                                                                "auroc": 0.5})
    tr, va = loaders(small)
    first = fit(model_for(), tr, va, cfg, StrategyConfig("full"), tmp_path, ("m", "b"))
    assert len(first.history) == 2 and first.best_epoch == 1  # no improvement after epoch 1: stop
    monkeypatch.setattr(training, "train_one_epoch", lambda *a, **k: pytest.fail("a finished run trained again"))
    again = fit(model_for(), tr, va, cfg, StrategyConfig("full"), tmp_path, ("m", "b"), resume=True)
    assert len(again.history) == 2 and again.best_epoch == 1
    assert (first.extra["epochs_trained"], again.extra["epochs_trained"]) == (2, 0)  # the book's "reused"


def test_weight_average_is_scored_selected_and_returned(small, tmp_path):
    cfg = dataclasses.replace(FAST, epochs=3, ema_decay=0.9)
    tr, va = loaders(small)
    model = model_for()
    result = fit(model, tr, va, cfg, StrategyConfig("full", lr=3e-3), tmp_path, ("m", "b"))
    last, best = load_checkpoint(tmp_path / "last.pt"), load_checkpoint(tmp_path / "best.pt")
    assert last["ema"]["steps"] == 3 * len(tr)  # one update per optimizer step
    raw, averaged = model_for(), model_for()
    raw.load_state_dict(last["model"])
    averaged.load_state_dict(last["ema"]["model"])
    weight = "classifier.weight"
    assert not torch.allclose(raw.state_dict()[weight], averaged.state_dict()[weight])
    # validation scored the averaged weights, not the raw ones
    scored = training.evaluate(averaged, va, torch.device("cpu"))
    assert scored["loss"] == pytest.approx(result.history["val_loss"].iloc[-1], rel=1e-5)
    assert training.evaluate(raw, va, torch.device("cpu"))["loss"] != pytest.approx(scored["loss"], rel=1e-5)
    # best.pt and the returned model hold the averaged weights of the best epoch
    best_epoch_ema = best["model"]
    assert all(torch.equal(v, best_epoch_ema[k]) for k, v in model.state_dict().items())
    if result.best_epoch == 3:
        assert all(torch.equal(v, last["ema"]["model"][k]) for k, v in best_epoch_ema.items())


def test_weight_average_with_cached_head_features(small, tmp_path):
    from medvision.config import AugmentConfig

    flips = AugmentConfig(hflip=0.5, degrees=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0)
    cfg = dataclasses.replace(FAST, epochs=2, ema_decay=0.9)
    result = fit(model_for(), *loaders(small, flips), cfg, StrategyConfig("head_only", lr=1e-2), tmp_path, ())
    assert result.cached_features
    last = load_checkpoint(tmp_path / "last.pt")
    frozen = "conv_stem.weight"
    assert torch.equal(last["ema"]["model"][frozen], last["model"][frozen])  # the frozen backbone is not blurred


def test_mixup_blends_each_batch_and_its_loss_with_one_beta_draw():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, y = torch.randn(8, 3, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # the weights stay put: the loss can be recomputed
    torch.manual_seed(7)
    stats = training.train_one_epoch(model, [(x, y)], criterion, optimizer, torch.device("cpu"), progress=False,
                                     mixup=0.4)
    torch.manual_seed(7)  # the same draws, in the same order, from torch's global generator
    lam = float(torch.distributions.Beta(0.4, 0.4).sample())
    perm = torch.randperm(8)
    with torch.no_grad():
        logits = model(x * lam + x[perm] * (1 - lam))
        expected = lam * criterion(logits, y) + (1 - lam) * criterion(logits, y[perm])
    assert 0 < lam < 1 and not torch.equal(perm, torch.arange(8))
    assert stats["loss"] == pytest.approx(expected.item(), rel=1e-6)
    plain = training.train_one_epoch(model, [(x, y)], criterion, optimizer, torch.device("cpu"), progress=False)
    assert plain["loss"] == pytest.approx(criterion(model(x), y).item(), rel=1e-6)


def test_mixup_trains_head_only_on_images_not_cached_features(small, tmp_path):
    from medvision.config import AugmentConfig

    flips = AugmentConfig(hflip=0.5, degrees=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0)
    cfg = dataclasses.replace(FAST, epochs=1, mixup=0.2)
    result = fit(model_for(), *loaders(small, flips), cfg, StrategyConfig("head_only", lr=1e-2), tmp_path, ())
    assert not result.cached_features  # mixing images is not mixing their features
    with pytest.raises(ValueError, match="mixup"):
        TrainConfig(mixup=-0.1)


def test_weight_average_rejects_a_decay_outside_zero_one():
    with pytest.raises(ValueError, match="ema_decay"):
        training.WeightAverage(torch.nn.Linear(2, 2), 1.0)


def test_a_run_recorded_before_a_new_setting_existed_still_resumes_and_compares(small, tmp_path):
    import yaml

    from medvision.evaluate.evaluation import comparable_settings

    cfg = dataclasses.replace(FAST, epochs=2)
    tr, va = loaders(small)
    fit(model_for(), tr, va, cfg, StrategyConfig("full"), tmp_path / "old", ("m", "b"))
    path = tmp_path / "old" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    del config["train"]["ema_decay"]  # as written by a medvision without the setting
    path.write_text(yaml.safe_dump(config))
    fit(model_for(), tr, va, cfg, StrategyConfig("full"), tmp_path / "new", ("m", "b"))
    assert comparable_settings(tmp_path / "old") == comparable_settings(tmp_path / "new")
    resumed = fit(model_for(), tr, va, cfg, StrategyConfig("full"), tmp_path / "old", ("m", "b"), resume=True)
    assert len(resumed.history) == 2
    with pytest.raises(RunConfigMismatchError):  # a non-default value still differs
        fit(model_for(), tr, va, dataclasses.replace(cfg, ema_decay=0.9), StrategyConfig("full"),
            tmp_path / "old", ("m", "b"), resume=True)


def test_resume_restores_every_random_generator_it_saves(small, tmp_path, monkeypatch):
    import random

    cfg = dataclasses.replace(FAST, epochs=3)
    random.seed(5), np.random.seed(5)
    fit(model_for(), *loaders(small), cfg, StrategyConfig("full"), tmp_path / "a", ("m", "b"))
    expected = random.random(), np.random.rand()
    random.seed(5), np.random.seed(5)
    _interrupt_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        fit(model_for(), *loaders(small), cfg, StrategyConfig("full"), tmp_path / "b", ("m", "b"))
    monkeypatch.undo()
    random.seed(99), np.random.seed(99)  # another process, other states: resume puts the saved ones back
    fit(model_for(), *loaders(small), cfg, StrategyConfig("full"), tmp_path / "b", ("m", "b"), resume=True)
    assert (random.random(), np.random.rand()) == expected


def test_phases_come_from_the_strategy():
    two = StrategyConfig("two_phase", phase1_epochs=2)
    assert [(p.index, p.start, p.end, p.schedule_epochs) for p in two.phases(5)] == [(0, 0, 2, 2), (1, 2, 5, 3)]
    assert [(p.index, p.start, p.end, p.schedule_epochs) for p in two.phases(2)] == [(0, 0, 2, 2)]
    assert [(p.index, p.end, p.schedule_epochs) for p in two.phases(1)] == [(0, 1, 2)]  # ends inside phase 0
    assert [(p.index, p.start, p.end) for p in StrategyConfig("full").phases(4)] == [(0, 0, 4)]
    assert StrategyConfig("head_only").head_only and not two.head_only


@pytest.mark.parametrize("name", ["cosine", "cosine_restarts", "none"])
def test_linear_warmup_then_the_schedule(name):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=1.0)
    sched, per_batch = make_scheduler(name, opt, epochs=3, steps_per_epoch=4, warmup_epochs=1)
    assert per_batch
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.01) and lrs[:5] == sorted(lrs[:5]) and lrs[4] == pytest.approx(1.0)
    if name == "cosine":
        assert lrs[5:] == sorted(lrs[5:], reverse=True) and lrs[-1] < 0.1
    with pytest.raises(ValueError, match="warm-up does not combine"):
        make_scheduler("onecycle", opt, 3, 4, warmup_epochs=1)
    with pytest.raises(ValueError, match="warmup_epochs"):
        TrainConfig(warmup_epochs=-1)


def test_the_loop_knows_no_strategy_names_and_fit_stays_short():
    """fit runs the phases a strategy yields (StrategyConfig.phases): no strategy name appears in the loop."""
    import ast
    import inspect

    from medvision.train import loop as training
    from medvision.train.strategies import STRATEGIES

    tree = ast.parse(inspect.getsource(training))
    loop = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)
            and n.name in ("fit", "_Run", "_EpochData", "train_one_epoch", "TrainState")]
    assert len(loop) == 5
    for node in loop:
        names = {c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
        assert not names & set(STRATEGIES), (node.name, names & set(STRATEGIES))
        assert not [a for a in ast.walk(node) if isinstance(a, ast.Attribute) and a.attr == "name"
                    and isinstance(a.value, ast.Name) and a.value.id == "strategy"], node.name
    fit = next(n for n in loop if n.name == "fit")
    assert fit.end_lineno - fit.lineno + 1 <= 60


def test_balanced_batches_get_a_loss_without_class_weights(tmp_path):
    """A class-balanced sampler already evens the classes out; weighting the loss as well would push the model
    towards the rare classes (HAM10000's focal loss with its balanced sampler predicted almost no nevus)."""
    import numpy as np

    from medvision.config import StrategyConfig, TrainConfig
    from medvision.train.loop import _Run
    from medvision.train.run_dir import RunDirectory

    labels = np.array([0] * 90 + [1] * 10)
    for loss in ("weighted_ce", "focal"):
        cfg = TrainConfig(loss=loss, progress=False)
        plain = _Run.start(model_for(), cfg, StrategyConfig("full"), RunDirectory(tmp_path / f"a-{loss}"),
                           ("a", "b"), labels, {}, False, None)
        balanced = _Run.start(model_for(), cfg, StrategyConfig("full"), RunDirectory(tmp_path / f"b-{loss}"),
                              ("a", "b"), labels, {}, False, None, balanced=True)
        assert plain.criterion.weight[1] > 5 * plain.criterion.weight[0]
        assert torch.equal(balanced.criterion.weight, torch.ones(2))
