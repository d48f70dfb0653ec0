import matplotlib

matplotlib.use("Agg")

from medvision import plots
from medvision.book import eda  # noqa: E402
from medvision.data import (  # noqa: E402
    group_statistics,
    image_statistics,
    leakage_report,
    load_csv,
    load_medmnist,
    summarize_leakage,
)


def test_class_balance_and_data_card(shared_data):
    table = load_medmnist("pneumoniamnist", root=shared_data)
    balance = eda.class_balance(table)
    assert balance.loc["normal", "images"] == 1583 and balance.loc["pneumonia", "images"] == 4273
    assert balance.loc["normal", "largest / this"] == round(4273 / 1583, 2)
    card = eda.data_card(table)
    assert card.loc["md5", "value"] == "28209eda62fecd6e6a2d98b1501bb15f"
    assert card.loc["licence", "value"] == "CC BY 4.0"


def test_plots_return_figure_and_axes(shared_data):
    table = load_medmnist("breastmnist", root=shared_data)
    fig, ax = plots.plot_class_counts(table.counts())
    assert len(ax.patches) >= 6 and fig is ax.figure
    fig, ax = plots.plot_sample_grid(table, per_class=3, size=16)
    assert ax.images[0].get_array().shape == (2 * 18, 3 * 18, 3)
    stats = image_statistics(table, max_images=50)
    assert len(stats) == 50 and stats["is_gray"].all() and (stats["width"] == 28).all()
    fig, ax = plots.plot_intensity_distribution(stats)
    assert ax.get_legend() is not None
    fig2, ax2 = plots.plot_image_sizes(stats, ax=ax)
    assert ax2 is ax


def test_leakage_text_is_computed(shared_data):
    table = load_medmnist("breastmnist", root=shared_data)
    summary = summarize_leakage(leakage_report(table))
    text = eda.describe_leakage(summary, table)
    assert f"{int(summary.loc['exact', 'cross_split'])} pairs of identical images" in text
    assert "no group column" in text


def test_group_statistics_of_ham(shared_data):
    table = load_csv(shared_data / "ham10000" / "subset.csv", path_col="file", label_col="dx",
                     group_col="lesion_id")
    groups = group_statistics(table)
    assert groups["groups"].to_dict() == {1: 300, 2: 96, 3: 31, 4: 3, 5: 1}
    assert groups["images"].sum() == 602
    fig, ax = plots.plot_group_sizes(groups)
    assert len(ax.patches) == 5


def test_eda_helpers_say_what_the_statistics_show(shared_data):
    table = load_medmnist("breastmnist", root=shared_data)
    stats = image_statistics(table, max_images=30)
    assert not eda.sizes_vary(stats)
    assert eda.describe_image_sizes(stats) == "All analysed images are 28 x 28 px (L)."
    assert set(eda.image_statistics_by_class(stats).columns) == set(table.class_names)
    assert eda.describe_groups(group_statistics(table)) == "This data set has no group column."
    assert eda.has_duplicate_pairs(leakage_report(table))


def test_group_sentence_counts_groups(shared_data):
    table = load_csv(shared_data / "ham10000" / "subset.csv", path_col="file", label_col="dx",
                     group_col="lesion_id")
    text = eda.describe_groups(group_statistics(table))
    assert text.startswith("602 images come from 431 groups; 131 groups hold more than one image (302 images)")
