"""YAMNet's weights, from Google's ``yamnet.h5`` or from any YAMNet TFLite export, in one folded form.

Every source is reduced to the same dictionary: per layer a kernel in Keras layout and a bias, with
BatchNorm folded in (YAMNet's BN has no scale, epsilon 1e-4). ``yamflash.model.keras`` builds the float
network from it; conversion never depends on where the weights came from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError

# (kind, stride, filters) for YAMNet's 14 layers, as in tensorflow/models research/audioset/yamnet.
LAYER_DEFS: list[tuple[str, int, int]] = [
    ("conv", 2, 32), ("sep", 1, 64), ("sep", 2, 128), ("sep", 1, 128), ("sep", 2, 256), ("sep", 1, 256),
    ("sep", 2, 512), ("sep", 1, 512), ("sep", 1, 512), ("sep", 1, 512), ("sep", 1, 512), ("sep", 1, 512),
    ("sep", 2, 1024), ("sep", 1, 1024),
]
NUM_CLASSES = 521
EMBEDDING = 1024
BN_EPSILON = 1e-4
YAMNET_H5_URL = "https://storage.googleapis.com/audioset/yamnet.h5"


def layer_names() -> list[str]:
    """Names of the weighted layers in order: conv, then depthwise/pointwise pairs, then logits."""
    names = ["layer1/conv"]
    for i in range(2, len(LAYER_DEFS) + 1):
        names += [f"layer{i}/depthwise_conv", f"layer{i}/pointwise_conv"]
    return names + ["logits"]


def expected_shapes(num_classes: int = NUM_CLASSES) -> dict[str, tuple[int, ...]]:
    """Keras kernel shapes: conv HWIO, depthwise HWC1, pointwise 11IO, dense IO."""
    shapes: dict[str, tuple[int, ...]] = {"layer1/conv": (3, 3, 1, 32)}
    cin = 32
    for i, (_, _, f) in enumerate(LAYER_DEFS[1:], start=2):
        shapes[f"layer{i}/depthwise_conv"] = (3, 3, cin, 1)
        shapes[f"layer{i}/pointwise_conv"] = (1, 1, cin, f)
        cin = f
    shapes["logits"] = (EMBEDDING, num_classes)
    return shapes


@dataclass
class YamnetWeights:
    kernels: dict[str, np.ndarray]
    biases: dict[str, np.ndarray]
    activation: str = "relu"  # "relu" for yamnet.h5, "relu6" for Google's retrained TF Hub lite model
    source: dict = field(default_factory=dict)

    def validate(self) -> None:
        classes = self.kernels["logits"].shape[1] if "logits" in self.kernels else NUM_CLASSES
        for name, shape in expected_shapes(int(classes)).items():
            if name not in self.kernels:
                raise UserError(f"weights lack layer {name}; is this a YAMNet model?")
            got = tuple(self.kernels[name].shape)
            if got != shape:
                raise UserError(f"weights of {name} have shape {got}, YAMNet needs {shape}; "
                                "pass Google's yamnet.h5 or a YAMNet .tflite export.")
            want_bias = (shape[2],) if "depthwise" in name else (shape[-1],)
            if tuple(self.biases[name].shape) != want_bias:
                raise UserError(f"bias of {name} has shape {self.biases[name].shape}; the weights are not YAMNet's.")
            if not np.all(np.isfinite(self.kernels[name])):
                raise UserError(f"weights of {name} contain NaN or infinity; the weight file is damaged.")

    def parameter_count(self) -> int:
        return int(sum(k.size for k in self.kernels.values()) + sum(b.size for b in self.biases.values()))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_weights(path: str | Path) -> YamnetWeights:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist; pass --weights yamnet.h5 or a YAMNet .tflite.")
    head = path.read_bytes()[:8]
    if head[4:8] == b"TFL3":
        w = from_tflite(path)
    elif head.startswith(b"\x89HDF"):
        w = from_h5(path)
    else:
        raise UserError(f"{path} is neither a Keras .h5 nor a .tflite file; pass Google's yamnet.h5 "
                        "or a YAMNet .tflite export.")
    w.source.update({"path": str(path), "sha256": sha256_file(path), "bytes": path.stat().st_size})
    w.validate()
    return w


def from_tflite(path: str | Path) -> YamnetWeights:
    """Dequantize the body's constant tensors: CONV_2D, DEPTHWISE_CONV_2D and the last FULLY_CONNECTED."""
    from .tflite_fb import FlatModel

    fm = FlatModel.load(path)
    body = [op for op in fm.ops if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    fcs = [op for op in fm.ops if op.name == "FULLY_CONNECTED"]
    names = layer_names()
    if len(body) != len(names) - 1 or not fcs:
        raise UserError(f"{path} has {len(body)} convolutions, YAMNet has {len(names) - 1}; "
                        "it is not a YAMNet export.")
    kernels: dict[str, np.ndarray] = {}
    biases: dict[str, np.ndarray] = {}
    acts = set()
    for name, op in zip(names[:-1], body, strict=True):
        k = fm.constant(op.inputs[1])
        b = fm.constant(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        if k is None:
            raise UserError(f"{path}: the kernel of {name} is not a constant; cannot read its weights.")
        k = np.transpose(k, (1, 2, 3, 0))  # conv OHWI -> HWIO; depthwise 1HWC -> HWC1
        kernels[name] = k
        biases[name] = b if b is not None else np.zeros(k.shape[-1] if op.name == "CONV_2D" else k.shape[2], np.float32)
        acts.add(fm.fused_activation(op))
    fc = fcs[-1]
    k = fm.constant(fc.inputs[1])
    if k is None:
        raise UserError(f"{path}: the classifier's weights are not constant; cannot read them.")
    kernels["logits"] = k.T
    has_bias = len(fc.inputs) > 2 and fc.inputs[2] >= 0
    biases["logits"] = fm.constant(fc.inputs[2]) if has_bias else np.zeros(k.shape[0], np.float32)
    activation = "relu6" if acts == {"RELU6"} else "relu"
    if acts - {"RELU", "RELU6"}:
        raise UserError(f"{path}: unexpected activations {sorted(acts)} in the convolutions; not a YAMNet export.")
    return YamnetWeights(kernels, biases, activation, {"format": "tflite", "bn_folded": True})


def from_h5(path: str | Path) -> YamnetWeights:
    """Google's ``yamnet.h5`` (Keras ``save_weights``): fold each BatchNorm into its convolution."""
    import h5py

    found: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:
            def visit(name: str, obj: object) -> None:
                if isinstance(obj, h5py.Dataset):
                    found[name] = np.asarray(obj, np.float32)
            f.visititems(visit)
    except OSError as exc:
        raise UserError(f"cannot read {path} as HDF5 ({exc}); the file is damaged, download it again.") from None

    kernels: dict[str, np.ndarray] = {}
    biases: dict[str, np.ndarray] = {}
    for name in layer_names()[:-1]:
        leaf = "depthwise_kernel" if "depthwise" in name else "kernel"
        k = _h5_get(found, name, leaf)
        beta = _h5_get(found, f"{name}/bn", "beta")
        mean = _h5_get(found, f"{name}/bn", "moving_mean")
        var = _h5_get(found, f"{name}/bn", "moving_variance")
        gamma = _h5_get(found, f"{name}/bn", "gamma", required=False)
        inv = (gamma if gamma is not None else 1.0) / np.sqrt(var + BN_EPSILON)
        if "depthwise" in name:
            kernels[name] = (k * inv[None, None, :, None]).astype(np.float32)
        else:
            kernels[name] = (k * inv[None, None, None, :]).astype(np.float32)
        biases[name] = (beta - mean * inv).astype(np.float32)
    dense = [k for k, v in found.items()
             if k.split("/")[-1].startswith("kernel") and v.shape == (EMBEDDING, NUM_CLASSES)]
    if not dense:
        raise UserError(f"{path} has no [1024, 521] classifier kernel; it is not yamnet.h5.")
    kernels["logits"] = found[dense[0]]
    bias_key = dense[0].replace("kernel", "bias")
    if bias_key not in found:
        raise UserError(f"{path} has no classifier bias; it is not yamnet.h5.")
    biases["logits"] = found[bias_key]
    return YamnetWeights(kernels, biases, "relu", {"format": "keras-h5", "bn_folded": False})


def _h5_get(found: dict[str, np.ndarray], layer: str, leaf: str, required: bool = True) -> np.ndarray | None:
    """The dataset named ``.../<layer>/<leaf>[:0]`` but not one of a deeper layer (``<layer>/bn/...``)."""
    for key, value in found.items():
        parts = key.split("/")
        if parts[-1].split(":")[0] != leaf:
            continue
        parent = "/".join(parts[:-1])
        if parent.endswith(layer) and (len(parent) == len(layer) or parent[-len(layer) - 1] == "/"):
            return value
    if required:
        raise UserError(f"weights file lacks {layer}/{leaf}; it is not Google's yamnet.h5.")
    return None
