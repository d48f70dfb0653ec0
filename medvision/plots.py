"""Plots for the book. Each function takes ``ax=None`` and returns ``(fig, ax)``; none calls ``plt.show()``."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from medvision.core.errors import ImageLoadError
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
    """A mosaic (classes x per_class tiles) of randomly chosen images, as an RGB uint8 array; an image that
    cannot be read leaves its tile blank (the data chapters report unreadable files on their own)."""
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
            try:
                tile = resize_image(load_pixels(table, int(i)), size, "squash")
            except ImageLoadError:
                continue
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


def plot_learning_curve_panels(histories: dict[str, pd.DataFrame],
                               metrics: Sequence[str] = ("train_loss", "val_loss", "val_macro_f1"),
                               ) -> tuple[Figure, np.ndarray]:
    """:func:`plot_learning_curves` of each of ``metrics`` side by side (one panel each)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.7 * len(metrics), 3.8), layout="constrained", squeeze=False)
    for metric, ax in zip(metrics, axes[0], strict=True):
        plot_learning_curves(histories, metric, ax=ax)
    return fig, axes[0]


def plot_strategy_comparison(table: pd.DataFrame, metrics: Sequence[str] = ("test_balanced_accuracy",
                             "test_macro_f1", "test_auroc"), ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Grouped bars of test metrics per run (the output of :func:`medvision.train.runner.compare_runs`)."""
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


def plot_confusion_matrix(targets, predictions, class_names: Sequence[str], normalize: bool = False,
                          ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Confusion matrix heatmap: counts, or rows normalised to recall (``normalize=True``)."""
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(np.asarray(targets), np.asarray(predictions), labels=range(len(class_names)))
    data = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    fig, ax = _fig_ax(ax, figsize=(1.2 * len(class_names) + 2.5, 1.0 * len(class_names) + 2))
    sns.heatmap(data, annot=True, fmt=".2f" if normalize else "d", cmap="Blues", cbar=False, ax=ax,
                xticklabels=class_names, yticklabels=class_names, square=True)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("row-normalised (recall)" if normalize else "counts")
    return fig, ax


def plot_per_class_metric(ci: pd.DataFrame, metric: str = "f1", ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Bars of a per-class metric with bootstrap CI error bars (rows ``f1[<class>]`` of :func:`bootstrap_ci`)."""
    rows = ci[ci.index.str.startswith(f"{metric}[")]
    names = [i[len(metric) + 1:-1] for i in rows.index]
    fig, ax = _fig_ax(ax)
    est = rows["estimate"].to_numpy(float)
    err = np.vstack([est - rows["lower"].to_numpy(float), rows["upper"].to_numpy(float) - est])
    ax.bar(names, est, yerr=err, capsize=4, color=sns.color_palette()[: len(names)])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"{metric} (95% bootstrap CI)")
    ax.tick_params(axis="x", labelrotation=30 if len(names) > 4 else 0)
    return fig, ax


def _plot_one_vs_rest(probs: np.ndarray, targets, class_names: Sequence[str], ax: Axes | None, points, score,
                      score_name: str, needs_negatives: bool) -> tuple[Figure, Axes]:
    """One curve per class against the rest: ``points(is_class, prob) -> (x, y)``, labelled with ``score``."""
    fig, ax = _fig_ax(ax)
    y = np.asarray(targets)
    for c, name in enumerate(class_names):
        hit = y == c
        if not hit.any() or (needs_negatives and hit.all()):  # the curve is undefined
            continue
        xs, ys = points(hit, probs[:, c])
        ax.plot(xs, ys, label=f"{name} ({score_name} {score(hit, probs[:, c]):.3f})")
    ax.legend(fontsize=8)
    return fig, ax


def plot_roc_curves(probs: np.ndarray, targets, class_names: Sequence[str], ax: Axes | None = None
                    ) -> tuple[Figure, Axes]:
    """One-vs-rest ROC curve per class with its AUROC."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = _plot_one_vs_rest(probs, targets, class_names, ax, lambda t, p: roc_curve(t, p)[:2],
                                roc_auc_score, "AUROC", needs_negatives=True)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    return fig, ax


def plot_pr_curves(probs: np.ndarray, targets, class_names: Sequence[str], ax: Axes | None = None
                   ) -> tuple[Figure, Axes]:
    """One-vs-rest precision-recall curve per class with its average precision."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    def recall_precision(t, p):
        precision, recall, _ = precision_recall_curve(t, p)
        return recall, precision

    fig, ax = _plot_one_vs_rest(probs, targets, class_names, ax, recall_precision, average_precision_score, "AP",
                                needs_negatives=False)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    return fig, ax


def plot_reliability_diagram(curves: dict[str, pd.DataFrame], ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Accuracy against confidence per bin for each curve (e.g. before / after temperature scaling), with
    the confidence histogram of the first curve on a twin axis."""
    fig, ax = _fig_ax(ax)
    first = next(iter(curves.values()))
    hist_ax = ax.twinx()
    width = (first["upper"] - first["lower"]).to_numpy()
    hist_ax.bar(first["lower"], first["count"], width=width, align="edge", alpha=0.15, color="grey")
    hist_ax.set_ylabel("cases per bin")
    for name, bins in curves.items():
        ok = bins.dropna()
        ax.plot(ok["confidence"], ok["accuracy"], marker="o", markersize=3, label=name)
    ax.plot([0, 1], [0, 1], color="black", linestyle=":", linewidth=1, label="perfect calibration")
    ax.set_zorder(hist_ax.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence of the predicted class")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8, loc="upper left")
    return fig, ax


def plot_risk_coverage(curves: dict[str, pd.DataFrame], ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Risk (error rate) against coverage when abstaining on the least confident cases."""
    fig, ax = _fig_ax(ax)
    for name, curve in curves.items():
        ax.plot(curve["coverage"], curve["risk"], label=name)
    ax.set_xlabel("coverage (fraction of cases the model answers)")
    ax.set_ylabel("risk (error rate on those cases)")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8)
    return fig, ax


def plot_image_grid(images: Sequence[np.ndarray], titles: Sequence[str], ncols: int = 4,
                    ax: Axes | None = None) -> tuple[Figure, Axes]:
    """A mosaic of equally sized RGB uint8 images with a title under each (e.g. top losses, Grad-CAM)."""
    n = len(images)
    nrows = max(1, -(-n // ncols))
    size = images[0].shape[0] if n else 32
    pad = 4
    mosaic = np.full((nrows * (size + pad), ncols * (size + pad), 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        mosaic[r * (size + pad):r * (size + pad) + size, c * (size + pad):c * (size + pad) + size] = img
    fig, ax = _fig_ax(ax, figsize=(2.2 * ncols, 2.4 * nrows))
    ax.imshow(mosaic, interpolation="nearest")
    for i, title in enumerate(titles):
        r, c = divmod(i, ncols)
        ax.text(c * (size + pad) + size / 2, r * (size + pad) + size + 1, title, ha="center", va="top",
                fontsize=6, bbox={"facecolor": "white", "alpha": 0.8, "pad": 1, "edgecolor": "none"})
    ax.set_axis_off()
    return fig, ax


def plot_speedups(rows: pd.DataFrame, ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Horizontal bars of medvision's speed-up over a plain PyTorch loop (``ratio`` column), one bar per row
    labelled by its ``label`` column, with parity (1x) marked."""
    fig, ax = _fig_ax(ax, (7, 0.45 * len(rows) + 1.2))
    sns.barplot(data=rows, x="ratio", y="label", ax=ax, color="C0", orient="h")
    ax.axvline(1.0, color="0.3", lw=1, ls="--")
    for bar, ratio in zip(ax.patches, rows["ratio"], strict=False):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {ratio:.2f}x", va="center", fontsize=9)
    ax.set_xlabel("images/s of medvision / images/s of the plain PyTorch loop")
    ax.set_ylabel("")
    return fig, ax


def plot_time_to_score(rows: list[dict], monitor: str = "macro_f1", ax: Axes | None = None
                       ) -> tuple[Figure, Axes]:
    """Validation ``monitor`` against wall-clock seconds, epoch by epoch, of the plain loop (dashed) and of
    medvision's ``fit`` (solid), one colour per seed, with each seed's target (the plain loop's final score)
    dotted and the mean of those targets in black: rows as ``bench/train_throughput.py --seeds`` writes them."""
    fig, ax = _fig_ax(ax, (7, 4))
    for i, row in enumerate(rows):
        colour = f"C{i % 10}"
        for key, style, who in (("plain_timeline", "--", "plain"), ("medvision_timeline", "-", "medvision")):
            t, score = zip(*([(0.0, float("nan"))] + [tuple(p) for p in row[key]]), strict=True)
            ax.plot(t, score, style, marker="o", color=colour, label=f"seed {row['seed']}: {who}")
        ax.axhline(row[f"target_val_{monitor}"], color=colour, lw=0.8, ls=":")
    if rows and f"mean_target_val_{monitor}" in rows[0]:
        ax.axhline(rows[0][f"mean_target_val_{monitor}"], color="black", lw=1, ls="-.",
                   label="mean of the plain loop's final scores")
    ax.set_xlabel("wall-clock seconds (training, validation and checkpoints)")
    ax.set_ylabel(f"validation {monitor}")
    ax.legend(fontsize=8, ncols=2)
    return fig, ax


def _band(ax: Axes, x, group: pd.DataFrame, metric: str, label: str, marker: str = "o") -> None:
    line, = ax.plot(x, group[metric], marker=marker, label=label)
    if f"{metric}_low" in group and np.isfinite(group[f"{metric}_low"]).any():
        ax.fill_between(x, group[f"{metric}_low"], group[f"{metric}_high"], color=line.get_color(), alpha=0.15,
                        lw=0)


def plot_label_budget(means: pd.DataFrame, metric: str = "test_macro_f1", ax: Axes | None = None
                      ) -> tuple[Figure, Axes]:
    """One data set's label-budget curves: mean ``metric`` over seeds against the labelled training images
    (log scale), one line per strategy with its 95% seed interval shaded (rows of
    :func:`medvision.book.evidence.seed_means` by ``per_class`` and ``strategy``)."""
    fig, ax = _fig_ax(ax, (7, 4))
    for strategy, group in means.groupby("strategy", sort=False):
        group = group.sort_values("train_images")
        _band(ax, group["train_images"], group, metric, str(strategy),
              marker="s" if strategy == "logistic_regression" else "o")
    ax.set_xscale("log")
    ax.set_xlabel("labelled training images (log scale)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.legend(fontsize=8)
    return fig, ax


def plot_remedies(means: pd.DataFrame, metric: str = "test_balanced_accuracy", ax: Axes | None = None
                  ) -> tuple[Figure, Axes]:
    """One data set's imbalance remedies: mean ``metric`` over seeds with its 95% seed interval as an error
    bar, one row per remedy (rows of :func:`medvision.book.evidence.seed_means` by ``remedy``)."""
    fig, ax = _fig_ax(ax, (6, 0.45 * len(means) + 1.2))
    y = np.arange(len(means))
    low, high = means[f"{metric}_low"].to_numpy(), means[f"{metric}_high"].to_numpy()
    mean = means[metric].to_numpy()
    err = np.where(np.isfinite(low), np.vstack([mean - low, high - mean]), 0.0)
    ax.errorbar(mean, y, xerr=err, fmt="o", capsize=3)
    ax.set_yticks(y, means["remedy"])
    ax.invert_yaxis()
    ax.set_xlabel(metric.replace("_", " ") + " (mean, 95% interval over seeds)")
    return fig, ax


def plot_resolution(means: pd.DataFrame, metric: str = "test_macro_f1", ax: Axes | None = None
                    ) -> tuple[Figure, Axes]:
    """Mean ``metric`` over seeds against the model's input size, one line per data set with its 95% seed
    interval shaded, each point labelled with its seconds per training epoch (rows of
    :func:`medvision.book.evidence.seed_means` by ``dataset`` and ``input_px``)."""
    fig, ax = _fig_ax(ax, (7, 4))
    for dataset, group in means.groupby("dataset", sort=False):
        group = group.sort_values("input_px")
        _band(ax, group["input_px"], group, metric, str(dataset))
        for x, y, s in zip(group["input_px"], group[metric], group["seconds_per_epoch"], strict=True):
            ax.annotate(f"{s:.0f} s/ep", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    ax.set_xticks(sorted(means["input_px"].unique()))
    ax.set_xlabel("model input (px)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.legend(fontsize=8)
    return fig, ax


def plot_ece_before_after(across: pd.DataFrame, ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Test ECE of each run before and after temperature scaling (the table of
    :func:`medvision.book.report.calibration_across`)."""
    fig, ax = _fig_ax(ax, (7, 3.5))
    across[["ece_before", "ece_after"]].plot.bar(ax=ax, rot=20)
    ax.set_ylabel("test ECE (15 equal-width bins)")
    return fig, ax


def plot_metric_bars(table: pd.DataFrame, metric: str, ax: Axes | None = None) -> tuple[Figure, Axes]:
    """One horizontal bar per row of ``table`` for ``metric`` (a column such as ``test_macro_f1``), sorted."""
    fig, ax = _fig_ax(ax, (8, 3.8))
    table[metric].sort_values().plot.barh(ax=ax, color="C0")
    ax.set_xlabel(metric.replace("_", " "))
    ax.set_ylabel("")
    return fig, ax


def plot_panels_by_group(table: pd.DataFrame, by: str, plot, metrics: Sequence[str], title: str = "{}",
                         panel_height: float | None = None) -> list[Figure]:
    """One figure per value of ``table[by]`` (in order of appearance), with one panel per metric drawn by
    ``plot(group, metric, ax=ax)`` (:func:`plot_label_budget`, :func:`plot_remedies`, :func:`plot_resolution`);
    each figure titled ``title.format(value)``."""
    figures = []
    for value, group in table.groupby(by, sort=False):
        height = panel_height if panel_height is not None else 4.0
        fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), height), layout="constrained",
                                 squeeze=False)
        for ax, metric in zip(axes[0], metrics, strict=True):
            plot(group, metric, ax=ax)
        fig.suptitle(title.format(value))
        figures.append(fig)
    return figures


def plot_residual_similarity(audit: dict, ax: Axes | None = None) -> tuple[Figure, Axes]:
    """How close validation and test images sit to the images they must not have seen (solid), beside images
    known to be distinct (dashed), with the near-copy threshold (a saved
    :func:`medvision.data.similarity.residual_similarity` audit)."""
    fig, ax = _fig_ax(ax, (7, 3.6))
    bins = np.asarray(audit["bins"])
    centres = (bins[:-1] + bins[1:]) / 2
    for k, (split, s) in enumerate(audit["splits"].items()):
        for kind, style in (("nearest", "-"), ("distinct", "--")):
            counts = np.asarray(s[kind]["histogram"], dtype=float)
            if counts.sum():
                label = f"{split}: nearest {' / '.join(s['seen'])}" if kind == "nearest" else f"{split}: known distinct"
                ax.plot(centres, counts / counts.sum(), style, color=f"C{k}", label=label)
    ax.axvline(audit["threshold"]["value"], color="0.3", lw=1, ls=":", label="near-copy threshold")
    ax.set_xlabel("highest cosine similarity (pretrained features)")
    ax.set_ylabel("fraction of images")
    ax.legend(fontsize=8)
    return fig, ax
