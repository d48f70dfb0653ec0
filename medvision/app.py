"""Streamlit upload app for an exported bundle: ``medvision app BUNDLE [--webhook URL] [--send-image]``.

Upload one or more images; see the predicted class, the calibrated confidence, the top-k probabilities, a
Grad-CAM overlay and the disclaimer. With a webhook, each prediction is POSTed as JSON in the background (the
image only with ``--send-image``). Settings may also come from ``MEDVISION_BUNDLE``, ``MEDVISION_WEBHOOK`` and
``MEDVISION_WEBHOOK_SEND_IMAGE=1`` (used by the tests).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

import pandas as pd
import streamlit as st

from medvision.data.decode import IMAGE_EXTENSIONS
from medvision.data.errors import ImageLoadError
from medvision.deploy.inference import Predictor, load_input
from medvision.deploy.webhook import WebhookSender


def app_settings(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="medvision app")
    parser.add_argument("--bundle", default=os.environ.get("MEDVISION_BUNDLE", ""))
    parser.add_argument("--webhook", default=os.environ.get("MEDVISION_WEBHOOK", ""))
    parser.add_argument("--send-image", action="store_true",
                        default=os.environ.get("MEDVISION_WEBHOOK_SEND_IMAGE", "") == "1")
    args, _ = parser.parse_known_args(list(argv))
    return args


@st.cache_resource(show_spinner="Loading the model bundle…")
def get_predictor(bundle: str) -> Predictor:
    return Predictor.from_bundle(bundle)


@st.cache_resource
def get_sender(url: str, send_image: bool) -> WebhookSender:
    return WebhookSender(url, send_image=send_image)


def model_summary(predictor: Predictor) -> dict:
    meta = predictor.bundle.meta
    return {"architecture": meta["architecture"], "classes": list(predictor.class_names),
            "data": meta.get("data", {}).get("name", ""), "strategy": meta.get("training", {}).get("strategy", ""),
            "weights_sha256": meta["files"]["model.safetensors"]}


def sidebar(predictor: Predictor) -> tuple[int, bool, bool]:
    meta = predictor.bundle.meta
    test = meta.get("metrics", {}).get("test", {})
    st.sidebar.header("Model")
    st.sidebar.markdown(
        f"`{meta['architecture']}` · {len(predictor.class_names)} classes · trained on "
        f"{meta.get('data', {}).get('name', 'unknown data')} ({meta.get('training', {}).get('strategy', '?')})")
    if test:
        st.sidebar.markdown(f"Test accuracy {test.get('accuracy', float('nan')):.3f}, macro-F1 "
                            f"{test.get('macro_f1', float('nan')):.3f}, AUROC {test.get('auroc', float('nan')):.3f}")
    fit = meta.get("temperature_fit", {})
    st.sidebar.markdown(f"Temperature {predictor.temperature:.3f} (fitted on validation)" if fit.get("used", True)
                        else f"Temperature kept at 1: {fit['reason']}")
    top_k = st.sidebar.slider("Top-k", 1, len(predictor.class_names), min(3, len(predictor.class_names)))
    abst = meta["abstention"]
    threshold = float(abst["threshold"])
    abstain = st.sidebar.checkbox(f"Abstain below {threshold:.2f} confidence", value=True,
                                  help=f"Chosen on validation to reach the target accuracy {abst['target_accuracy']:.0%}"
                                  if abst.get("fitted", True) else f"Threshold {abst['reason']}")
    cam = st.sidebar.checkbox("Grad-CAM overlay", value=True)
    return top_k, abstain, cam


def show_prediction(predictor: Predictor, upload, top_k: int, abstain: bool, cam: bool,
                    sender: WebhookSender | None) -> None:
    st.subheader(upload.name)
    try:
        image, _ = load_input(upload)
    except ImageLoadError as exc:
        st.error(f"Cannot read this file: {exc}")
        return
    pred = predictor.predict(image, top_k=top_k)  # the cached predictor is shared: abstention is applied here
    threshold = float(predictor.bundle.meta["abstention"]["threshold"]) if abstain else None
    pred = replace(pred, source=upload.name, threshold=threshold,
                   abstained=threshold is not None and pred.confidence < threshold)
    left, right = st.columns(2)
    left.image(image, caption=f"{upload.name} ({image.shape[1]}x{image.shape[0]})", width="stretch")
    if cam:
        overlay, _ = predictor.explain(image, pred.index)
        right.image(overlay, caption=f"Grad-CAM for '{pred.label}'", width="stretch")
    st.markdown(f"**Prediction: {pred.label}** — calibrated confidence {pred.confidence:.1%}")
    if pred.abstained:
        st.warning(f"Confidence below {pred.threshold:.2f}: the model abstains; refer this case to a person.")
    if pred.description:
        st.caption(pred.description)
    chart = pd.DataFrame({"class": [c for c, _ in pred.top_k], "probability": [p for _, p in pred.top_k]})
    st.bar_chart(chart, x="class", y="probability", horizontal=True)
    if sender is not None:
        sender.submit(pred.to_dict(), model_summary(predictor), image)
        st.caption("Prediction sent to the webhook" + (" with the image." if sender.send_image else
                                                        " (without the image)."))


def main(argv: Sequence[str]) -> None:
    settings = app_settings(argv)
    st.set_page_config(page_title="medvision", layout="wide")
    st.title("medvision — image classifier")
    if not settings.bundle:
        st.error("No bundle given: run `medvision app BUNDLE` (or set MEDVISION_BUNDLE).")
        return
    try:
        predictor = get_predictor(settings.bundle)
    except (OSError, ValueError) as exc:
        st.error(f"Cannot load the bundle: {exc}")
        return
    st.warning(predictor.disclaimer, icon="⚠️")
    top_k, abstain, cam = sidebar(predictor)
    sender = get_sender(settings.webhook, settings.send_image) if settings.webhook else None
    uploads = st.file_uploader("Upload images", accept_multiple_files=True,
                               type=sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
    for upload in uploads or []:
        show_prediction(predictor, upload, top_k, abstain, cam, sender)


main(sys.argv[1:])
