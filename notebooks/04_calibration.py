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
# # Calibration
#
# A model that says "95% pneumonia" should be right about 95% of the time it says so. This chapter measures
# how far the confidence of each trained strategy can be trusted — expected and maximum calibration error
# (ECE with equal-width and equal-mass bins, MCE), Brier score and negative log-likelihood — fits a
# **temperature** on the validation split only (Guo et al. 2017) and re-measures on test, and shows how
# accuracy rises when the model may abstain on its least confident cases (risk-coverage).

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
run: str = ""  # run for the detailed diagrams (empty: best validation macro-F1)
n_resamples: int = 1000  # bootstrap resamples for the confidence intervals
n_bins: int = 15  # confidence bins
target_accuracy: float = 0.95  # accuracy the abstention analysis aims for
seed: int = 0  # bootstrap seed

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from medvision import plots
from medvision.book import pages, report
from medvision.config import RunConfig
from medvision.evaluate import evaluation
from medvision.metrics import calibration
from medvision.train import runner

run_config = RunConfig.load(config, [overrides])
out = pages.runs_dir(profile, run_config.label, runs_dir)
runs = evaluation.finished_runs(out)
focus = out / run if run else evaluation.best_run(out)
evals = {d.name: evaluation.evaluate_run(d, n_resamples=n_resamples, seed=seed, n_bins=n_bins) for d in runs}
ev = evals[focus.name]
focus_summary = runner.load_summary(focus)
pages.run_banner(profile, data=run_config.label, runs=len(runs), detailed_run=focus.name,
                backbone=focus_summary["backbone"], weights=focus_summary["weights"], bootstrap=n_resamples, seed=seed)

# %% [markdown]
# ## Reliability before and after temperature scaling
#
# The temperature is fitted on the validation split (LBFGS on the negative log-likelihood) and only
# applied to the test split. A validation split with fewer than five mistakes, or a fitted temperature outside
# 0.2-5, keeps T = 1: a split without mistakes (validation carved from near-identical images, say) would
# otherwise "calibrate" the model into certainty. Bars: how many test cases fall in each confidence bin.

# %%
display(Markdown(f"**{focus.name}**: {ev.temperature_fit.describe()}."))
evaluation.evaluation_figures(ev, n_bins, names=["reliability"])["reliability"]

# %%
table = calibration.bootstrap_calibration(ev.test_logits, ev.test_targets, ev.temperature, n_resamples,
                                          seed=seed, n_bins=n_bins)
table.unstack("when").round(4)

# %% [markdown]
# ## Selective prediction: when may the model abstain?

# %% tags=["hide-input"]
curve = calibration.risk_coverage(ev.calibrated_test_probs, ev.test_targets)
display(calibration.accuracy_at_coverage(curve).round(3))
display(Markdown(report.describe_abstention(focus.name, target_accuracy,
                                            *calibration.coverage_for_accuracy(curve, target_accuracy))))
fig, ax = plots.plot_risk_coverage({name: calibration.risk_coverage(e.calibrated_test_probs, e.test_targets)
                                    for name, e in evals.items()})
ax.set_title("risk-coverage on the test split");

# %% [markdown]
# ## Class-wise calibration
#
# For each class, is the predicted probability of that class calibrated (Kull et al. 2019)?

# %%
calibration.classwise_calibration(ev.calibrated_test_probs, ev.test_targets, ev.class_names, n_bins).round(4)

# %% [markdown]
# ## Across strategies

# %% tags=["hide-input"]
across = report.calibration_across(evals)
display(across.round(4))
fig, ax = plots.plot_ece_before_after(across)

# %%
display(Markdown(report.describe_calibration_across(across)))
