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
# # How many labels do I need?
#
# A small medical data set raises the first practical question: with *n* labelled images per class, which
# way of adapting an ImageNet backbone works best — train the new head alone, the last blocks with it, or
# everything? Each strategy here is trained on stratified label budgets of the training split (a fresh draw
# per seed, so the spread over seeds includes which images were labelled), selected on the **whole**
# validation split and scored once on the whole test split. Small budgets train for at least a fixed number
# of optimizer steps, so a 20-image run is not judged after a single step. Chapter 05's logistic regression
# on frozen features is fitted on the same images. The sentences under the figure are computed from the
# runs: they name the winner at each budget and the crossover where fine-tuning overtakes head-only.

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
config: str = "pneumoniamnist"  # the data set swept when `datasets` is empty (MedMNIST flag or configs/ system)
datasets: list = ["pneumoniamnist", "ham10000"]  # several data sets (MedMNIST flags or configs/ systems such as ham10000)
overrides: dict = {  # RunConfig overrides for every data set (configs/ schema); `strategies` are trained at every budget
    "data": {"size": 28},
    "experiment": {"backbone": "tf_efficientnet_lite0", "pretrained": "package", "image_size": 32, "augment": "flip"},
    "train": {"epochs": 2, "patience": 0},
    "strategy": {"phase1_epochs": 1},
    "strategies": ["head_only", "last_k:2", "full", "two_phase"],
}
per_dataset: dict = {  # more overrides per data set, same schema
    "ham10000": {"experiment": {"head_hidden": 0, "balanced_sampler": False, "batch_size": 64, "fallback": ""}, "train": {"loss": "weighted_ce", "scheduler": "cosine", "patience": 0}, "strategy": {"lr": 0.001, "phase1_epochs": 1}, "data": {"size": 32}},
}
per_class: list = [10, 25, 50, 100, 250, 0]  # label budgets: training images per class (0: the whole training split)
seeds: list = [0, 1, 2]  # seeds per budget x strategy (each draws its own labelled images)
min_steps: int = 20  # small budgets train for at least this many optimizer steps
max_epochs: int = 10  # cap on those epochs (0: none)
features_baseline: bool = True  # also fit logistic regression on frozen backbone features
runs_dir: str = ""  # run directories (empty: <repo>/runs/<profile>/label_budget)

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from medvision import plots
from medvision.book import evidence, pages
from medvision.data.leakage import collect_leakage
from medvision.train import sweeps

root = pages.runs_dir(profile, "label_budget", runs_dir)
with collect_leakage() as leaks:
    result = sweeps.sweep_datasets(
        datasets or [config], overrides, per_dataset, root=root,
        make_sweep=lambda cfg: sweeps.Sweep("per_class", sweeps.label_budgets(per_class), seeds=tuple(seeds),
                                            min_steps=min_steps,
                                            max_epochs=max_epochs, features_baseline=features_baseline))
display(pages.run_banner(profile, **result.banner_facts(), seeds=seeds, budgets=per_class,
                         small_budgets=f"at least {min_steps} steps, at most {max_epochs or 'any'} epochs"))
display(Markdown(leaks.markdown() + "\n\n" + result.missing_markdown()))
metrics = ["test_macro_f1", "test_auroc", "val_macro_f1"]
means = evidence.seed_means(result.rows, ["dataset", "per_class", "strategy"], metrics)

# %% [markdown]
# ## Label-budget curves
#
# Mean test macro-F1 and AUROC over seeds against the number of labelled training images, with the 95%
# t-interval over seeds shaded (one seed: no band).

# %% tags=["hide-input"]
plots.plot_panels_by_group(means, "dataset", plots.plot_label_budget, ("test_macro_f1", "test_auroc"));

# %% [markdown]
# ## What the curves say

# %% tags=["hide-input"]
display(Markdown(evidence.describe_label_budget(means, "test_macro_f1")))

# %% [markdown]
# ## The numbers

# %%
means.round(3)
