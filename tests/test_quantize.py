"""The pieces of the INT8 recipe that can be checked without a full calibration: equalization keeps the
float function, factors do what they say, and the flatbuffer edit round-trips and still loads in TFLM."""

from __future__ import annotations

import numpy as np
import pytest
from yamflash.model.weights import YamnetWeights, expected_shapes

pytest.importorskip("tensorflow")


def random_weights(seed: int = 0) -> YamnetWeights:
    """YAMNet-shaped weights with He-like scales, so activations stay in a sane range through 28 layers."""
    rng = np.random.default_rng(seed)
    kernels, biases = {}, {}
    for name, shape in expected_shapes().items():
        fan_in = int(np.prod(shape[:2])) * (1 if "depthwise" in name else shape[-2])
        fan_in = shape[0] if name == "logits" else fan_in
        kernels[name] = (rng.normal(0, np.sqrt(2.0 / fan_in), shape)).astype(np.float32)
        n = shape[2] if "depthwise" in name else shape[-1]
        biases[name] = rng.normal(0, 0.1, n).astype(np.float32)
    return YamnetWeights(kernels, biases, "relu")


@pytest.fixture(scope="module")
def patches() -> np.ndarray:
    return np.random.default_rng(1).normal(-3, 2, (3, 96, 64)).astype(np.float32)


def test_scale_channels_keeps_the_float_function(patches: np.ndarray) -> None:
    from yamflash.quant import equalize as qe
    from yamflash.quant.simulate import Simulator

    w = random_weights()
    ref = Simulator(w).scores(patches, logits=True)
    rng = np.random.default_rng(2)
    eq = qe.copy_weights(w)
    for t in qe.tensors_scaled():
        n = eq.biases[qe.layer_plan()[t - 1][0]].shape[0]
        qe.scale_channels(eq, t, np.exp(rng.uniform(-3, 3, n)).astype(np.float32))
    got = Simulator(eq).scores(patches, logits=True)
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3 * float(np.abs(ref).max()))
    assert not np.allclose(eq.kernels["layer5/pointwise_conv"], w.kernels["layer5/pointwise_conv"])


def test_scale_channels_refuses_what_would_change_the_function() -> None:
    from yamflash.quant import equalize as qe

    w = random_weights()
    with pytest.raises(ValueError):
        qe.scale_channels(w, 3, np.zeros(64, np.float32))
    with pytest.raises(ValueError):
        qe.scale_channels(w, 28, np.ones(1024, np.float32))
    w6 = YamnetWeights(w.kernels, w.biases, "relu6")
    with pytest.raises(ValueError):
        qe.scale_channels(w6, 3, np.ones(64, np.float32))


def test_equalization_factors_bring_live_channels_together_and_leave_dead_ones() -> None:
    from yamflash.quant.equalize import equalization_factors

    r = np.array([0.0, 0.5, 2.0, 40.0], np.float32)
    f = equalization_factors(r, None, 0.5)
    assert f[0] == 1.0
    scaled = r[1:] * f[1:]
    assert np.ptp(scaled) < 1e-4 * scaled.max()
    g = equalization_factors(r, np.ones(4, np.float32), 0.5)  # classic CLE: sqrt balance
    assert np.ptp(r[1:] * g[1:]) < np.ptp(r[1:]) and np.all(g > 0)


def test_affine_keeps_zero_exact() -> None:
    from yamflash.quant.flatbuffer import _affine

    assert _affine(0.0, 2.55) == pytest.approx((0.01, -128))
    s, zp = _affine(-6.9, 5.4)
    assert abs((-128 - zp) * s + 6.9) < s and abs((127 - zp) * s - 5.4) < s


@pytest.mark.slow
def test_set_ranges_round_trips_and_runs_in_tflm(patches: np.ndarray) -> None:
    pytest.importorskip("tflite_micro")
    from yamflash.model.tflite_fb import FlatModel
    from yamflash.model.tflm import MicroModel
    from yamflash.quant.flatbuffer import graph_tensors, read_ranges, set_ranges
    from yamflash.quant.recipes import _converter_bytes
    from yamflash.quant.simulate import LOGITS_T, N_TENSORS, layer_plan

    w = random_weights()
    tfl = _converter_bytes(w, patches[:2])
    ranges = np.tile(np.array([0.0, 3.0], np.float32), (N_TENSORS, 1))
    ranges[0] = [-6.9, 5.4]
    ranges[LOGITS_T] = [-8.0, 8.0]
    biases = [w.biases[name] for name, _, _ in layer_plan()]
    out = set_ranges(tfl, ranges, biases)
    got = read_ranges(out)
    step = (ranges[:, 1] - ranges[:, 0]) / 255
    assert np.all(np.abs(got - ranges) <= step[:, None] + 1e-6)
    fm = FlatModel(out)
    _, weighted = graph_tensors(fm)
    for op, b in zip(weighted, biases, strict=True):
        deq = fm.constant(op.inputs[2])
        sin = float(fm.tensor(op.inputs[0]).quantization.scale[0])
        sw = fm.quantization(op.inputs[1])[0]
        assert np.all(np.abs(deq - b) <= 0.5 * sin * sw + 1e-9)
    micro = MicroModel(out)
    assert micro.output_quant == pytest.approx((1 / 256, -128))
    assert micro.input_quant[0] == pytest.approx(12.3 / 255, rel=1e-4)
    from yamflash.quant.flatbuffer import BUFFER_ALIGN, buffer_data_offsets

    assert all(o % BUFFER_ALIGN == 0 for o in buffer_data_offsets(out).values())  # as TF's converter aligns
    scores = micro.run(patches[:1])
    assert scores.shape == (1, 521) and np.all((scores >= 0) & (scores <= 1))


class _StubSim:
    """Scores that depend on the ranges in a known way: error is smallest at hi = 2 for every tensor."""

    def scores(self, patches: np.ndarray, spec: object = None) -> np.ndarray:
        if spec is None:
            return np.zeros((len(patches), 4))
        hi = spec.ranges[1:29, 1]  # type: ignore[attr-defined]
        return np.full((len(patches), 4), float(np.sum((np.log(hi / 2.0)) ** 2)))


def test_joint_range_search_never_worsens_its_objective() -> None:
    from yamflash.quant.recipes import joint_ranges
    from yamflash.quant.simulate import N_TENSORS

    ranges = np.tile(np.array([0.0, 1.0], np.float32), (N_TENSORS, 1))
    ranges[5, 1], ranges[9, 1] = 2.0, 7.0
    sim = _StubSim()
    tune = np.zeros((3, 96, 64), np.float32)

    def err(r: np.ndarray) -> float:
        from yamflash.quant.simulate import QuantSpec

        return float(np.mean(sim.scores(tune, QuantSpec(r)) ** 2))

    out, gains = joint_ranges(sim, ranges, tune, (1.3, 0.8, 0.6), 2, log=lambda m: None)
    assert err(out) < err(ranges)
    assert out[5, 1] == 2.0  # already optimal: left alone
    assert np.all(out[0] == ranges[0]) and np.all(out[29] == ranges[29])
    assert len(gains) == 28 and all(g > 0 for g in gains)


def test_forward_overrides_replace_one_tensors_quantization(patches: np.ndarray) -> None:
    """The diagnostic hook: an identity override leaves exactly that tensor in float."""
    import tensorflow as tf
    from yamflash.quant.simulate import N_TENSORS, Simulator, forward

    sim = Simulator(random_weights())
    ranges = np.tile(np.array([0.0, 3.0], np.float32), (N_TENSORS, 1))
    ranges[0], ranges[29] = [-9.0, 3.0], [-8.0, 8.0]
    x = tf.constant(patches)
    r = tf.constant(ranges)
    base = forward(tf, sim.kernels, sim.biases, x, r)[0].numpy()
    every_float = {t: (lambda v, _r: v) for t in range(N_TENSORS)}
    unq = forward(tf, sim.kernels, sim.biases, x, r, qweights=False, overrides=every_float)[0].numpy()
    ref = forward(tf, sim.kernels, sim.biases, x, None)[0].numpy()
    np.testing.assert_allclose(unq, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))
    one = forward(tf, sim.kernels, sim.biases, x, r, overrides={5: lambda v, _r: v})[0].numpy()
    assert not np.allclose(one, base) and not np.allclose(one, ref)


def _rounding_problem(seed: int = 0, n: int = 24, c: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(500, n))
    x[:, 1] = x[:, 0] + 0.05 * x[:, 1]  # correlated inputs: where rounding jointly pays
    w = rng.normal(size=(n, c)) * np.exp(rng.uniform(-2, 0, c))
    return x.T @ x, x.T @ (x @ w), w


def test_rounding_optimiser_never_worsens_its_objective_and_stays_on_the_grid() -> None:
    from yamflash.quant.rounding import QMAX, grid_steps, objective, optimise_columns

    for seed in range(3):
        A, B, w = _rounding_problem(seed)
        s0 = grid_steps(w)
        nearest = objective(A, B / s0, np.rint(w / s0)) * s0**2
        for span, clips in (("floorceil", (1.0,)), ("full", (1.0, 0.9, 0.8))):
            wq, info = optimise_columns(w, A, B, span, clips)
            s = grid_steps(wq.astype(np.float64))
            q = wq / s
            assert np.all(np.abs(q - np.rint(q)) < 1e-3)  # on the converter's grid
            assert np.allclose(np.abs(np.rint(q)).max(0), QMAX)  # the step the converter will pick
            got = objective(A, B / s, np.rint(q)) * s**2
            assert np.all(got <= nearest + 1e-9 * np.abs(nearest))
            assert info["optimised"] <= info["nearest"] + 1e-9 * abs(info["nearest"])
            if span == "floorceil":  # AdaRound's set: each weight is its floor or its ceiling
                v = w / s0
                assert np.allclose(s, s0) and np.all((np.rint(q) >= np.floor(v)) & (np.rint(q) <= np.ceil(v)))
        assert info["optimised"] < info["nearest"]


def test_coordinate_descent_per_channel_matrices_matches_shared() -> None:
    from yamflash.quant.rounding import coordinate_descent

    A, B, w = _rounding_problem(4, n=9, c=5)
    v = w / (np.abs(w).max(0) / 127)
    lo, hi, q0 = np.floor(v), np.ceil(v), np.rint(v)
    shared = coordinate_descent(A, B / (np.abs(w).max(0) / 127), q0, lo, hi)
    per = coordinate_descent(np.repeat(A[None], 5, 0), B / (np.abs(w).max(0) / 127), q0, lo, hi)
    np.testing.assert_array_equal(shared, per)


@pytest.mark.slow
def test_rounded_weights_survive_the_converter(patches: np.ndarray) -> None:
    from yamflash.quant.recipes import _converter_bytes
    from yamflash.quant.rounding import grid_mismatch, optimise_rounding
    from yamflash.quant.simulate import N_TENSORS

    w = random_weights()
    w2, info = optimise_rounding(w, np.zeros((N_TENSORS, 2), np.float32), patches[:2], log=lambda m: None,
                                 max_rows=2000, sweeps=1)
    assert all(v["optimised"] <= v["nearest"] * (1 + 1e-9) + 1e-9 for v in info.values())
    bad, scale_err = grid_mismatch(_converter_bytes(w2, patches[:2]), w2)
    assert bad == 0 and scale_err < 1e-5


@pytest.mark.slow
def test_relu6_weights_take_the_recipe_without_equalization(patches: np.ndarray, tmp_path) -> None:
    """Google's TF Hub weights use ReLU6: the recipe skips only the equalization, and TFLite Micro then
    agrees with the simulator run at the recipe's own ranges."""
    pytest.importorskip("tflite_micro")
    from yamflash.model.tflm import MicroModel
    from yamflash.model.weights import from_tflite
    from yamflash.quant.flatbuffer import read_ranges
    from yamflash.quant.recipes import convert_int8
    from yamflash.quant.simulate import QuantSpec, Simulator

    w = random_weights()
    w6 = YamnetWeights(w.kernels, w.biases, "relu6")
    calib = np.random.default_rng(3).normal(-3, 2, (12, 96, 64)).astype(np.float32)
    tfl, desc = convert_int8(w6, calib, log=lambda m: None, recipe="eq-clip", stats_patches=12, tune_patches=12)
    assert desc["recipe"] == "eq-clip" and desc["equalization"] == {"skipped": "ReLU6 weights"}
    assert "skipped" in desc["channel_clipping"]  # a channel rescale would move ReLU6's cap
    ranges = read_ranges(tfl)
    assert np.all(ranges[1:28, 1] <= 6.0 + 6.0 / 255)  # ReLU6 outputs never need more
    got = MicroModel(tfl).run(patches)
    (tmp_path / "m.tflite").write_bytes(tfl)
    wq = from_tflite(tmp_path / "m.tflite")  # the int8 weights the model holds (the rounding moved some)
    assert wq.activation == "relu6"
    sim = Simulator(wq).scores(patches, QuantSpec(ranges.astype(np.float32)))
    assert np.abs(got - sim).max() <= 4 / 256 + 1e-6
