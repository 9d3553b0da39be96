"""Prove that weights read from a .tflite export were mapped onto the right layers.

The source model runs on real 0.975 s windows; our float Keras model runs on the same audio and the
scores are compared. When the source also outputs its log-mel patch (the DRQ export does), we feed that
patch to our model, so the check isolates the weights from any frontend difference.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..frontend import PARAMS, waveform_to_patches
from .fidelity import compare

MIN_COSINE = 0.97
MIN_TOP1 = 0.8


def check(source: str | Path, keras_model: Any, waveforms: list[np.ndarray]) -> dict[str, Any]:
    """Run both models on up to 16 windows; raise UserError when they disagree."""
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = tf.lite.Interpreter(model_path=str(source))
    inp = it.get_input_details()[0]
    if list(inp["shape"][-1:]) != [PARAMS.patch_samples] or inp["dtype"] != np.float32:
        return {"checked": False, "reason": f"source input {inp['shape'].tolist()} is not a float waveform"}
    it.resize_tensor_input(inp["index"], list(inp["shape"]))
    it.allocate_tensors()
    outs = it.get_output_details()
    score_out = next((o for o in outs if list(o["shape"][-1:]) == [521]), None)
    mel_out = next((o for o in outs if list(o["shape"][-2:]) == [96, 64]), None)
    if score_out is None:
        return {"checked": False, "reason": "source has no [.., 521] score output"}
    src, ours = [], []
    for wav in waveforms[:16]:
        window = np.zeros(PARAMS.patch_samples, np.float32)
        window[: min(len(wav), PARAMS.patch_samples)] = wav[: PARAMS.patch_samples]
        it.set_tensor(inp["index"], window.reshape(inp["shape"]))
        it.invoke()
        src.append(it.get_tensor(score_out["index"]).reshape(-1))
        if mel_out is not None:
            patch = it.get_tensor(mel_out["index"]).reshape(96, 64)
        else:
            patch = waveform_to_patches(window)[0]
        ours.append(keras_model(patch[None]).numpy().reshape(-1))
    metrics = compare(np.array(src), np.array(ours))
    metrics.update(checked=True, frontend="source's own log-mel" if mel_out is not None else "yamflash frontend")
    if metrics["cosine_mean"] < MIN_COSINE or metrics["top1_agreement"] < MIN_TOP1:
        raise UserError(f"the weights read from {source} do not reproduce its scores (cosine "
                        f"{metrics['cosine_mean']}, top-1 {metrics['top1_agreement']}); it is not a YAMNet export "
                        "this tool can map. Pass Google's yamnet.h5 instead.")
    return metrics
