"""Every named choice a configuration can make, declared once.

Each choice is a ``Literal`` type (what the dataclasses' fields are annotated with, so YAML, papermill and the
CLI are checked against it) and the tuple of its names (what error messages, registries and the CLI's
``choices=`` list). Registries in the layers above (schedulers, losses, TTA wrappers, strategies) are checked
against these tuples by ``tests/config/test_choices.py``.
"""

from __future__ import annotations

from typing import Literal, get_args

SourceKind = Literal["medmnist", "folder", "csv"]
ResizeMode = Literal["squash", "crop", "pad"]
OnError = Literal["raise", "skip"]
DedupeMode = Literal["none", "exact", "near", "embedding"]
OfficialSplitPolicy = Literal["keep", "drop_duplicates", "resplit"]
Scheduler = Literal["cosine", "cosine_restarts", "onecycle", "plateau", "none"]
LossName = Literal["ce", "weighted_ce", "focal"]
AmpMode = Literal["auto", "bf16", "fp16", "off"]
TTAMode = Literal["none", "hflip", "auto"]  # auto: the better of the scored modes on validation
ScoredTTA = Literal["none", "hflip"]  # what a model is scored with
StrategyName = Literal["head_only", "last_k", "full", "two_phase", "discriminative"]
AugmentPreset = Literal["none", "flip", "default", "medium"]
Backend = Literal["auto", "torch", "onnx"]
Tracker = Literal["mlflow"]

SOURCES: tuple[str, ...] = get_args(SourceKind)
RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)
ON_ERROR: tuple[str, ...] = get_args(OnError)
DEDUPE_MODES: tuple[str, ...] = get_args(DedupeMode)
OFFICIAL_SPLIT_POLICIES: tuple[str, ...] = get_args(OfficialSplitPolicy)
SCHEDULERS: tuple[str, ...] = get_args(Scheduler)
LOSSES: tuple[str, ...] = get_args(LossName)
AMP_MODES: tuple[str, ...] = get_args(AmpMode)
TTA_MODES: tuple[str, ...] = get_args(TTAMode)
SCORED_TTA_MODES: tuple[str, ...] = get_args(ScoredTTA)
STRATEGY_NAMES: tuple[str, ...] = get_args(StrategyName)
AUGMENT_PRESET_NAMES: tuple[str, ...] = get_args(AugmentPreset)
BACKENDS: tuple[str, ...] = get_args(Backend)
TRACKERS: tuple[str, ...] = get_args(Tracker)

#: The four metrics every table of the book reports, in this order. ``accuracy`` is plain (micro) accuracy and
#: ``balanced_accuracy`` the mean per-class recall (torchmetrics' macro ``multiclass_accuracy``).
HEADLINE_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_f1", "auroc")
