"""Evaluation layer: a finished run scored on its test split, external validation, published anchors.

May import every layer up to ``train``.
"""
