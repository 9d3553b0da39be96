"""The board's interpreter and frontend against the host reference, on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
from yamflash.board.client import to_pcm16
from yamflash.frontend import log_mel, patches, quantize

pytestmark = pytest.mark.hil


def test_info_describes_the_flashed_model(board, hil_model):
    info = board.info()
    assert info["model_sha256"] == hil_model["model"]["sha256"]
    assert info["proto"] == 1 and info["labels"] == len(hil_model["labels"])
    assert info["input"]["zp"] == hil_model["input"]["zero_point"]
    assert info["clock"] in ("chip", "host")


def test_outputs_bit_exact_with_host_tflm(board, reference, demo_dir):
    """Random patches and a real one: the board's int8 output equals TFLite Micro's on the host."""
    rng = np.random.default_rng(4)
    inputs = [rng.integers(-128, 128, (96, 64), dtype=np.int8) for _ in range(2)]
    from yamflash.audio import load_audio

    pcm = to_pcm16(load_audio(demo_dir / "dog_975ms.wav"))
    si, zi = reference.input_quant
    inputs.append(quantize(patches(log_mel(pcm.astype(np.float32) / np.float32(32768)))[0], si, zi))
    for q in inputs:
        got = board.infer_patch(q)
        want = reference.run_int8(q)
        diff = np.abs(got.astype(int) - want.astype(int))
        # bit-exact on the virtual board (same kernels); ESP-NN may round 1 LSB differently on the chip
        limit = 0 if board.info()["clock"] == "host" else 1
        assert diff.max() <= limit, f"max |diff| {diff.max()} LSB over {np.count_nonzero(diff)} outputs"


def test_frontend_patches_match_host_frontend(board, reference, demo_dir):
    """PCM in: the board's own int8 patches equal the host frontend's for >= 99.9 % of values."""
    from yamflash.audio import load_audio

    pcm = to_pcm16(load_audio(demo_dir / "speech_whistling2.wav"))[: 16000 * 3]
    got = board.infer_pcm(pcm, patches=True)["patches"]
    si, zi = reference.input_quant
    want = quantize(patches(log_mel(pcm.astype(np.float32) / np.float32(32768))), si, zi)
    assert got.shape == want.shape and len(got) >= 4
    equal = float(np.mean(got == want))
    assert equal >= 0.999, f"only {equal:.4%} of patch values equal; max |diff| {np.abs(got - want.astype(int)).max()}"
