"""Detections on real audio: the baby-cry clip raises one, silence and white noise raise none."""

from __future__ import annotations

import numpy as np
import pytest
from yamflash.board.client import count_patches, to_pcm16

pytestmark = pytest.mark.hil
BABY = "Baby cry, infant cry"


@pytest.fixture()
def watch_baby(board, hil_model):
    cls = hil_model["labels"].index(BABY)
    board.detector(classes=[cls], threshold=0.3, window=2, min_count=1, refractory_ms=2000)
    return cls


def test_baby_cry_detected_in_time(board, watch_baby, demo_dir, request, reference, hil_model):
    within = request.config.getoption("--hil-detect-within-s")
    mark = board.mark()
    out = board.infer_wav(demo_dir / "baby_5000ms.wav")
    dets = [e for e in board.of_type("det", mark) if e["cls"] == watch_baby]
    so, zo = reference.output_quant
    best = float(((out["scores"][:, watch_baby].astype(np.float32) - zo) * so).max())
    assert dets, (f"no '{BABY}' detection on the baby-cry clip: the board's best score was {best:.3f} (threshold "
                  f"0.3); the model's fidelity to float YAMNet is top-1 "
                  f"{hil_model['fidelity'].get('top1_agreement')}; if that is low, the conversion is at fault")
    assert dets[0]["label"] == BABY
    assert dets[0]["ts_ms"] <= within * 1000, f"first detection at {dets[0]['ts_ms']} ms of audio"


@pytest.mark.parametrize("kind", ["silence", "white noise"])
def test_no_detection_on_silence_or_noise(board, watch_baby, kind):
    rng = np.random.default_rng(1)
    x = np.zeros(16000 * 3) if kind == "silence" else rng.normal(0, 0.1, 16000 * 3)
    mark = board.mark()
    out = board.infer_pcm(to_pcm16(x))
    assert len(out["scores"]) == count_patches(len(x)) == 5
    assert board.of_type("det", mark) == []
