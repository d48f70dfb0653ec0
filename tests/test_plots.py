import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from medvision import plots  # noqa: E402
from medvision.metrics.calibration import reliability_bins, risk_coverage  # noqa: E402
from medvision.metrics.classification import bootstrap_ci  # noqa: E402

NAMES = ["normal", "pneumonia", "tb"]


def _data(n=90, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 3, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return logits, y


def test_confusion_matrix_counts_and_normalised():
    logits, y = _data()
    fig, ax = plots.plot_confusion_matrix(y, logits.argmax(1), NAMES)
    assert len(ax.texts) == 9 and sum(int(t.get_text()) for t in ax.texts) == 90
    fig, ax = plots.plot_confusion_matrix(y, logits.argmax(1), NAMES, normalize=True)
    values = np.array([float(t.get_text()) for t in ax.texts]).reshape(3, 3)
    assert np.allclose(values.sum(1), 1, atol=0.02)


def test_per_class_bars_have_error_bars():
    logits, y = _data()
    ci = bootstrap_ci(logits, y, n_resamples=50, per_class_names=NAMES)
    fig, ax = plots.plot_per_class_metric(ci, "f1")
    assert len(ax.patches) == 3 and len(ax.lines) + len(ax.collections) >= 1


def test_roc_pr_reliability_risk():
    logits, y = _data()
    p = logits.softmax(1).numpy()
    _, ax = plots.plot_roc_curves(p, y, NAMES)
    assert len(ax.lines) == 4 and "AUROC" in ax.get_legend().get_texts()[0].get_text()
    _, ax = plots.plot_pr_curves(p, y, NAMES)
    assert len(ax.lines) == 3
    bins = {"before": reliability_bins(p, y), "after": reliability_bins(p, y)}
    fig, ax = plots.plot_reliability_diagram(bins)
    assert len(ax.lines) == 3 and len(fig.axes) == 2  # twin axis holds the histogram
    _, ax = plots.plot_risk_coverage({"model": risk_coverage(p, y)})
    assert len(ax.lines) == 1


def test_image_grid_and_learning_curves():
    imgs = [np.full((16, 16, 3), i * 20, np.uint8) for i in range(5)]
    _, ax = plots.plot_image_grid(imgs, [f"#{i}" for i in range(5)], ncols=3)
    assert ax.images[0].get_array().shape == (2 * 20, 3 * 20, 3) and len(ax.texts) == 5
    hist = pd.DataFrame({"epoch": [1, 2], "val_macro_f1": [0.5, 0.6]})
    _, ax = plots.plot_learning_curves({"a": hist, "b": hist}, "val_macro_f1")
    assert len(ax.lines) == 2


def test_gradcam_maps_and_overlay():
    from medvision.models.backbones import create_model
    from medvision.models.saliency import gradcam, overlay, target_layer

    torch.manual_seed(0)
    model = create_model("test_efficientnet", 2, pretrained="none")
    assert target_layer(model) is model.get_submodule(model.feature_info[-1]["module"])
    small = target_layer(model, input_size=32)  # deepest stage still >= 7 x 7 px at 32 px input
    assert small is model.get_submodule(next(f["module"] for f in reversed(model.feature_info)
                                             if 32 / f["reduction"] >= 7))
    maps = gradcam(model, torch.randn(2, 3, 32, 32), [0, 1])
    assert maps.shape == (2, 32, 32) and maps.min() >= 0 and maps.max() <= 1
    out = overlay(np.zeros((32, 32, 3), np.uint8), maps[0])
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_speedup_bars_and_time_to_score_lines():
    rows = pd.DataFrame({"label": ["train full 64px", "evaluate 64px"], "ratio": [1.8, 2.2]})
    fig, ax = plots.plot_speedups(rows)
    assert [round(p.get_width(), 2) for p in ax.patches] == [1.8, 2.2]
    assert [t.get_text().strip() for t in ax.texts] == ["1.80x", "2.20x"]
    scores = [{"seed": s, "target_val_macro_f1": 0.9, "plain_timeline": [[10, 0.8], [20, 0.9]],
               "medvision_timeline": [[5, 0.85], [10, 0.93]]} for s in (0, 1)]
    fig, ax = plots.plot_time_to_score(scores)
    lines = [ln for ln in ax.get_lines() if ln.get_linestyle() in ("-", "--")]
    assert len(lines) == 4 and list(lines[1].get_xdata()) == [0.0, 5, 10]
    assert [ln.get_ydata()[0] for ln in ax.get_lines() if ln.get_linestyle() == ":"] == [0.9, 0.9]
    plt.close("all")


def test_panel_helpers_return_their_figures():
    import pandas as pd

    from medvision import plots

    histories = {"a": pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.7],
                                    "val_macro_f1": [0.5, 0.6]})}
    fig, axes = plots.plot_learning_curve_panels(histories)
    assert len(axes) == 3 and axes[2].get_ylabel() == "val macro f1"
    calls = []
    figs = plots.plot_panels_by_group(pd.DataFrame({"d": ["x", "x", "y"], "v": [1, 2, 3]}), "d",
                                      lambda g, m, ax: calls.append((len(g), m)), ("m1", "m2"), title="set {}")
    assert [f._suptitle.get_text() for f in figs] == ["set x", "set y"]
    assert calls == [(2, "m1"), (2, "m2"), (1, "m1"), (1, "m2")]
    across = pd.DataFrame({"ece_before": [0.1, 0.2], "ece_after": [0.05, 0.1]}, index=["a", "b"])
    fig, ax = plots.plot_ece_before_after(across)
    assert len(ax.patches) == 4
    fig, ax = plots.plot_metric_bars(pd.DataFrame({"s_per_epoch": [2.0, 0.5]}, index=["full", "head"]),
                                     "s_per_epoch")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["head", "full"]
