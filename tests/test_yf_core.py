"""yf_core (the C the chip runs, through yamflash.target.native) against the numpy reference on real audio."""

from __future__ import annotations

import numpy as np
import pytest
from yamflash import frontend
from yamflash.audio import load_audio

# Patch quantization as a converted model sets it (scale/zp of the int8 input); the exact values only
# need to put YAMNet's log-mel range (about -7 .. 4) across the int8 range as a real model does.
IN_SCALE, IN_ZP = 0.0465, 32


def pcm16(path) -> tuple[np.ndarray, np.ndarray]:
    """16 kHz int16 samples (what the microphone gives the chip) and the very same signal as the float
    waveform the reference reads (x / 32768). Clips at other rates are resampled first."""
    wav = load_audio(path)
    pcm = np.clip(np.round(wav * 32768.0), -32768, 32767).astype(np.int16)
    return pcm, pcm.astype(np.float32) / np.float32(32768.0)


def clips(demo_dir, esc50_dir, n_esc: int = 20) -> list:
    return sorted(demo_dir.glob("*.wav")) + sorted(esc50_dir.glob("*.wav"))[:n_esc]


def stream(native, pcm: np.ndarray, seed: int) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Feed PCM in random chunk sizes; collect frames, float patches and int8 patches as the chip would."""
    fe, patcher = native.Frontend(), native.Patcher()
    rng = np.random.default_rng(seed)
    frames, fp, qp = [], [], []
    pos = 0
    while pos < len(pcm):
        n = int(rng.integers(1, 4097))
        for f in fe.push(pcm[pos:pos + n]):
            frames.append(f)
            if patcher.push(f):
                fp.append(patcher.copy())
                qp.append(patcher.quantize(IN_SCALE, IN_ZP))
        pos += n
    return np.array(frames).reshape(-1, 64), fp, qp


def test_logmel_and_patches_match_reference(native, demo_dir, esc50_dir):
    worst, total, equal, max_diff, n_patches = 0.0, 0, 0, 0, 0
    for i, path in enumerate(clips(demo_dir, esc50_dir)):
        pcm, wav = pcm16(path)
        padded = frontend.pad_waveform(wav)
        frames, fp, qp = stream(native, np.round(padded * 32768.0).astype(np.int16), seed=i)
        ref = frontend.log_mel(padded)
        assert frames.shape == ref.shape
        worst = max(worst, float(np.abs(frames - ref).max()))
        ref_patches = frontend.patches(ref)
        assert len(fp) == len(ref_patches) == len(frontend.waveform_to_patches(wav))
        for got_f, got_q, want in zip(fp, qp, ref_patches, strict=True):
            assert np.abs(got_f - want).max() < 2e-3
            want_q = frontend.quantize(want, IN_SCALE, IN_ZP)
            diff = np.abs(got_q.astype(np.int16) - want_q.astype(np.int16))
            total += diff.size
            equal += int((diff == 0).sum())
            max_diff = max(max_diff, int(diff.max()))
            n_patches += 1
    print(f"\nlog-mel max abs error {worst:.3g}; int8 equal {100.0 * equal / total:.4f}% of {total} "
          f"values in {n_patches} patches; max int8 diff {max_diff}")
    assert worst <= 2e-3
    assert equal / total >= 0.999
    assert max_diff <= 1


def test_matches_golden_logmel(native, demo_dir):
    pcm, _ = pcm16(demo_dir / "speech_whistling2.wav")
    golden = np.load(demo_dir / "speech_whistling2_logmel_496x64.npy")
    got = native.Frontend().push(pcm)
    assert got.shape == (490, 64)
    assert np.abs(got - golden[:490]).max() < 2e-3


def test_fft_matches_numpy(native):
    fe = native.Frontend()
    rng = np.random.default_rng(3)
    for scale in (1e-4, 1.0, 300.0):
        x = (rng.standard_normal(512) * scale).astype(np.float32)
        ref = np.abs(np.fft.rfft(x.astype(np.float64)))
        assert np.abs(fe.fft_mag(x) - ref).max() <= 2e-6 * np.abs(ref).max() * 10


def test_window_default_equals_reference_window(native):
    rng = np.random.default_rng(8)
    frame = rng.integers(-32768, 32767, 400).astype(np.int16)
    computed = native.Frontend().frame(frame)
    given = native.Frontend(window=frontend.periodic_hann(400)).frame(frame)  # as the generated header
    assert np.array_equal(computed, given)


def test_quantize_identical_to_python(native):
    rng = np.random.default_rng(11)
    x = np.concatenate([
        rng.normal(0, 3, 100_000).astype(np.float32),
        (np.arange(-300, 300) * np.float32(0.5)).astype(np.float32) * np.float32(IN_SCALE),  # exact halves
        np.array([1e30, -1e30, 0.0, -0.0], np.float32),
    ])
    for scale, zp in ((IN_SCALE, IN_ZP), (0.1, -128), (1.0, 0), (0.00390625, -128)):
        assert np.array_equal(native.quantize(x, scale, zp), frontend.quantize(x, scale, zp))
    q = np.arange(-128, 128, dtype=np.int16).astype(np.int8)
    assert np.array_equal(native.dequantize(q, 0.00390625, -128), frontend.dequantize(q, 0.00390625, -128))


def test_patcher_keeps_every_frame(native):
    p = native.Patcher()
    emitted = []
    for i in range(96 + 48 * 4 + 47):
        if p.push(np.full(64, i, np.float32)):
            emitted.append(p.copy()[:, 0].astype(int))
    assert len(emitted) == 5
    for k, patch in enumerate(emitted):
        assert list(patch) == list(range(48 * k, 48 * k + 96))  # contiguous, overlapping by 48


def test_detector_window_threshold_refractory(native):
    det = native.Detector([2, 7], threshold=0.6, window=3, min_count=1, refractory_ms=2000)
    hits = []
    for patch in range(12):
        scores = np.zeros(10, np.float32)
        scores[2] = 0.9 if patch >= 3 else 0.1
        scores[7] = 0.9 if patch == 5 else 0.0  # one loud patch: its 3-patch mean stays at 0.3
        hits += [(c, patch) for c, _, _ in det.push_scores(scores, patch)]
    # class 2: means 0.1,0.1,0.1 -> 0.37 (p3) -> 0.63 (p4, fires, ts 2895) -> quiet until 4895 -> p9 (ts 5295)
    assert hits == [(2, 4), (2, 9)]


def test_detector_int8_scores_and_events(native):
    det = native.Detector([494], threshold=0.5, window=2, min_count=2, refractory_ms=0,
                          out_scale=1 / 256, out_zp=-128)
    out = np.full(521, -128, np.int8)
    out[494] = 64  # (64 + 128) / 256 = 0.75
    events = [det.push(out, k) for k in range(4)]
    assert events[0] == [] and events[1] == []  # window fills at 1; run reaches min_count 2 at patch 2
    assert events[2] == [(494, 0.75, 2 * 480 + 975)]
    assert events[3] == []  # the run restarts after an event
    with pytest.raises(ValueError):
        native.Detector([1], threshold=0.5, window=0, min_count=1, refractory_ms=0)


def test_source_change_rebuilds_library(native, tmp_path, monkeypatch):
    """The library's path depends on the sources' content, so an edited core is rebuilt, not reused."""
    from yamflash.target.native import binding

    before = native.library_path()
    monkeypatch.setattr(binding, "CFLAGS", [*binding.CFLAGS, "-DYF_TEST_FLAG=1"])
    assert native.library_path() != before
