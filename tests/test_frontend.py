"""The numpy frontend equals YAMNet's own (tf.signal) and the golden log-mel file."""

from __future__ import annotations

import numpy as np
import pytest
from yamflash import frontend
from yamflash.audio import load_audio


def test_matches_golden_logmel(demo_dir):
    wav = load_audio(demo_dir / "speech_whistling2.wav")
    golden = np.load(demo_dir / "speech_whistling2_logmel_496x64.npy")
    ours = frontend.log_mel(wav)
    assert ours.shape == (490, 64)
    assert np.abs(ours - golden[:490]).max() < 2e-3


def test_matches_tf_signal(demo_dir):
    tf = pytest.importorskip("tensorflow")
    wav = load_audio(demo_dir / "baby_5000ms.wav")
    stft = tf.abs(tf.signal.stft(wav, 400, 160, 512, window_fn=tf.signal.hann_window)).numpy()
    mel = tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 125.0, 7500.0).numpy()
    ref = np.log(stft @ mel + 0.001)
    assert np.abs(frontend.mel_matrix() - mel).max() < 2e-5
    assert np.abs(frontend.log_mel(wav) - ref).max() < 1e-3


def test_patching_follows_yamnet_padding():
    p = frontend.PARAMS
    assert p.patch_samples == 15600 and p.patch_hop_samples == 7680
    assert frontend.waveform_to_patches(np.zeros(100, np.float32)).shape == (1, 96, 64)
    assert frontend.waveform_to_patches(np.zeros(15600 + 1, np.float32)).shape == (2, 96, 64)
    assert frontend.waveform_to_patches(np.zeros(80000, np.float32)).shape == (10, 96, 64)


def test_sparse_mel_reconstructs_matrix():
    m = frontend.mel_matrix()
    rebuilt = np.zeros_like(m)
    for j, (first, w) in enumerate(frontend.sparse_mel()):
        rebuilt[first : first + len(w), j] = w
    assert np.array_equal(rebuilt, m)
    assert m[0].sum() == 0  # DC bin is zero


def test_quantize_rounds_half_away_from_zero():
    x = np.array([0.5, -0.5, 1.5, -1.5, 1000, -1000], np.float32)
    assert frontend.quantize(x, 1.0, 0).tolist() == [1, -1, 2, -2, 127, -128]
    assert frontend.quantize(np.array([0.0], np.float32), 0.1, -5).tolist() == [-5]
