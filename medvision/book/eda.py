"""Exploratory summaries that the EDA chapter shows: class balance, data card, leakage in words."""

from __future__ import annotations

import pandas as pd

from medvision.config.data import DataConfig
from medvision.core.errors import UserError
from medvision.data.table import SampleTable
from medvision.models.embeddings import similarity_audit


def class_balance(table: SampleTable) -> pd.DataFrame:
    """Images per class with their share of the data set and the imbalance ratio to the largest class."""
    counts = table.counts()
    total = counts["total"] if "total" in counts else counts.iloc[:, 0]
    out = pd.DataFrame({"images": total, "share": (total / total.sum()).round(3)})
    out["largest / this"] = (total.max() / total.where(total > 0)).round(2)
    return out


def data_card(table: SampleTable) -> pd.DataFrame:
    """The table's provenance (source, file, md5, licence) and shape as a two-column table."""
    facts = {"data set": table.name, "images": f"{len(table):,}", "classes": ", ".join(table.class_names),
             "splits": ", ".join(f"{s} {int((table.frame['split'] == s).sum()):,}" for s in table.splits)
             or "none", "groups": (f"{table.frame['group'].nunique():,}" if table.has_groups else "none")}
    facts.update(table.provenance)
    return pd.DataFrame({"value": list(facts.values())}, index=pd.Index(list(facts), name="fact"))


def describe_leakage(summary: pd.DataFrame, table: SampleTable) -> str:
    """A sentence per kind of leakage, computed from :func:`summarize_leakage` output."""
    words = {"exact": "pairs of identical images", "near": "pairs of near-identical images (perceptual hash)",
             "group": "groups (patients/lesions) present in more than one split"}
    parts = []
    for kind, row in summary.iterrows():
        if kind == "group" and not table.has_groups:
            parts.append("The data has no group column, so group leakage cannot be checked.")
            continue
        parts.append(f"{int(row['cross_split'])} {words[str(kind)]} cross split boundaries; "
                     f"{int(row['within_split'])} lie within one split.")
    cross = int(summary["cross_split"].sum())
    parts.append("No leakage between splits was found." if cross == 0 else
                 f"In total {cross} findings cross split boundaries: a model can be scored on images it "
                 "(or their twins) trained on, which inflates test metrics.")
    return " ".join(parts)


def image_statistics_by_class(stats: pd.DataFrame) -> pd.DataFrame:
    """Width, height and pixel mean and spread per class (:func:`medvision.data.image_statistics`), described
    (count, mean, quartiles) with one column per class."""
    return stats.groupby("class_name")[["width", "height", "mean", "std"]].describe().T


def sizes_vary(stats: pd.DataFrame) -> bool:
    """Whether the analysed images differ in width or height."""
    return bool(stats["width"].nunique() > 1 or stats["height"].nunique() > 1)


def describe_image_sizes(stats: pd.DataFrame) -> str:
    """The analysed images' size and colour modes in one sentence (for a set whose sizes do not vary)."""
    return (f"All analysed images are {stats['width'].iloc[0]} x {stats['height'].iloc[0]} px "
            f"({', '.join(sorted(stats['mode'].unique()))}).")


def has_duplicate_pairs(report: pd.DataFrame) -> bool:
    """Whether a leakage report holds exact or near duplicate pairs (not only shared groups)."""
    return bool((report["kind"] != "group").any())


def describe_groups(groups: pd.DataFrame) -> str:
    """What the group statistics (:func:`medvision.data.group_statistics`) show, or that there is no group column."""
    if groups.empty:
        return "This data set has no group column."
    n_groups, n_images = int(groups["groups"].sum()), int(groups["images"].sum())
    several = groups[groups.index > 1]
    return (f"{n_images} images come from {n_groups} groups; {int(several['groups'].sum())} groups hold more than "
            f"one image ({int(several['images'].sum())} images). No split may cut a group:")


#: A ready ``data.group_pattern`` per common file-name layout (README, "Leakage, and what to do about it").
GROUP_PATTERNS = {
    "personNNN_... / IM-NNNN-... (Kermany chest X-ray)": r"^(NORMAL2-IM-\d+|IM-\d+|person\d+)",
    "<subject>_<frame> (video frames: ear07_0012.png)": r"^(.+)_\d+\.\w+$",
    "<patient>-<study>-<image> (P0042-S1-003.png)": r"^([^-]+)-",
}


def feature_audit(table: SampleTable, cfg: DataConfig, max_images: int = 0, seed: int = 0
                  ) -> tuple[dict | None, str]:
    """The residual-similarity audit of ``table``'s split (:func:`medvision.models.embeddings.similarity_audit`)
    on a draw of at most ``max_images`` images stratified by split and class (0: all), and a sentence: the
    verdict, or why the check could not run (no weights offline, too few images known to be distinct)."""
    if "split" not in table.frame:
        return None, "The data has no split yet, so there is nothing to compare in feature space."
    sample = table
    if max_images and len(table) > max_images:
        frame = table.frame.groupby(["split", "label"], group_keys=False).sample(
            frac=max_images / len(table), random_state=seed)
        sample = table.with_frame(frame.sort_index())
    try:
        audit = similarity_audit(sample, cfg)
    except UserError as exc:
        return None, f"The feature-space check did not run: {exc}"
    drawn = f" (on {len(sample)} of {len(table)} images, drawn by split and class)" if len(sample) < len(table) else ""
    return audit, audit["sentence"] + drawn


def group_advice(table: SampleTable, audit: dict | None) -> str:
    """When images cluster (pairs across splits, or the feature check fails) and the data has no group column:
    how to give it one from the file names, with the ready patterns."""
    if table.has_groups or not audit or audit.get("verdict") != "optimistic":
        return ""
    embedding = "`data.dedupe: embedding` clusters the images in feature space and no split cuts a cluster."
    if table.is_array:  # arrays (MedMNIST) carry no file names to read a subject from
        return f"Images of one source cluster, and this data set has no group column: {embedding}"
    patterns = "; ".join(f"{layout}: `{pattern}`" for layout, pattern in GROUP_PATTERNS.items())
    return ("Images of one source cluster, and this data set has no group column. If the file names carry the "
            "subject, `data.group_pattern` makes one (its first group is each file's group): " + patterns + ". "
            f"Otherwise {embedding[0].lower()}{embedding[1:]}")
