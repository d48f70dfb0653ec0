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
# # Performance
#
# What makes medvision fast enough to run this book on two CPU cores, measured in this build: the
# benchmark scripts in `bench/` run here, each timing medvision against the usual approach **in the same
# process run**, so the ratios hold even on a noisy machine. Then: training time per epoch of each strategy
# (from the training chapter's run directories) and how long each chapter of this build took.

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
config: str = "pneumoniamnist"  # the training chapter's configuration (its name picks the runs folder)
overrides: dict = {  # RunConfig overrides (configs/ schema), as the training chapter had them
    "data": {"size": 28},
    "experiment": {"backbone": "tf_efficientnet_lite0", "pretrained": "package", "image_size": 64},
}
runs_dir: str = ""  # run directories (empty: <repo>/runs/<profile>/<configuration name>)
bench_epochs: int = 2  # epochs timed by each benchmark
head_bench_images: int = 1500  # training images of the head-only benchmark (0: all)
train_bench_batches: int = 6  # training batches per round of the training-throughput benchmark
train_bench_rounds: int = 2  # alternating rounds (plain loop, medvision) of that benchmark; the median is shown
train_bench_sizes: list = [64]  # input sizes of that benchmark's training and evaluation rows
predict_bench_sizes: list = [64]  # input sizes of its prediction rows (Predictor on a folder, exported files)
bench_eval_images: int = 1024  # images of its evaluation and prediction rows
score_seeds: list = []  # seeds of the time-to-validation-score comparison (empty: not run)
score_epochs: int = 3  # epochs of the plain loop in that comparison (medvision: one head-only epoch, then as many)
score_train_images: int = 1500  # training images of that comparison (0: the whole train split)

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from medvision import plots
from medvision.book import pages, speed
from medvision.config import RunConfig
from medvision.evaluate import evaluation
from medvision.train import runner

data_bench = pages.run_bench("data_pipeline", "--epochs", str(bench_epochs))
head_bench = pages.run_bench("head_only", "--epochs", str(bench_epochs), "--max-images", str(head_bench_images))
train_bench = pages.run_bench("train_throughput", "--batches", str(train_bench_batches), "--rounds",
                              str(train_bench_rounds), "--sizes", *map(str, train_bench_sizes),
                              "--predict-sizes", *map(str, predict_bench_sizes),
                              "--eval-images", str(bench_eval_images),
                              "--seeds", *map(str, score_seeds), "--score-epochs", str(score_epochs),
                              "--score-train-images", str(score_train_images))
display(pages.run_banner(profile, data_pipeline_images=f"{data_bench['images']} ({data_bench['data']})",
                         head_only_images=head_bench["images"], bench_epochs=bench_epochs))
display(Markdown(speed.describe_data_fallback(data_bench)))

# %% [markdown]
# ## Speed-ups measured in this build

# %% tags=["hide-input"]
display(speed.pipeline_table(data_bench, head_bench).round(1))
display(Markdown(speed.describe_pipeline(data_bench, head_bench)))

# %% [markdown]
# ## Training and evaluation against a plain PyTorch loop
#
# `bench/train_throughput.py` times medvision's training step (`train_one_epoch` as `fit` runs it), its
# evaluation (`evaluate`) and its prediction (`Predictor.predict` on a folder of PNG files, with the torch
# backend and with ONNX Runtime; the exported `model.onnx` and `torch.export` files on in-memory batches) against
# the loop a user would write in twenty lines — same model, ImageNet weights, images, batch, flips, optimizer and
# gradient clipping. Every row runs in a fresh pair of worker processes, one per side, as two scripts of a user
# would, and the two alternate round by round. Training gains from channels-last batches; evaluation from
# BatchNorm folded into the convolutions, channels-last batches, `torch.inference_mode` and an allocator that
# keeps its buffers (`medvision.core.devices.tune_allocator`); prediction on the CPU from ONNX Runtime.

# %%
rows = speed.throughput_table(train_bench)
fig, ax = plots.plot_speedups(rows.reset_index())
ax.set_title(f"EfficientNet-Lite0, batch {train_bench['batch']}, {train_bench['threads']} threads")
display(rows[["plain_images_per_s", "medvision_images_per_s", "ratio"]].round(2))

# %% [markdown]
# ## Wall time to the plain loop's validation score
#
# Images per second are half the story: what a user waits for is a model as good as the one the plain loop
# gives. The plain loop trains for a fixed number of epochs at a constant learning rate; its final validation
# macro-F1 is the target. medvision's `fit` trains the same model with the same optimizer, batch, flips and
# gradient clipping, with its recipe for a quick fine-tune, fastai's `fine_tune(epochs, freeze_epochs=1)`: one
# epoch trains the new head alone on the frozen backbone ("linear probe, then fine-tune", which keeps a random
# head from distorting the pretrained features {cite}`kumar2022finetuning`), then everything trains for as many
# epochs as the plain loop runs. Each phase follows a cosine from twice the plain loop's learning rate to zero,
# the same mean rate as the plain loop's constant one. The clock stops at the first epoch that reaches the
# target (validation and checkpoints included). Both final models are scored once on the test split: a
# faster route to a worse model would not count.

# %% tags=["hide-input"]
scores = train_bench["time_to_score"]
if scores:
    fig, ax = plots.plot_time_to_score(scores)
    ax.set_title(f"EfficientNet-Lite0, {scores[0]['train_images']} training images, {scores[0]['size']} px")
    display(speed.time_to_score_table(scores).round(3))
    display(Markdown(speed.describe_time_to_score(scores)))
else:
    display(Markdown("Not run under this profile (`score_seeds` is empty): the `cpu` profile runs it over "
                     "three seeds."))

# %% [markdown]
# ## Training time per epoch, by strategy

# %% tags=["hide-input"]
per_epoch = runner.compare_runs(evaluation.finished_runs(
    pages.runs_dir(profile, RunConfig.load(config, [overrides]).label, runs_dir), missing_ok=True))
if not per_epoch.empty:
    fig, ax = plots.plot_metric_bars(per_epoch, "s_per_epoch")
    ax.set_xlabel("seconds per training epoch (head_only: cached features)")
    display(per_epoch[["s_per_epoch", "trainable_params"]])

# %% [markdown]
# ## Build time of this book, by chapter

# %%
times = speed.chapter_times(pages.run_record())
display(times)
display(Markdown(speed.describe_chapter_times(times, profile)))
