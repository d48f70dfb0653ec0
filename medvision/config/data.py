"""Which images, which classes, which split: the data section of a run configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from medvision.config.choices import (
    DedupeMode,
    OfficialSplitPolicy,
    OnError,
    ResizeMode,
    SourceKind,
)


@dataclass(frozen=True)
class DataConfig:
    r"""Everything that decides the samples and the split. YAML, papermill and the CLI fill this.

    Attributes:
        source: ``medmnist``, ``folder`` or ``csv``.
        name: MedMNIST flag (``pneumoniamnist``), or a folder / CSV path (relative to the data root).
        size: MedMNIST file size (28, 64, 128, 224); for files, the working resolution of the cache.
        data_root: Data root; empty for ``$MEDVISION_DATA`` then the user cache dir.
        path_col: CSV column of image paths.
        label_col: CSV column of labels.
        group_col: CSV column of group ids (lesion, patient) for group-aware splits.
        group_pattern: A regular expression whose first group (or whole match) in each file's name is its
            group (a patient prefix such as ``^(person\d+|IM-\d+)``), for sets without a group column.
        split_col: CSV column of split names.
        rename: Rename classes before selecting them (``{Chornic: Chronic}``: a spelling of the folder on disk
            to the name the configuration uses; names not present are ignored).
        classes: Keep only these classes, in this order (empty: all).
        min_per_class: Drop classes with fewer images (reported).
        ratios: Train/val/test fractions for sets without an official split.
        val_fraction: Fraction of train moved to validation for sets with only train/test.
        min_val: An official validation split with fewer images (Kaggle's chest X-ray ``val/`` holds 16) is
            merged into train and a validation split is carved from train instead (reported).
        seed: Split seed.
        manifest: A saved split manifest to reload instead of splitting.
        resize: ``squash``, ``crop`` or ``pad`` for non-square files.
        on_error: ``raise`` or ``skip`` bad image files.
        dedupe: ``none``, ``exact`` (identical pixels), ``near`` (perceptual hash within ``near_distance``) or
            ``embedding`` (``near``, plus mutual nearest neighbours in a pretrained backbone's feature space
            above a threshold derived from the data: frames of one ear or lesion that pHash misses):
            duplicates, together with the ``group`` column, form clusters that no split may cut
            (:mod:`medvision.data.dedupe`; :func:`medvision.data.load_data` applies it).
        near_distance: Largest pHash distance (bits of 64) of a near duplicate.
        embedding_model: The timm backbone whose ImageNet features ``dedupe: embedding`` and the residual-
            similarity audit compare (weights as ``pretrained: auto`` finds them; never a random network).
        embedding_size: Its input size.
        embedding_threshold: Cosine similarity of a feature-space near duplicate; 0 derives it from the data
            (:func:`medvision.data.similarity.derive_threshold`: the 99% quantile of each image's highest
            similarity to an image known to be distinct — another class, or another group).
        official_split: With ``dedupe``, what to do with an official split: ``keep`` it (the leakage is
            reported), ``drop_duplicates`` (drop evaluation images whose cluster reaches an earlier split) or
            ``resplit`` (split the whole set anew, cluster by cluster).
    """

    source: SourceKind = "medmnist"
    name: str = "pneumoniamnist"
    size: int = 28
    data_root: str = ""
    path_col: str = "path"
    label_col: str = "label"
    group_col: str = ""
    group_pattern: str = ""
    split_col: str = ""
    rename: dict = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    min_per_class: int = 0
    ratios: tuple[float, float, float] = (0.70, 0.15, 0.15)
    val_fraction: float = 0.15
    min_val: int = 0
    seed: int = 0
    manifest: str = ""
    resize: ResizeMode = "squash"
    on_error: OnError = "raise"
    dedupe: DedupeMode = "none"
    near_distance: int = 4
    embedding_model: str = "tf_efficientnet_lite0"
    embedding_size: int = 128
    embedding_threshold: float = 0.0
    official_split: OfficialSplitPolicy = "keep"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"], d["ratios"] = list(self.classes), list(self.ratios)
        return d
