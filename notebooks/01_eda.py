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
# # Exploratory data analysis
#
# Before adapting an ImageNet backbone to a medical data set we look at what the data actually is: how many
# images each class has in each split (imbalance decides the loss, the sampler and the metric), what the
# images look like, how their sizes and intensities vary, and whether the same image — or the same patient
# or lesion — sits on both sides of a split, which would make test scores meaningless.
#
# Everything below is computed by `medvision` from the data named in the parameters.

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
overrides: dict = {  # RunConfig overrides in the configs/ schema, e.g. {"data": {"data_root": "/data"}}
    "data": {"size": 28},
    "experiment": {"backbone": "tf_efficientnet_lite0", "pretrained": "package", "image_size": 64},
}
grid_per_class: int = 8  # images per class in the sample grid
max_stats_images: int = 2000  # images analysed for size / intensity statistics
similarity_images: int = 2000  # images of the feature-space leakage check (0: all)
seed: int = 0  # seed of the random samples shown

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from medvision import plots
from medvision.book import eda, pages
from medvision.config import RunConfig
from medvision.data import (
    dedupe,
    group_statistics,
    image_statistics,
    leakage_report,
    load_data,
    summarize_leakage,
)

run_config = RunConfig.load(config, [overrides])
table = load_data(run_config.data)
pages.run_banner(profile, data=table.name, images=len(table), seed=seed)

# %% [markdown]
# ## The data card
#
# Where the images come from, under which licence, and how they are split.

# %%
eda.data_card(table)

# %% [markdown]
# ## Classes and splits
#
# Images per class in each split, then each class's share and how many times smaller it is than the
# largest class. A large ratio means plain accuracy will flatter the model; the later chapters report
# balanced accuracy and macro-F1 for that reason.

# %%
table.counts()

# %%
eda.class_balance(table)

# %%
fig, ax = plots.plot_class_counts(table.counts())
ax.set_title(f"{table.name}: images per class and split");

# %% [markdown]
# ## What the images look like
#
# Randomly chosen training images, one row per class.

# %%
fig, ax = plots.plot_sample_grid(table, per_class=grid_per_class, seed=seed,
                                 split="train" if "train" in table.splits else None)
ax.set_title("random training images per class");

# %% [markdown]
# ## Sizes and intensities
#
# Original image sizes and the distribution of each image's mean gray level, per class, on a random
# sample. Systematic differences between classes here (one class brighter, or larger) are shortcuts a
# network can learn instead of the pathology.

# %%
stats = image_statistics(table, max_images=max_stats_images, seed=seed, on_error=run_config.data.on_error)
eda.image_statistics_by_class(stats).round(1)

# %%
fig, ax = plots.plot_intensity_distribution(stats)
ax.set_title("mean gray level per image, by class");

# %%
if eda.sizes_vary(stats):
    fig, ax = plots.plot_image_sizes(stats)
else:
    display(Markdown(eda.describe_image_sizes(stats)))

# %% [markdown]
# ## Leakage between splits
#
# Exact duplicates have identical pixels; near duplicates have perceptual hashes within
# `data.near_distance` bits (of 64); group leakage means one patient or lesion appears in more than one split.

# %%
report = leakage_report(table, max_distance=run_config.data.near_distance, on_error=run_config.data.on_error)
summary = summarize_leakage(report)
display(summary)
display(Markdown(eda.describe_leakage(summary, table)))

# %%
if eda.has_duplicate_pairs(report):
    fig, ax = plots.plot_leakage_pairs(table, report)
    ax.set_title("closest pairs (cross-split first)")

# %% [markdown]
# ### In feature space
#
# Pixel hashes miss frames of one source that differ by a shift, a crop, a small rotation or the exposure
# (a hand-held otoscope, dermatoscope or endoscope). Here each validation and test image's highest cosine
# similarity to the images it must not have seen (pooled ImageNet features, averaged over a flip and a crop)
# is set beside the same for images known to be distinct (another class, or another patient or lesion). The
# threshold is the data's own: the 99% quantile of each image's highest similarity to a known-distinct image.

# %%
similarity, sentence = eda.feature_audit(table, run_config.data, similarity_images, seed)
display(Markdown(sentence + " " + eda.group_advice(table, similarity)))
if similarity:
    fig, ax = plots.plot_residual_similarity(similarity)

# %% [markdown]
# ## A split that no duplicate crosses
#
# With `data.dedupe: near` (or `exact`, or `embedding`: pHash and feature-space near duplicates) the
# duplicates found above, together with the group column, form
# clusters, and no split may cut a cluster: a fresh split and a validation split carved from train keep every
# cluster on one side. An official split is kept (`data.official_split: keep`, the leakage stays and is
# reported), cleaned (`drop_duplicates`: evaluation images whose cluster reaches an earlier split are dropped)
# or replaced (`resplit`). Every run records the leakage of its own split, and the per-class chapter scores
# the test images without a duplicate in train/val beside the whole test split.

# %%
display(Markdown(dedupe.describe_split_report(table.split_report)))

# %% [markdown]
# ## Groups
#
# When the data has a group column (patients, lesions), how many images each group contributes.
# Splits that ignore groups put images of one lesion on both sides.

# %%
groups = group_statistics(table)
display(Markdown(eda.describe_groups(groups)))
if not groups.empty:
    display(groups)
    fig, ax = plots.plot_group_sizes(groups)
