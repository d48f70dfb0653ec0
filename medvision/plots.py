"""Plots for the book. Each function takes ``ax=None`` and returns ``(fig, ax)``; none calls ``plt.show()``."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from medvision.data.cache import load_pixels, resize_image
from medvision.data.table import SampleTable


def _fig_ax(ax: Axes | None, figsize: tuple[float, float] = (6, 4)) -> tuple[Figure, Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return fig, ax
    return ax.figure, ax  # type: ignore[return-value]


def plot_class_counts(counts: pd.DataFrame, ax: Axes | None = None, log: bool = False
                      ) -> tuple[Figure, Axes]:
    """Grouped bars of images per class and split (the output of :meth:`SampleTable.counts`)."""
    fig, ax = _fig_ax(ax)
    data = counts.drop(columns=["total"], errors="ignore").reset_index().melt(
        id_vars="class", var_name="split", value_name="images")
    sns.barplot(data=data, x="class", y="images", hue="split", ax=ax)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("class")
    ax.set_ylabel("images")
    ax.tick_params(axis="x", labelrotation=30 if len(counts) > 4 else 0)
    for container in ax.containers:
        ax.bar_label(container, fontsize=7, padding=1)
    return fig, ax


def sample_grid(table: SampleTable, per_class: int = 8, size: int = 64, seed: int = 0,
                split: str | None = None) -> np.ndarray:
    """A mosaic (classes x per_class tiles) of randomly chosen images, as an RGB uint8 array."""
    rng = np.random.default_rng(seed)
    frame = table.frame.reset_index(drop=True)
    pad = 2
    mosaic = np.full((table.num_classes * (size + pad), per_class * (size + pad), 3), 255, np.uint8)
    for c in range(table.num_classes):
        mask = frame["label"].to_numpy() == c
        if split is not None:
            mask &= (frame["split"] == split).to_numpy()
        pos = np.flatnonzero(mask)
        chosen = rng.choice(pos, min(per_class, len(pos)), replace=False) if len(pos) else []
        for k, i in enumerate(chosen):
            tile = resize_image(load_pixels(table, int(i)), size, "squash")
            top, left = c * (size + pad), k * (size + pad)
            mosaic[top:top + size, left:left + size] = tile
    return mosaic


def plot_sample_grid(table: SampleTable, per_class: int = 8, size: int = 64, seed: int = 0,
                     split: str | None = None, ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Show ``per_class`` random images of every class, one row per class, labelled with the class."""
    mosaic = sample_grid(table, per_class, size, seed, split)
    fig, ax = _fig_ax(ax, figsize=(per_class * 1.1, table.num_classes * 1.2 + 0.3))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_yticks([c * (size + 2) + size / 2 for c in range(table.num_classes)], list(table.class_names))
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    return fig, ax


def plot_intensity_distribution(stats: pd.DataFrame, ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Distribution of per-image mean gray level, by class (from :func:`image_statistics`)."""
    fig, ax = _fig_ax(ax)
    sns.histplot(data=stats, x="mean", hue="class_name", stat="density", common_norm=False,
                 element="step", bins=30, ax=ax)
    ax.set_xlabel("mean gray level of the image (0-255)")
    return fig, ax


def plot_image_sizes(stats: pd.DataFrame, ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Scatter of original width x height, by class."""
    fig, ax = _fig_ax(ax)
    sns.scatterplot(data=stats, x="width", y="height", hue="class_name", alpha=0.6, ax=ax)
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    return fig, ax


def plot_group_sizes(group_stats: pd.DataFrame, ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Bars of how many groups (lesions, patients) have 1, 2, 3, ... images."""
    fig, ax = _fig_ax(ax)
    sns.barplot(x=group_stats.index.astype(str), y=group_stats["groups"], ax=ax, color="C0")
    ax.set_xlabel("images per group")
    ax.set_ylabel("groups")
    return fig, ax


def plot_leakage_pairs(table: SampleTable, report: pd.DataFrame, n: int = 6, size: int = 64,
                       ax: Axes | None = None, kinds: Sequence[str] = ("exact", "near")
                       ) -> tuple[Figure, Axes]:
    """Side-by-side image pairs from a leakage report (cross-split pairs first)."""
    pairs = report[report["kind"].isin(kinds)].sort_values(["cross_split", "distance"],
                                                              ascending=[False, True]).head(n)
    fig, ax = _fig_ax(ax, figsize=(2.6, max(1, len(pairs)) * 1.3 + 0.3))
    pos = {sid: i for i, sid in enumerate(table.frame["sample_id"])}
    pad = 2
    mosaic = np.full((max(1, len(pairs)) * (size + pad), 2 * size + 3 * pad, 3), 255, np.uint8)
    labels = []
    for r, row in enumerate(pairs.itertuples()):
        for k, sid in enumerate((row.sample_a, row.sample_b)):
            tile = resize_image(load_pixels(table, pos[sid]), size, "squash")
            mosaic[r * (size + pad):r * (size + pad) + size,
                   k * (size + 2 * pad):k * (size + 2 * pad) + size] = tile
        labels.append(f"{row.kind} d={row.distance}\n{row.split_a} / {row.split_b}")
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_yticks([r * (size + pad) + size / 2 for r in range(len(pairs))], labels, fontsize=7)
    ax.set_xticks([])
    return fig, ax


def plot_lr_find(result, ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Smoothed loss against learning rate (log scale) with the suggestion marked."""
    fig, ax = _fig_ax(ax)
    ax.plot(result.lrs, result.losses)
    ax.set_xscale("log")
    ax.axvline(result.suggestion, color="C3", linestyle="--", label=f"suggestion {result.suggestion:.1e}")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed training loss")
    ax.legend()
    return fig, ax


def plot_learning_curves(histories: dict[str, pd.DataFrame], metric: str = "val_macro_f1",
                         ax: Axes | None = None) -> tuple[Figure, Axes]:
    """One line per run of ``metric`` against epoch (e.g. ``train_loss``, ``val_loss``, ``val_macro_f1``)."""
    fig, ax = _fig_ax(ax)
    for name, hist in histories.items():
        ax.plot(hist["epoch"], hist[metric], marker="o", markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.legend(fontsize=8)
    return fig, ax


def plot_strategy_comparison(table: pd.DataFrame, metrics: Sequence[str] = ("test_balanced_accuracy",
                             "test_macro_f1", "test_auroc"), ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Grouped bars of test metrics per run (the output of :func:`medvision.experiment.compare_runs`)."""
    fig, ax = _fig_ax(ax, figsize=(7, 4))
    data = table[list(metrics)].reset_index().melt(id_vars="run", var_name="metric", value_name="value")
    data["metric"] = data["metric"].str.replace("test_", "").str.replace("_", " ")
    sns.barplot(data=data, x="run", y="value", hue="metric", ax=ax)
    ax.set_ylim(max(0.0, float(data["value"].min()) - 0.1), 1.0)
    ax.set_xlabel("")
    ax.tick_params(axis="x", labelrotation=20)
    for container in ax.containers:
        ax.bar_label(container, fmt="%.3f", fontsize=6, padding=1)
    return fig, ax
