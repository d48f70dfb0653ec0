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
profile: str = "smoke"  # profile that produced this page (the book runner sets it)
config: str = "pneumoniamnist"  # a configs/ system (ham10000), a YAML path or a MedMNIST flag
overrides: dict = {"experiment": {"image_size": 32}}  # RunConfig overrides (configs/ schema): backbone, input...
max_train_samples: int = 400  # subsample the training split as the training chapter did (0: all)
runs_dir: str = ""  # fine-tuned runs to compare with (empty: <repo>/runs/<profile>/<configuration name>)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from medvision import baselines, book, evaluation, experiment
from medvision.data import build_tensor_cache, load_data
from medvision.data.splits import stratified_subsample
from medvision.run_config import RunConfig

run_config = RunConfig.load(config, [overrides])
exp, seed = run_config.experiment, run_config.train.seed  # the subsample and the classifiers use the run's seed
table = stratified_subsample(load_data(run_config.data), max_train_samples, seed=seed)
cache = build_tensor_cache(table, run_config.data.size, resize=run_config.data.resize, progress=False)
model, exp, _ = experiment.build_model(exp, table.num_classes)  # the offline fallback where configured
loaders = experiment.make_loaders(cache, model, exp, seed)
out = book.runs_dir(profile, run_config.label, runs_dir)
features = baselines.cached_features(
    model, loaders, out.parent / "features",
    key=f"{table.fingerprint()}|{exp.backbone}|{model.weights_source}|{exp.image_size}")
book.run_banner(profile, data=table.name, backbone=exp.backbone, weights=model.weights_source.source,
                input=f"{exp.image_size}px", feature_dim=features["train"][0].shape[1], seed=seed)

# %% [markdown]
# ## Classifiers on the embeddings

# %%
results = baselines.fit_feature_baselines(features, table.num_classes, seed=seed)
results.round(3)

# %% [markdown]
# ## Against the fine-tuned strategies

# %% tags=["hide-input"]
metrics = ["test_accuracy", "test_balanced_accuracy", "test_macro_f1", "test_auroc"]
rows = [results[metrics].assign(kind="frozen features + " + results.index.to_series())]
try:
    finetuned = experiment.compare_runs(evaluation.finished_runs(out))
    rows.append(finetuned[metrics].assign(kind="network: " + finetuned.index.to_series()))
except FileNotFoundError:
    display(Markdown(f"No fine-tuned runs found in `{out}`; run the training-strategies chapter first."))
both = pd.concat(rows).set_index("kind")
display(both.round(3))
fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
both["test_macro_f1"].sort_values().plot.barh(ax=ax, color="C0")
ax.set_xlabel("test macro-F1");

# %% tags=["hide-input"]
best_classic = results["val_macro_f1"].idxmax()
text = (f"Chosen on validation, the best classical model is **{best_classic}** "
        f"(test macro-F1 {results.loc[best_classic, 'test_macro_f1']:.3f}).")
if len(rows) > 1:
    best_net = finetuned["val_macro_f1"].idxmax()
    gap = finetuned.loc[best_net, "test_macro_f1"] - results.loc[best_classic, "test_macro_f1"]
    text += (f" The best network by validation ({best_net}) is {gap:+.3f} test macro-F1 away from it.")
display(Markdown(text))
