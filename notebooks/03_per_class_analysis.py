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
# # Per-class analysis
#
# Accuracy hides the classes a model fails. This chapter takes one run of the training-strategies chapter
# (by default the one with the best *validation* macro-F1) and looks at every class on the test split:
# sensitivity, specificity, precision and F1 with bootstrap confidence intervals (small test sets make
# them wide), confusion matrices, ROC and precision-recall curves, the most confused pairs, and the
# most confident mistakes of the weakest class with Grad-CAM showing where the network looked.

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
config: str = "pneumoniamnist"  # whose runs to read: a configs/ system, a YAML path or a MedMNIST flag
overrides: dict = {  # RunConfig overrides (configs/ schema), as the training chapter had them
    "data": {"size": 28},
    "experiment": {"backbone": "tf_efficientnet_lite0", "pretrained": "package", "image_size": 64},
}
runs_dir: str = ""  # run directories (empty: <repo>/runs/<profile>/<configuration name>)
run: str = ""  # run to analyse (empty: best validation macro-F1)
n_resamples: int = 1000  # bootstrap resamples for the confidence intervals
n_mistakes: int = 8  # most confident mistakes to show
seed: int = 0  # bootstrap seed
external_data: str = ""  # also score the run on this labelled data set (folder / CSV / config; empty: none)
external_map: dict = {}  # its class names → the run's, e.g. {"NORMAL": "normal"} (unmapped: matched by name)

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from medvision import plots
from medvision.book import pages
from medvision.config import RunConfig
from medvision.evaluate import evaluation, external
from medvision.metrics import classification as metrics
from medvision.train import runner

run_config = RunConfig.load(config, [overrides])
out = pages.runs_dir(profile, run_config.label, runs_dir)
run_dir = out / run if run else evaluation.best_run(out)
ev = evaluation.evaluate_run(run_dir, n_resamples=n_resamples, seed=seed)
figures = evaluation.evaluation_figures(ev, names=["per_class", "confusion_matrix", "roc", "precision_recall"])
summary = runner.load_summary(run_dir)
pages.run_banner(profile, data=run_config.label, run=run_dir.name, backbone=summary["backbone"],
                weights=summary["weights"], test_cases=len(ev.test_targets), bootstrap=n_resamples, seed=seed)

# %% [markdown]
# ## Headline metrics with 95% confidence intervals
#
# Percentile bootstrap over the test cases (resampled with replacement), on the whole test split and on the
# test images that have no exact or near duplicate (nor a shared patient or lesion) in train or validation: a
# test image with a copy in train measures memory, not generalisation (the run's `leakage.json` lists them).

# %%
display(evaluation.whole_and_clean_test(ev).round(3))
display(Markdown(evaluation.describe_clean_test(ev)))
if run_config.reference:  # published (or a seed project's expected) results on this data set
    reference = evaluation.versus_reference(ev, run_config.reference)
    display(reference.round(3))
    display(Markdown(evaluation.describe_reference(reference, run_config.reference)))

# %% [markdown]
# ## Operating point (two-class tasks)
#
# The argmax calls a case positive when its probability passes 0.5, which is rarely the point a screening test
# wants. Thresholds chosen on validation (Youden's J, a fixed specificity, a published sensitivity), then applied
# to test, show what the same network does at other points of its ROC curve.

# %%
operating = evaluation.operating_table(ev, run_config.reference)
if not operating.empty:
    display(operating.round(3))
    display(Markdown(evaluation.describe_operating_points(
        operating, evaluation.binary_positive(ev, run_config.reference))))
elif len(ev.class_names) != 2:
    display(Markdown(f"This task has {len(ev.class_names)} classes: the argmax is its operating point."))
else:
    display(Markdown("The validation split lacks one of the two classes, so no threshold can be chosen on it."))

# %% [markdown]
# ## Per-class report

# %%
ev.per_class.round(3)

# %% tags=["hide-input"]
figures["per_class"]

# %% [markdown]
# ## Confusion matrices

# %%
figures["confusion_matrix"]

# %% [markdown]
# ## ROC and precision-recall curves (one class against the rest)

# %%
display(figures["roc"], figures["precision_recall"])

# %% [markdown]
# ## Where the model goes wrong

# %%
confused = metrics.most_confused(ev.test_targets, ev.test_logits.argmax(1), ev.class_names)
display(confused.round(3))
display(Markdown(metrics.describe_weakest(ev.per_class, ev.ci, confused)))

# %% [markdown]
# ### The most confident mistakes of the weakest class, with Grad-CAM
#
# Each tile shows a misclassified test image of the weakest class (by F1) with the Grad-CAM map of the
# class the model predicted, taken at the deepest feature stage of the backbone.

# %% tags=["hide-input"]
mistakes = evaluation.weakest_class_mistakes(ev, n=n_mistakes)
if mistakes is None:
    display(Markdown(f"No test image of {evaluation.weakest_class(ev)} was misclassified."))
else:
    fig, ax = plots.plot_image_grid(*mistakes, ncols=4)
    ax.set_title(f"most confident mistakes on {evaluation.weakest_class(ev)} (Grad-CAM of the predicted class)")

# %% [markdown]
# ## External validation
#
# Does the model hold on images from elsewhere — another hospital, device or public set? `medvision evaluate
# RUN --data FOLDER_OR_CSV_OR_CONFIG` scores the run on another labelled data set with the run's own
# preprocessing, class mapping and temperature, and checks the images against the ones the run trained and
# validated on (public sets are often re-packagings of one another). Its results appear here.

# %% tags=["hide-input"]
if external_data:
    external.evaluate_external(run_dir, external_data, external_map, n_resamples=n_resamples, seed=seed)
externals = external.load_externals(run_dir)
for name, saved in externals.items():
    display(Markdown(external.describe_external(name, saved)))
    display(external.external_table(saved).round(3))
if not externals:
    display(Markdown(f"No external validation of {run_dir.name} yet: run `medvision evaluate {run_dir} --data "
                     "<folder of class folders>`."))
