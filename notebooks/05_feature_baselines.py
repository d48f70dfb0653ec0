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
# # Classical baselines on frozen features
#
# Is fine-tuning worth it, or would a classical classifier on frozen ImageNet features do? Here the
# pretrained backbone embeds every image once (pooled pre-logit features, cached on disk); logistic
# regression, a linear SVM and k-nearest neighbours are trained on the training embeddings, each with its
# hyper-parameter chosen on the validation split, and scored once on test with the same metrics as the
# fine-tuned strategies of the training chapter (same split).

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
overrides: dict = {  # RunConfig overrides (configs/ schema): backbone, input...
    "data": {"size": 28},
    "experiment": {"backbone": "tf_efficientnet_lite0", "pretrained": "package", "image_size": 64},
}
max_train_samples: int = 0  # subsample the training split as the training chapter did (0: all)
runs_dir: str = ""  # fine-tuned runs to compare with (empty: <repo>/runs/<profile>/<configuration name>)

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from medvision import plots
from medvision.book import pages, report
from medvision.config import RunConfig
from medvision.data.pipeline import load_cached_split
from medvision.evaluate import evaluation
from medvision.train import baselines, runner

run_config = RunConfig.load(config, [overrides])
seed = run_config.train.seed  # the subsample and the classifiers use the run's seed
cache = load_cached_split(run_config.data, max_train_samples, seed=seed)
out = pages.runs_dir(profile, run_config.label, runs_dir)
features, model, exp = baselines.frozen_features(cache, run_config.experiment, out.parent / "features")
pages.run_banner(profile, data=cache.table.name, backbone=exp.backbone, weights=model.weights_source.source,
                 input=f"{exp.image_size}px", feature_dim=features["train"][0].shape[1], seed=seed)

# %% [markdown]
# ## Classifiers on the embeddings

# %%
results = baselines.fit_feature_baselines(features, cache.table.num_classes, seed=seed)
results.round(3)

# %% [markdown]
# ## Against the fine-tuned strategies

# %% tags=["hide-input"]
finetuned = runner.compare_runs(evaluation.finished_runs(out, missing_ok=True))
both = report.versus_finetuned(results, finetuned)
display(both.round(3))
fig, ax = plots.plot_metric_bars(both, "test_macro_f1")

# %% tags=["hide-input"]
display(Markdown(report.describe_feature_baselines(results, finetuned)))
