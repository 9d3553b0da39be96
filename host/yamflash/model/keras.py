"""The float YAMNet body in Keras, log-mel patch in: [1, 96, 64] -> scores [1, 521].

BatchNorm is already folded (see ``yamflash.model.weights``), so every convolution carries a bias and a
fused ReLU, which is also what the INT8 converter wants to see.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .weights import LAYER_DEFS, YamnetWeights


def build(weights: YamnetWeights, head: Any = None, outputs: str = "scores") -> Any:
    """Build the Keras model. ``outputs``: "scores" (sigmoid), "logits", or "embeddings"."""
    import tensorflow as tf

    L = tf.keras.layers
    act = (lambda: L.ReLU(max_value=6.0)) if weights.activation == "relu6" else L.ReLU
    inp = tf.keras.Input(shape=(96, 64), batch_size=1 if outputs != "embeddings_batch" else None, name="patch")
    x = L.Reshape((96, 64, 1))(inp)
    for i, (kind, stride, filters) in enumerate(LAYER_DEFS, start=1):
        if kind == "conv":
            name = f"layer{i}/conv"
            x = L.Conv2D(filters, 3, strides=stride, padding="same", name=name.replace("/", "_"))(x)
            x = act()(x)
        else:
            dn, pn = f"layer{i}/depthwise_conv", f"layer{i}/pointwise_conv"
            x = L.DepthwiseConv2D(3, strides=stride, padding="same", name=dn.replace("/", "_"))(x)
            x = act()(x)
            x = L.Conv2D(filters, 1, padding="same", name=pn.replace("/", "_"))(x)
            x = act()(x)
    emb = L.GlobalAveragePooling2D(name="embeddings")(x)
    if outputs.startswith("embeddings"):
        model = tf.keras.Model(inp, emb)
    else:
        logits = L.Dense(weights.kernels["logits"].shape[1], name="logits")(emb)
        out = logits if outputs == "logits" else L.Activation("sigmoid", name="scores")(logits)
        model = tf.keras.Model(inp, out)
    set_weights(model, weights)
    return model


def set_weights(model: Any, weights: YamnetWeights) -> None:
    for name, kernel in weights.kernels.items():
        try:
            layer = model.get_layer(name.replace("/", "_"))
        except ValueError:
            continue
        layer.set_weights([kernel, weights.biases[name]])


def float_scores(model: Any, patches: np.ndarray, batch: int = 64) -> np.ndarray:
    """Run the float model over [n, 96, 64] patches in batches (the model is built for batch 1)."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    out = [fn(tf.constant(patches[i : i + batch])).numpy() for i in range(0, len(patches), batch)]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)
