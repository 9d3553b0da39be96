"""Float YAMNet -> full-INT8 TFLite (int8 patch in, int8 sigmoid scores out), builtin ops only.

This is the plain post-training recipe: TensorFlow's converter with per-channel weights and min/max
activation ranges from the calibration patches. See INT8-FINDINGS for why it is not enough on real audio.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .weights import YamnetWeights

RECIPE = "ptq-minmax"


def convert_int8(weights: YamnetWeights, calib: np.ndarray,
                 log: Callable[[str], None] = print) -> tuple[bytes, dict[str, Any]]:
    """Return (tflite bytes, recipe description for the manifest)."""
    import tensorflow as tf

    from .model import build

    model = build(weights)

    def representative() -> Any:
        for p in calib:
            yield [p[None].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    log(f"calibrating on {len(calib)} patches and converting")
    return bytes(conv.convert()), {"recipe": RECIPE, "calibration_patches": int(len(calib))}
