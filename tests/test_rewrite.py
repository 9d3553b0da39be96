"""Issue 14: the chip layout's graph rewrites change no output bit, on real audio, in TensorFlow Lite Micro.

The model rewritten here is the real YAMNet converted to full INT8 *without* rewrites (TensorFlow's plain
min/max conversion of the test data's weights: ~40 s once, cached in ~/.cache/yamflash/rewrite-plain-<inputs>).
Every rewrite, alone and combined as convert chooses them, must give the same int8 bytes as the original for
every tensor of the original graph (not only the 521 scores: every activation is made a graph output) on real
ESC-50 and demo patches, with TFLite Micro's reference kernels (tflite-micro package) and, where ../shared/sdk is,
with esp-tflite-micro's ESP-NN kernels (esp-nn's C) built by chip_arena.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from yamflash.chip import cost as est
from yamflash.chip import rewrite
from yamflash.chip import scratch as espnn_scratch
from yamflash.target import chip_arena, layout

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "host" / "yamflash"
FULL_1X1_1024 = 1_048_640  # esp_nn_get_conv_scratch_size of YAMNet's 1x1 1024->1024 conv on 3x2 positions
SDK = chip_arena.sdk_dir()


def _patches(folder: Path, files: int, per: int) -> np.ndarray:
    from yamflash.audio import list_audio, load_audio
    from yamflash.frontend import waveform_to_patches

    out = [waveform_to_patches(load_audio(f))[:per] for f in list_audio(folder)[:files]]
    return np.concatenate(out).astype(np.float32)


@pytest.fixture(scope="module")
def plain(drq_model: Path, esc50_dir: Path) -> bytes:
    """YAMNet's real weights in TensorFlow's plain full-INT8 conversion, no rewrite: the cached conversion of
    scripts/validate_rewrites.py (one cache key for the script and this test)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("validate_rewrites", ROOT / "scripts" / "validate_rewrites.py")
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script.plain_model(drq_model, esc50_dir).read_bytes()


@pytest.fixture(scope="module")
def real(esc50_dir: Path, demo_dir: Path) -> np.ndarray:
    """Real patches the conversion never saw: ESC-50 clips after the calibration ones, and the demo clips."""
    p = np.concatenate([_patches(esc50_dir, 14, 2)[16:], _patches(demo_dir, 4, 3)])
    assert len(p) >= 16
    return p


def _with_outputs(tfl: bytes, names: list[bytes]) -> bytes:
    """The same model with the tensors called ``names`` as its graph outputs (the rewrites keep the name of
    every tensor of the original graph; the pieces they add have names of their own)."""
    g = rewrite._Graph(tfl)
    index = {t.name: i for i, t in enumerate(g.g.tensors)}
    g.g.outputs = np.array([index[n] for n in names], np.int32)
    g.m.signatureDefs = None  # its output list would name the old outputs only
    return g.pack()


def _activations(tfl: bytes) -> list[bytes]:
    """Names of every op output of a graph: every activation and the scores."""
    g = rewrite._Graph(tfl)
    names = [g.g.tensors[int(op.outputs[0])].name for op in g.g.operators]
    assert len(set(names)) == len(names)
    return names


def _run_all(tfl: bytes, q: list[np.ndarray], n_out: int) -> list[list[np.ndarray]]:
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(tfl, arena_size=32 << 20)
    shape = it.get_input_details(0)["shape"]
    outs = []
    for x in q:
        it.set_input(x.reshape(shape), 0)
        it.invoke()
        outs.append([np.array(it.get_output(i)).copy() for i in range(n_out)])
    return outs


VARIANTS = {  # name: (pad, max_scratch, stem)
    "pad positions": (True, None, False),
    "split 1x1 (<= 32 KB)": (False, 32 * 1024, False),
    "split 1x1 (<= 16 KB)": (False, 16 * 1024, False),
    "stem as depthwise": (False, None, True),
    "all, as convert chooses": (True, 32 * 1024, True),
}


def test_every_rewrite_keeps_every_tensor_bit_exact_in_tflite_micro(plain, real):
    from yamflash.frontend import quantize
    from yamflash.model.tflm import MicroModel

    si, zi = MicroModel(plain).input_quant
    q = [quantize(p, si, zi) for p in real]
    acts = _activations(plain)
    ref = _run_all(_with_outputs(plain, acts), q, len(acts))
    # The check is only worth something when the tensors move with the audio.
    assert len({r[-1].tobytes() for r in ref}) > len(q) // 2
    for name, (pad, split, stem) in VARIANTS.items():
        tfl, done = rewrite.apply(plain, pad, split, stem)
        assert done, name
        got = _run_all(_with_outputs(tfl, acts), q, len(acts))
        for k, (a, b) in enumerate(zip(ref, got, strict=True)):
            for t, x, y in zip(acts, a, b, strict=True):
                assert x.dtype == y.dtype and np.array_equal(x, y), f"{name}: patch {k}, tensor {t} differs"


def test_rewrites_do_what_they_say(plain):
    before = [r.bytes for r in espnn_scratch.model_requests(plain)]
    assert max(before) == FULL_1X1_1024 and 524_352 in before  # the 1x1 1024->1024 and 512->1024 convs
    tfl, done = rewrite.apply(plain, True, 32 * 1024, True)
    kinds = [d["rewrite"] for d in done]
    assert any("depthwise" in k for k in kinds) and any("pad" in k for k in kinds) and any("split" in k for k in kinds)
    # No 1x1 conv asks ESP-NN for more than 32 KB of scratch any more; the 6-position layers run on 8.
    assert max(r.bytes for r in espnn_scratch.model_requests(tfl) if r.kind == "conv") <= 32 * 1024
    pads = next(d for d in done if "pad" in d["rewrite"])["ops"]
    assert [(p["positions"], p["padded_to"]) for p in pads] == [(6, 8), (6, 8)]
    # Concatenations stay within TFLite Micro's 10 inputs; the file grows by tables only, not by weights.
    from yamflash.model.tflite_fb import FlatModel

    fm = FlatModel(tfl)
    assert max(len(op.inputs) for op in fm.ops if op.name == "CONCATENATION") <= rewrite.MAX_CONCAT
    assert len(tfl) < len(plain) * 1.05
    assert len(fm.graph.tensors) == len({i for op in fm.ops for i in op.inputs + op.outputs})  # no orphans


def test_layout_choice_is_the_fastest_fitting_estimate(plain, real, tmp_path):
    tfl, rec = layout.choose(plain, real[:4])
    assert rec["bit_exact_check"]["identical"] is True and rec["bit_exact_check"]["patches"] == 4
    rows = [r for r in rec["candidates"] if r["board"] == "esp32s3-n16r8"]
    chosen = rec["chosen"]["esp32s3-n16r8"]
    assert chosen["invoke_ms"] == min(r["invoke_ms"] for r in rows if r["fits"])
    assert chosen["invoke_ms"] < rec["unrewritten"]["invoke_ms"] * 0.8  # the rewrites pay on the chip estimate
    # The recorded figure is the estimator's figure for the written model in that layout.
    p = tmp_path / "model.tflite"
    p.write_bytes(tfl)
    lo = next(lo for n, lo, _, _ in layout.board_layouts(layout.profiles.get("esp32s3-n16r8"), 1, 1)
              if n == chosen["layout"])
    assert est.run(est.layers_from_model(p), est.DEFAULT_GEN, lo)["ms"] == pytest.approx(chosen["invoke_ms"], abs=0.1)
    # The 2 MB quad-PSRAM board cannot hold a model copy: it keeps the memory-mapped model.
    assert rec["chosen"]["esp32s3-n8r2"]["model"] == "flash"


def test_a_rewrite_that_changed_bits_would_not_be_applied(plain, real, monkeypatch):
    def broken(tfl: bytes, max_scratch: int) -> tuple[bytes, rewrite.Applied]:
        out, a = real_split(tfl, max_scratch)
        g = rewrite._Graph(out)  # change one bias of one piece by one step: a wrong split
        t = [i for i, tt in enumerate(g.g.tensors) if tt.name.startswith(b"yf_split") and tt.name.endswith(b"/bias")]
        buf = g.m.buffers[g.g.tensors[t[-1]].buffer]  # the last layer's first piece: feeds every score
        data = np.frombuffer(bytes(buf.data), np.int32).copy()
        data += 1 << 16
        buf.data = np.frombuffer(data.tobytes(), np.uint8).copy()
        return g.pack(), a

    real_split = rewrite.split_pointwise
    monkeypatch.setattr(rewrite, "split_pointwise", broken)
    monkeypatch.setattr(layout, "CANDIDATES", ((False, None, False), (True, 32 * 1024, True)))  # 2 of 16: faster
    tfl, rec = layout.choose(plain, real[:8])
    assert rec["rewrite"] == "as converted" and rec["bit_exact_check"]["identical"] is False
    assert tfl == plain


@pytest.mark.skipif(SDK is None, reason="../shared/sdk (esp-tflite-micro v1.3.7 and esp-nn) is absent, so TensorFlow "
                    "Lite Micro with ESP-NN kernels cannot be compiled here")
def test_rewritten_model_is_bit_exact_with_esp_nn_kernels(plain, real, tmp_path):
    from yamflash.chip.inspect import inspect
    from yamflash.convert.yamnet import model_record
    from yamflash.frontend import quantize
    from yamflash.model.tflm import MicroModel

    tfl, _ = rewrite.apply(plain, True, 32 * 1024, True)
    runs = {}
    for name, model in (("plain", plain), ("rewritten", tfl)):
        (tmp_path / f"{name}.tflite").write_bytes(model)
        micro = MicroModel(model)
        rec = model_record(model, inspect(tmp_path / f"{name}.tflite"), micro, [f"c{i}" for i in range(521)], None)
        (tmp_path / name).mkdir()
        plan = chip_arena.measuring_plan(rec, model, tmp_path / name)
        so, _ = chip_arena.build_app(chip_arena.write_headers(plan, tmp_path / name / "gen"))
        it = chip_arena.ChipInterpreter(so, model, 0, chip_arena.MEASURE_PSRAM)
        assert it.init() == 0, it.err
        si, zi = micro.input_quant
        runs[name] = ([it.run_int8(quantize(p, si, zi)) for p in real[:8]], rec["arena"])
    for k, (a, b) in enumerate(zip(runs["plain"][0], runs["rewritten"][0], strict=True)):
        assert np.array_equal(a, b), f"patch {k}"
    # The chip arena measured with ESP-NN's scratch: the 1 MiB filter copy is gone.
    before, after = runs["plain"][1], runs["rewritten"][1]
    assert before["largest_scratch"] == FULL_1X1_1024 and after["largest_scratch"] <= 40 * 1024  # a depthwise's
    assert after["chip_espnn"] < before["chip_espnn"] // 3


def test_convert_applies_the_chosen_layout(converted):
    m = json.loads((converted / "model.json").read_text())
    lay = m["layout"]
    assert lay["rewrites"] and lay["bit_exact_check"]["identical"] is True
    assert lay["bit_exact_check"]["patches"] == layout.CHECK_PATCHES
    chosen = lay["chosen"]["esp32s3-n16r8"]
    assert chosen["invoke_ms"] < lay["unrewritten"]["invoke_ms"]
    assert m["arena"]["largest_scratch"] <= 40 * 1024  # measured on the written model (a depthwise's 38,160 B)
    assert layout.recorded(converted / "model.tflite") == lay
