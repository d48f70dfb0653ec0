"""Data layer: sources (MedMNIST, image folders, CSV) → one :class:`SampleTable` → splits → tensor cache.

May import ``medvision.core`` and ``medvision.config``; never a model (code that needs one lives in ``train/``).
"""

from medvision.data.augment import augment_batch, normalize
from medvision.data.cache import TensorCache, build_tensor_cache, load_pixels
from medvision.data.classes import (
    class_weights,
    drop_rare_classes,
    remap_labels,
    sample_weights,
    select_classes,
    weighted_sampler,
)
from medvision.data.decode import read_image
from medvision.data.errors import DataError, DataNotFoundError, ImageLoadError
from medvision.data.leakage import leakage_report, summarize_leakage
from medvision.data.load import load_data
from medvision.data.loader import TensorLoader, normalization_from_model
from medvision.data.medmnist_files import load_medmnist
from medvision.data.paths import resolve_data_root
from medvision.data.pipeline import load_cached_split
from medvision.data.sources import load_csv, load_image_folder
from medvision.data.splits import apply_manifest, carve_validation, save_manifest, split_table
from medvision.data.stats import group_statistics, image_statistics
from medvision.data.table import SampleTable

__all__ = [
    "DataError", "DataNotFoundError", "ImageLoadError", "SampleTable",
    "TensorCache", "TensorLoader", "apply_manifest", "augment_batch", "build_tensor_cache",
    "carve_validation", "class_weights", "drop_rare_classes", "group_statistics", "image_statistics",
    "leakage_report", "load_cached_split", "load_csv", "load_data", "load_image_folder", "load_medmnist", "load_pixels",
    "normalization_from_model", "normalize", "read_image", "remap_labels", "resolve_data_root",
    "sample_weights", "save_manifest", "select_classes", "split_table", "summarize_leakage",
    "weighted_sampler",
]
