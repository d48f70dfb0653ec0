# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python (medvision)
#     language: python
#     name: medvision
# ---

# %% [markdown]
# # Training strategies
#
# How much of an ImageNet backbone should we retrain on a small medical data set? This chapter trains the
# same pretrained backbone with several strategies and compares them on the same split:
#
# - **head only** — the backbone is a frozen feature extractor; only the classifier learns (its features
#   are computed once and cached, so each epoch costs almost nothing);
# - **last k blocks + head** — the last `k` stages (timm's layer groups) adapt at a lower learning rate;
# - **full fine-tune** — everything trains at one learning rate;
# - **two-phase** — head only first, then the last blocks too at a lower rate (fastai's `fine_tune`);
# - a **from-scratch** run of the same backbone (random initialisation), to show what pretraining buys.
#
# Models are selected on the validation split; the test split is scored once, at the end, from the
# best-on-validation checkpoint. Every run writes a run directory that the per-class and calibration
# chapters read.

# %% tags=["install", "nbval-skip", "remove-cell"]
# Colab or a fresh Jupyter: install medvision if it is missing (a no-op where it is installed; skipped by the book runner and nbval).
import importlib.util, pathlib, subprocess, sys  # noqa: E401, I001
REPOSITORY = ""  # [project.urls] Repository of pyproject.toml (written by `make sync`)
if importlib.util.find_spec("medvision") is None:
    here = pathlib.Path.cwd().resolve()
    clone = next((p for p in (here, *here.parents) if (p / "pyproject.toml").is_file() and (p / "medvision" / "__init__.py").is_file()), None)
    if clone is None and not REPOSITORY:
        raise RuntimeError("medvision is not installed and this notebook is not inside a medvision clone: clone the repository, then open the chapter from its notebooks/ folder (README: Opening a chapter)")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "-e", str(clone)] if clone else [sys.executable, "-m", "pip", "install", "-q", f"medvision @ git+{REPOSITORY}"])

# %% tags=["parameters"]
profile: str = "smoke"  # profile that produced this page (the book runner sets it)
config: str = "pneumoniamnist"  # a configs/ system (ham10000), a YAML path or a MedMNIST flag
overrides: dict = {"experiment": {"image_size": 32}, "train": {"epochs": 2}, "strategy": {"phase1_epochs": 1}, "strategies": ["head_only", "last_k:2", "full", "two_phase"]}  # RunConfig overrides (configs/ schema)
scratch: bool = True  # also train the backbone from random initialisation ("full")
max_train_samples: int = 400  # subsample the training split (0: all) — smoke runs only
lr_find_steps: int = 20  # steps of the learning-rate range test (0: skip)
runs_dir: str = ""  # where run directories go (empty: <repo>/runs/<profile>/<configuration name>)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from medvision import book, experiment, plots
from medvision.data import build_tensor_cache, load_data
from medvision.data.splits import stratified_subsample
from medvision.lr_finder import lr_find
from medvision.run_config import RunConfig

run_config = RunConfig.load(config, [overrides, {"train": {"progress": False}}])
exp, seed = run_config.experiment, run_config.train.seed
table = stratified_subsample(load_data(run_config.data), max_train_samples, seed=seed)
cache = build_tensor_cache(table, run_config.data.size, resize=run_config.data.resize, progress=False)
out = book.runs_dir(profile, run_config.label, runs_dir)
book.run_banner(profile, data=table.name, train_images=int((table.frame["split"] == "train").sum()),
                backbone=exp.backbone, input=f"{exp.image_size}px", epochs=run_config.train.epochs, seed=seed)

# %% [markdown]
# ## Choosing a learning rate
#
# A learning-rate range test (fastai's `lr_find`) on a copy of the pretrained model, fine-tuning everything:
# the loss against an exponentially growing learning rate. The suggestion is where the smoothed loss falls
# fastest.

# %%
if lr_find_steps:
    model, used, _ = experiment.build_model(exp, table.num_classes)  # the offline fallback where configured
    display(Markdown(f"Weights: {model.weights_source}"))
    loader = experiment.make_loaders(cache, model, used, seed)["train"]
    finder = lr_find(model, loader, run_config.strategy_for("full"), num_steps=lr_find_steps)
    fig, ax = plots.plot_lr_find(finder)
    ax.set_title(f"{used.backbone}: learning-rate range test (full fine-tune)")

# %% [markdown]
# ## Training every strategy

# %%
specs = [(s, run_config) for s in run_config.strategies]
if scratch:
    specs.append(("full", run_config.override({"experiment": {"pretrained": "none"}})))
with experiment.collect_leakage() as leaks:  # the split's leakage audit, shown once below
    summaries = [experiment.run_strategy(cache, spec, c, out) for spec, c in specs]
run_dirs = [out / s["run"] for s in summaries]
comparison = experiment.compare_runs(run_dirs)
comparison.round(3)

# %% [markdown]
# `val_*` are the best epoch's validation scores (used for selection), `test_*` the single test evaluation
# of that checkpoint. `s_per_epoch` is training wall time per epoch; the head-only run trains on cached
# features, its one-off feature extraction is not included.

# %%
display(Markdown(experiment.describe_comparison(comparison)))
display(Markdown(leaks.markdown()))
display(Markdown(experiment.describe_weights(summaries)))

# %% [markdown]
# ## Learning curves

# %% tags=["hide-input"]
histories = {d.name: experiment.load_history(d) for d in run_dirs}
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
for metric, ax in zip(["train_loss", "val_loss", "val_macro_f1"], axes, strict=True):
    plots.plot_learning_curves(histories, metric, ax=ax)

# %% [markdown]
# ## Test metrics by strategy

# %%
fig, ax = plots.plot_strategy_comparison(comparison)
ax.set_title(f"{table.name}: test metrics of the best-on-validation checkpoint");
