"""A tiny int8 model with YAMNet's interface, flashed into a virtual board, for fast validate/bench tests.

[1, 96, 64] int8 log-mel patch -> FULLY_CONNECTED -> LOGISTIC -> [1, 8] int8 scores: built directly as a
flatbuffer (no TensorFlow, milliseconds), so the tests exercise the real board path (PCM through the
frontend, patches, `bench`) without waiting for the real YAMNet conversion.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CLASSES = 8
IN_SCALE, IN_ZP = 0.05, 20  # log-mel in about [-7.4, 5.35], like the converted YAMNet's input
FC_SCALE, FC_ZP = 0.05, 0


def tiny_model(classes: int = CLASSES, seed: int = 0) -> bytes:
    """Serialize the two-op int8 model with TFLite's schema (object API)."""
    import flatbuffers
    from yamflash.model.tflite_fb import schema

    s = schema()
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (classes, 96 * 64), dtype=np.int8)
    w_scale = 2e-4
    bias = np.zeros(classes, np.int32)

    def quant(scale: float, zp: int) -> object:
        q = s.QuantizationParametersT()
        q.scale, q.zeroPoint = [scale], [zp]
        return q

    def tensor(name: str, shape: list[int], ttype: int, buf: int, q: object) -> object:
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer, t.quantization = name.encode(), shape, ttype, buf, q
        return t

    bufs = [s.BufferT() for _ in range(6)]
    bufs[2].data = w.tobytes()
    bufs[3].data = bias.tobytes()
    TT = s.TensorType
    tensors = [tensor("patch", [1, 96, 64], TT.INT8, 1, quant(IN_SCALE, IN_ZP)),
               tensor("w", [classes, 96 * 64], TT.INT8, 2, quant(w_scale, 0)),
               tensor("b", [classes], TT.INT32, 3, quant(IN_SCALE * w_scale, 0)),
               tensor("logits", [1, classes], TT.INT8, 4, quant(FC_SCALE, FC_ZP)),
               tensor("scores", [1, classes], TT.INT8, 5, quant(1 / 256, -128))]
    codes = []
    for op in (s.BuiltinOperator.FULLY_CONNECTED, s.BuiltinOperator.LOGISTIC):
        c = s.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = op, min(op, 127), 1
        codes.append(c)
    fc = s.OperatorT()
    fc.opcodeIndex, fc.inputs, fc.outputs = 0, [0, 1, 2], [3]
    fc.builtinOptionsType = s.BuiltinOptions.FullyConnectedOptions
    fc.builtinOptions = s.FullyConnectedOptionsT()
    sig = s.OperatorT()
    sig.opcodeIndex, sig.inputs, sig.outputs = 1, [3], [4]
    g = s.SubGraphT()
    g.tensors, g.inputs, g.outputs, g.operators, g.name = tensors, [0], [4], [fc, sig], b"main"
    m = s.ModelT()
    m.version, m.operatorCodes, m.subgraphs, m.buffers, m.description = 3, codes, [g], bufs, b"yamflash test"
    b = flatbuffers.Builder(0)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def model_dir(out: Path, classes: int = CLASSES) -> Path:
    """model.tflite + a model.json of schema 1 (no float weights: validate says the float check is unavailable).

    Class 0 is called "Speech" because the generated firmware watches that class by default.
    """
    from yamflash import manifest
    from yamflash.frontend import PARAMS
    from yamflash.model.tflm import arena_bytes

    data = tiny_model(classes)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.tflite").write_bytes(data)
    manifest.write(out / "model.json", {
        "schema": 1, "model": {"file": "model.tflite", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        "input": {"shape": [1, 96, 64], "dtype": "int8", "scale": IN_SCALE, "zero_point": IN_ZP,
                  "kind": "log-mel patch"},
        "output": {"shape": [1, classes], "dtype": "int8", "scale": 1 / 256, "zero_point": -128,
                   "activation": "sigmoid"},
        "labels": ["Speech"] + [f"sound {i}" for i in range(1, classes)], "arena_bytes": arena_bytes(data),
        "frontend": PARAMS.to_dict(), "ops": ["FULLY_CONNECTED", "LOGISTIC"]})
    return out


def sim_manifest(mdir: Path) -> Path:
    """The virtual board's flash images for ``mdir``, built as the HIL suite builds them (tests/hil/conftest.py)."""
    spec = importlib.util.spec_from_file_location("_hil_conftest", ROOT / "tests" / "hil" / "conftest.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return Path(mod._sim_build(mdir))


def manifest_json(path: Path) -> dict:
    return json.loads(path.read_text())


def write_wav(path: Path, seconds: float, seed: int = 0) -> Path:
    """A chirp in noise: real audio through the frontend without depending on the shared data folder."""
    import soundfile as sf

    t = np.arange(int(seconds * 16000)) / 16000.0
    x = 0.3 * np.sin(2 * np.pi * (200 + 900 * t) * t) + 0.02 * np.random.default_rng(seed).standard_normal(t.size)
    sf.write(str(path), x.astype(np.float32), 16000, subtype="PCM_16")
    return path


@dataclass
class TinySim:
    flash: Path
    model_dir: Path


@pytest.fixture(scope="session")
def tiny_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinySim]:
    """The tiny model flashed into a running virtual board (found again by --sim-flash, as a user's would be)."""
    from yamflash.board import flash as fl
    from yamflash.board.sim.process import spawn

    root = tmp_path_factory.mktemp("tiny")
    mdir = model_dir(root / "model")
    flash_file = root / "sim" / "flash.bin"
    fl.flash_sim(fl.load_plan(sim_manifest(mdir)), flash_file)
    proc = spawn(flash_file, stats_period=1.0)
    try:
        yield TinySim(flash_file, mdir)
    finally:
        proc.stop()


def cli(*args: str) -> int:
    """Run the yamflash CLI in this process (no interpreter start-up); SystemExit codes are returned."""
    from yamflash.cli import main

    try:
        return main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
