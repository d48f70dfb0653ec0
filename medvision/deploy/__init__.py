"""Deployment layer: the portable bundle, its export, the Predictor and the webhook.

May import every layer up to ``evaluate``; prediction (``deploy.inference`` and what it imports) never imports
``train`` or ``evaluate``.
"""
