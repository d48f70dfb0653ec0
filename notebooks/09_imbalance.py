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
# # Which remedy for class imbalance?
#
# Medical data sets are rarely balanced (the EDA chapter counts each class). Five remedies are trained
# with the same backbone, strategy and budget as plain cross-entropy — class-weighted cross-entropy, focal
# loss, a class-balanced sampler and label smoothing — and a sixth costs no training: **post-hoc logit
# adjustment** (Menon et al. 2021) subtracts `tau * log(training prior)` from the cross-entropy run's logits,
# with `tau` chosen on the validation split. Each run is selected on validation and scored once on test:
# balanced accuracy and macro-F1, the recall of the rarest classes, and the expected calibration error of the
# probabilities as trained, since a remedy may buy recall with calibration.

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
datasets: list = ["ham10000", "breastmnist"]  # several data sets (e.g. ham10000, with a plain cross-entropy base in per_dataset)
overrides: dict = {  # RunConfig overrides for every data set (configs/ schema)
    "data": {"size": 28},
    "experiment": {"backbone": "tf_efficientnet_lite0", "pretrained": "package", "image_size": 32, "augment": "flip"},
    "train": {"epochs": 3, "patience": 0},
    "strategy": {"phase1_epochs": 1},
}
per_dataset: dict = {  # more overrides per data set, same schema
    "ham10000": {"experiment": {"head_hidden": 0, "balanced_sampler": False, "batch_size": 64, "fallback": ""}, "train": {"loss": "ce", "scheduler": "cosine", "patience": 0}, "strategy": {"lr": 0.001, "phase1_epochs": 1}, "data": {"size": 32}},
    "breastmnist": {"train": {"epochs": 10}},
}
remedy_strategy: str = "last_k:2"  # the one strategy every remedy trains with
remedies: list = ["cross_entropy", "weighted_ce", "focal", "balanced_sampler", "label_smoothing"]  # trained remedies; logit adjustment is added from cross_entropy
seeds: list = [0, 1, 2]  # seeds per remedy
rare: list = []  # rare classes whose recall is shown (empty: the two with the fewest training images)
n_resamples: int = 200  # bootstrap resamples of each run's evaluation
runs_dir: str = ""  # run directories (empty: <repo>/runs/<profile>/imbalance)

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from medvision import plots
from medvision.book import evidence, pages
from medvision.data.leakage import collect_leakage
from medvision.train import sweeps

root = pages.runs_dir(profile, "imbalance", runs_dir)
with collect_leakage() as leaks:
    result = sweeps.sweep_datasets(
        datasets or [config], overrides, per_dataset, root=root, check=sweeps.check_plain_loss,
        make_sweep=lambda cfg: sweeps.Sweep("remedy", sweeps.remedies(remedies), seeds=tuple(seeds),
                                            strategies=(remedy_strategy,)))
display(pages.run_banner(profile, **result.banner_facts(), seeds=seeds))
display(Markdown(leaks.markdown() + "\n\n" + result.missing_markdown()))
scores = evidence.remedy_scores(result.rows, rare=rare, n_resamples=n_resamples)
means = evidence.remedy_means(scores)

# %% [markdown]
# ## Remedies side by side
#
# Mean over seeds with the 95% t-interval (one seed: no bar); left, balanced accuracy (higher is better);
# right, the expected calibration error of the probabilities as trained (lower is better).

# %% tags=["hide-input"]
plots.plot_panels_by_group(means, "dataset", plots.plot_remedies, ("test_balanced_accuracy", "test_ece"),
                           panel_height=0.45 * means["remedy"].nunique() + 1.5);

# %% [markdown]
# ## What the runs say

# %% tags=["hide-input"]
display(Markdown(evidence.describe_remedies(means)))

# %% [markdown]
# ## The numbers (rare-class recall per class; `tau` of each logit adjustment)

# %%
display(means.round(3))
scores.loc[scores["remedy"] == "logit_adjustment", ["dataset", "seed", "tau"]]
