"""Metrics layer: classification metrics, calibration and imbalance corrections over logits and targets.

May import ``core`` and ``config``; never data loading, models or training.
"""
