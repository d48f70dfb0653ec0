# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
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
profile: str = "default"  # profile that produced this page (the book runner sets it)
config: str = "pneumoniamnist"  # a configs/ system (ham10000), a YAML path or a MedMNIST flag
overrides: dict = {  # RunConfig overrides (configs/ schema)
    "data": {"size": 28},
    "experiment": {"backbone": "tf_efficientnet_lite0", "pretrained": "package", "image_size": 64, "augment": "flip"},
    "train": {"epochs": 3},
    "strategy": {"phase1_epochs": 1},
    "strategies": ["head_only", "last_k:2", "full", "two_phase"],
}
scratch: bool = True  # also train the backbone from random initialisation ("full")
max_train_samples: int = 0  # subsample the training split (0: all) — smoke runs only
lr_find_steps: int = 40  # steps of the learning-rate range test (0: skip)
runs_dir: str = ""  # where run directories go (empty: <repo>/runs/<profile>/<configuration name>)

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from medvision import plots
from medvision.book import pages, report
from medvision.config import RunConfig
from medvision.data.leakage import collect_leakage
from medvision.data.pipeline import load_cached_split
from medvision.train import runner
from medvision.train.lr_finder import lr_find

run_config = RunConfig.load(config, [overrides, {"train": {"progress": False}}])
exp, seed = run_config.experiment, run_config.train.seed
cache = load_cached_split(run_config.data, max_train_samples, seed=seed)
table = cache.table
out = pages.runs_dir(profile, run_config.label, runs_dir)
pages.run_banner(profile, data=table.name, train_images=table.split_sizes().get("train", 0),
                 backbone=exp.backbone, input=f"{exp.image_size}px", epochs=run_config.train.epochs, seed=seed)

# %% [markdown]
# ## Choosing a learning rate
#
# A learning-rate range test (fastai's `lr_find`) on a copy of the pretrained model, fine-tuning everything:
# the loss against an exponentially growing learning rate. The suggestion is where the smoothed loss falls
# fastest.

# %%
if lr_find_steps:
    model, used, _ = runner.build_model(exp, table.num_classes)  # the offline fallback where configured
    display(Markdown(f"Weights: {model.weights_source}"))
    loader = runner.make_loaders(cache, model, used, seed)["train"]
    finder = lr_find(model, loader, run_config.strategy_for("full"), num_steps=lr_find_steps)
    fig, ax = plots.plot_lr_find(finder)
    ax.set_title(f"{used.backbone}: learning-rate range test (full fine-tune)")

# %% [markdown]
# ## Training every strategy

# %%
with collect_leakage() as leaks:  # the split's leakage audit, shown once below
    summaries = runner.run_strategies(cache, run_config, out, scratch=scratch)
run_dirs = [out / s["run"] for s in summaries]
comparison = runner.compare_runs(run_dirs)
comparison.round(3)

# %% [markdown]
# `val_*` are the best epoch's validation scores (used for selection), `test_*` the single test evaluation
# of that checkpoint. `s_per_epoch` is training wall time per epoch; the head-only run trains on cached
# features, its one-off feature extraction is not included.

# %%
display(Markdown(report.describe_comparison(comparison)))
display(Markdown(leaks.markdown()))
display(Markdown(report.describe_weights(summaries)))

# %% [markdown]
# ## Learning curves

# %% tags=["hide-input"]
fig, axes = plots.plot_learning_curve_panels({d.name: runner.load_history(d) for d in run_dirs},
                                             ("train_loss", "val_loss", "val_macro_f1"))

# %% [markdown]
# ## Test metrics by strategy

# %%
fig, ax = plots.plot_strategy_comparison(comparison)
ax.set_title(f"{table.name}: test metrics of the best-on-validation checkpoint");
