"""Weights from every supported source land on the right layers (BatchNorm folded correctly)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from yamflash.errors import UserError
from yamflash.model import weights

tf = pytest.importorskip("tensorflow")


def _unfolded_yamnet(rng: np.random.Generator) -> tuple[object, dict[str, np.ndarray]]:
    """YAMNet exactly as tensorflow/models defines it (BN without scale, eps 1e-4), random weights."""
    L = tf.keras.layers
    arrays: dict[str, np.ndarray] = {}
    inp = tf.keras.Input((96, 64), batch_size=1)
    x = L.Reshape((96, 64, 1))(inp)
    layers_with_names = []

    def bn(name: str, c: int) -> object:
        layer = L.BatchNormalization(center=True, scale=False, epsilon=1e-4, name=name.replace("/", "_"))
        arrays[f"{name}/beta"] = rng.normal(0, 0.1, c).astype(np.float32)
        arrays[f"{name}/moving_mean"] = rng.normal(0, 0.1, c).astype(np.float32)
        arrays[f"{name}/moving_variance"] = rng.uniform(0.5, 2.0, c).astype(np.float32)
        layers_with_names.append((layer, name, ["beta", "moving_mean", "moving_variance"]))
        return layer

    cin = 1
    for i, (kind, stride, f) in enumerate(weights.LAYER_DEFS, start=1):
        if kind == "conv":
            conv = L.Conv2D(f, 3, strides=stride, padding="same", use_bias=False, name=f"l{i}c")
            arrays[f"layer{i}/conv/kernel"] = rng.normal(0, 0.3, (3, 3, cin, f)).astype(np.float32)
            layers_with_names.append((conv, f"layer{i}/conv", ["kernel"]))
            x = L.ReLU()(bn(f"layer{i}/conv/bn", f)(conv(x)))
        else:
            dw = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"l{i}d")
            arrays[f"layer{i}/depthwise_conv/depthwise_kernel"] = rng.normal(0, 0.3, (3, 3, cin, 1)).astype(np.float32)
            layers_with_names.append((dw, f"layer{i}/depthwise_conv", ["depthwise_kernel"]))
            x = L.ReLU()(bn(f"layer{i}/depthwise_conv/bn", cin)(dw(x)))
            pw = L.Conv2D(f, 1, use_bias=False, name=f"l{i}p")
            pw_kernel = rng.normal(0, 1.0 / np.sqrt(cin), (1, 1, cin, f))
            arrays[f"layer{i}/pointwise_conv/kernel"] = pw_kernel.astype(np.float32)
            layers_with_names.append((pw, f"layer{i}/pointwise_conv", ["kernel"]))
            x = L.ReLU()(bn(f"layer{i}/pointwise_conv/bn", f)(pw(x)))
        cin = f
    dense = L.Dense(521, name="dense")
    arrays["dense/kernel"] = rng.normal(0, 0.05, (1024, 521)).astype(np.float32)
    arrays["dense/bias"] = rng.normal(0, 0.1, 521).astype(np.float32)
    out = L.Activation("sigmoid")(dense(L.GlobalAveragePooling2D()(x)))
    model = tf.keras.Model(inp, out)
    for layer, name, leaves in layers_with_names:
        layer.set_weights([arrays[f"{name}/{leaf}"] for leaf in leaves])
    dense.set_weights([arrays["dense/kernel"], arrays["dense/bias"]])
    return model, arrays


def _write_keras2_h5(path, arrays: dict[str, np.ndarray]) -> None:
    """The layout Keras 2's save_weights gives yamnet.h5: group per layer, datasets named '<layer>/<w>:0'."""
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            layer = key.rsplit("/", 1)[0]
            f.create_dataset(f"{layer}/{key}:0", data=value)


def test_h5_batchnorm_folding_reproduces_unfolded_model(tmp_path):
    from yamflash.model.keras import build

    reference, arrays = _unfolded_yamnet(np.random.default_rng(1))
    _write_keras2_h5(tmp_path / "yamnet.h5", arrays)
    w = weights.load_weights(tmp_path / "yamnet.h5")
    assert w.source["format"] == "keras-h5" and w.activation == "relu"
    patch = np.random.default_rng(2).normal(-4, 2, (1, 96, 64)).astype(np.float32)
    ours = build(w)(patch).numpy()
    ref = reference(patch).numpy()
    assert np.abs(ours - ref).max() < 1e-4


def test_h5_with_missing_layer_is_a_clear_error(tmp_path):
    _, arrays = _unfolded_yamnet(np.random.default_rng(1))
    del arrays["layer7/pointwise_conv/kernel"]
    _write_keras2_h5(tmp_path / "bad.h5", arrays)
    with pytest.raises(UserError, match="layer7/pointwise_conv/kernel"):
        weights.load_weights(tmp_path / "bad.h5")


def test_wrong_shape_is_rejected(drq_model):
    w = weights.load_weights(drq_model)
    w.kernels["layer9/pointwise_conv"] = w.kernels["layer9/pointwise_conv"][..., :100]
    with pytest.raises(UserError, match="shape"):
        w.validate()


def test_drq_export_reproduces_its_scores(drq_model, esc50_dir):
    from yamflash.audio import list_audio, load_audio
    from yamflash.model.keras import build
    from yamflash.model.mapping_check import check

    w = weights.load_weights(drq_model)
    assert w.activation == "relu" and w.parameter_count() == 3_729_481
    m = check(drq_model, build(w), [load_audio(f) for f in list_audio(esc50_dir)[:8]])
    assert m["checked"] and m["frontend"] == "source's own log-mel"
    assert m["cosine_mean"] > 0.999 and m["top1_agreement"] == 1.0


def test_tf_hub_lite_model_maps_with_relu6(hub_model, esc50_dir):
    from yamflash.audio import list_audio, load_audio
    from yamflash.model.keras import build
    from yamflash.model.mapping_check import check

    w = weights.load_weights(hub_model)
    assert w.activation == "relu6"
    m = check(hub_model, build(w), [load_audio(f) for f in list_audio(esc50_dir)[:8]])
    assert m["cosine_mean"] > 0.98
