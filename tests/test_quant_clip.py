"""Per-channel clipping of depthwise inputs (quant/clip.py) and the 16-byte buffer alignment of rewritten models.

The clip search must keep the float function, keep every int8 weight where it was (only per-channel scales
move) and never raise its own objective on the patches it saw. Cheap: random YAMNet-shaped weights, a few
patches, two deep tensors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_quantize import random_weights

pytest.importorskip("tensorflow")


def _int8(k: np.ndarray, kind: str) -> np.ndarray:
    from yamflash.quant.rounding import channel_view, grid_steps

    v = channel_view(k, kind).astype(np.float64)
    return np.rint(v / grid_steps(v)).astype(np.int64)


def test_clip_channels_keeps_the_function_and_the_int8_weights_and_lowers_its_error() -> None:
    from yamflash.quant.clip import channel_errors, clip_channels, depthwise_inputs
    from yamflash.quant.simulate import N_TENSORS, Simulator, layer_plan

    assert depthwise_inputs() == list(range(1, 26, 2))
    w = random_weights(3)
    patches = np.random.default_rng(5).normal(-3, 2, (4, 96, 64)).astype(np.float32)
    sim = Simulator(w)
    ranges = np.zeros((N_TENSORS, 2), np.float32)
    outs = next(iter(sim.activations(patches, None, list(range(N_TENSORS)))))
    for t, a in enumerate(outs):
        ranges[t] = [min(0.0, float(a.min())), float(a.max())]
    ranges[21, 1] *= 0.5  # a clipped tensor: the search has something to trade
    tensors = [21, 23]
    out, info = clip_channels(w, w, ranges, patches, log=lambda m: None, tensors=tensors)

    ref = sim.scores(patches, logits=True)
    got = Simulator(out).scores(patches, logits=True)
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3 * float(np.abs(ref).max()))
    plan = layer_plan()
    moved = False
    for t in tensors:
        for name, kind, _ in (plan[t - 1], plan[t]):
            assert np.array_equal(_int8(out.kernels[name], kind), _int8(w.kernels[name], kind)), name
            moved |= not np.allclose(out.kernels[name], w.kernels[name])
    assert moved, "no channel was rescaled: the test checks nothing"
    assert all(info["tensors"][str(t)]["error_ratio"] <= 1.0 for t in tensors)

    # its objective, recomputed: on the same quantized chain every channel of tensor 21 is at most as wrong
    one, _ = clip_channels(w, w, ranges, patches, log=lambda m: None, tensors=[21])
    name, _, stride = plan[21]
    before = channel_errors(Simulator(w), sim, ranges, 21, w.kernels[name], w.biases[name], stride, patches,
                            (1.0,))[0]
    after = channel_errors(Simulator(one), sim, ranges, 21, one.kernels[name], one.biases[name], stride,
                           patches, (1.0,))[0]
    assert np.all(after <= before * (1 + 1e-5) + 1e-9)
    assert after.sum() < before.sum()


def test_clip_channels_refuses_relu6() -> None:
    from yamflash.model.weights import YamnetWeights
    from yamflash.quant.clip import clip_channels
    from yamflash.quant.simulate import N_TENSORS

    w = random_weights()
    w6 = YamnetWeights(w.kernels, w.biases, "relu6")
    with pytest.raises(ValueError):
        clip_channels(w6, w6, np.zeros((N_TENSORS, 2), np.float32), np.zeros((1, 96, 64), np.float32))


def test_rewritten_models_keep_constant_buffers_16_byte_aligned(drq_model: Path) -> None:
    """TensorFlow's converter puts every constant buffer at a multiple of 16 bytes; the object API's plain
    round trip put model.tflite's filters at 12 mod 16. pack_model restores the alignment, data unchanged."""
    pytest.importorskip("tflite_micro")
    from yamflash.model.tflite_fb import FlatModel
    from yamflash.quant.flatbuffer import BUFFER_ALIGN, buffer_data_offsets, pack_model

    raw = drq_model.read_bytes()
    fm = FlatModel(raw)
    out = pack_model(fm)
    offsets = buffer_data_offsets(out)
    assert len(offsets) > 50  # the weights are there
    assert all(o % BUFFER_ALIGN == 0 for o in offsets.values())
    again = FlatModel(out)
    for a, b in zip(fm.model.buffers, again.model.buffers, strict=True):
        assert (a.data is None) == (b.data is None)
        if a.data is not None:
            assert bytes(a.data) == bytes(b.data)


def test_inline_buffers_brings_external_constant_data_back_in(drq_model: Path) -> None:
    """ai-edge-quantizer writes constant data after the flatbuffer (Buffer.offset/size); TFLite Micro reads only
    inline data, so the bench's baseline rows inline it first. Here a model is laid out that way by hand."""
    pytest.importorskip("tflite_micro")
    from yamflash.model.tflite_fb import FlatModel
    from yamflash.quant.flatbuffer import inline_buffers, pack_model

    fm = FlatModel(drq_model.read_bytes())
    datas = [None if b.data is None or len(b.data) == 0 else bytes(b.data) for b in fm.model.buffers]
    for b, d in zip(fm.model.buffers, datas, strict=True):
        if d is not None:
            b.data, b.offset, b.size = None, 1 << 40, len(d)  # placeholders: the same packed size as the real ones
    head = len(pack_model(fm))
    pos = head
    for b, d in zip(fm.model.buffers, datas, strict=True):
        if d is not None:
            b.offset, pos = pos, pos + len(d)
    ext = pack_model(fm) + b"".join(d for d in datas if d is not None)
    assert len(ext) == pos
    back = FlatModel(inline_buffers(ext))
    for b, d in zip(back.model.buffers, datas, strict=True):
        assert (bytes(b.data) if b.data is not None and len(b.data) else None) == d
        assert not b.offset
    assert inline_buffers(drq_model.read_bytes()) == drq_model.read_bytes()  # nothing outside: unchanged
