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
# # What does input resolution buy?
#
# The same strategy, budget and seeds at several model input sizes. MedMNIST's 28 px files are upsampled on
# the fly (above 28 px they add no detail, only more pixels for the backbone); larger source images (the
# HAM10000 dermoscopy files) are decoded at each size. The seconds per
# training epoch stand beside the scores: the *knee* is the smallest input whose mean score reaches the lower
# end of the best size's 95% seed interval, past which a larger input costs time and buys nothing beyond
# seed noise.

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
profile: str = "evidence"  # profile that produced this page (the book runner sets it)
config: str = "pneumoniamnist"  # the data set when `datasets` is empty (MedMNIST flag or configs/ system)
datasets: list = ["pneumoniamnist", "ham10000"]  # several data sets (MedMNIST flags or configs/ systems such as ham10000)
overrides: dict = {  # RunConfig overrides for every data set (configs/ schema); `strategies` are trained at every size
    "data": {"size": 28},
    "experiment": {"backbone": "tf_efficientnet_lite0", "pretrained": "package", "image_size": 32, "augment": "flip"},
    "train": {"epochs": 3, "patience": 0},
    "strategy": {"phase1_epochs": 1},
    "strategies": ["last_k:2"],
}
per_dataset: dict = {  # more overrides per data set, same schema
    "ham10000": {"experiment": {"head_hidden": 0, "balanced_sampler": False, "batch_size": 64, "fallback": ""}, "train": {"loss": "weighted_ce", "scheduler": "cosine", "patience": 0}, "strategy": {"lr": 0.001, "phase1_epochs": 1}},
}
sizes: list = [32, 64, 96, 128]  # model input sizes (px)
seeds: list = [0, 1, 2]  # seeds per size x strategy
max_train_samples: int = 1200  # training images per seed, stratified (0: all)
runs_dir: str = ""  # run directories (empty: <repo>/runs/<profile>/resolution)

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from medvision import plots
from medvision.book import evidence, pages
from medvision.data.leakage import collect_leakage
from medvision.train import sweeps

root = pages.runs_dir(profile, "resolution", runs_dir)
with collect_leakage() as leaks:
    result = sweeps.sweep_datasets(
        datasets or [config], overrides, per_dataset, root=root,
        make_sweep=lambda cfg: sweeps.Sweep(
            "input_px", sweeps.resolutions(sizes, decode_at_size=cfg.data.source != "medmnist",
                                           max_train_samples=max_train_samples),
            seeds=tuple(seeds)))
display(pages.run_banner(profile, **result.banner_facts(), sizes=sizes, seeds=seeds,
                         **{"training images": max_train_samples or "all"}))
display(Markdown(leaks.markdown() + "\n\n" + result.missing_markdown()))
metrics = ["test_macro_f1", "test_auroc"]
means = evidence.seed_means(result.rows, ["dataset", "input_px", "strategy"], metrics)

# %% [markdown]
# ## Score and cost against input size

# %% tags=["hide-input"]
plots.plot_panels_by_group(means, "strategy", plots.plot_resolution, metrics, title="strategy: {}");

# %% [markdown]
# ## What the runs say

# %% tags=["hide-input"]
display(Markdown(evidence.describe_resolution_by_strategy(means, metrics)))

# %% [markdown]
# ## The numbers

# %%
means.round(3)
