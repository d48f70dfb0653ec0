"""Metrics layer: classification metrics, calibration and imbalance corrections over logits and targets.

May import the layers below it (``core``, ``config``, ``data``); it needs no model and trains nothing.
"""
