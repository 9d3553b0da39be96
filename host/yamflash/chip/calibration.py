"""Published ESP32-S3 measurements the latency estimate is fitted on, and the ones it is checked against.

FIT SET -- esp-nn's README "Kernelwise performance for s8 versions", ESP32-S3 at 240 MHz, one table per
code generation (ticks of the "Optimized" column):

- ``"2022"``: espressif/esp-nn README at commit 13d77d1 (the esp-nn esp-tflite-micro used in Dec 2021),
- ``"1.1"``: README at tag v1.1.2 (esp-nn 1.0.x-1.1.x, 2023-2025),
- ``"1.2"``: README of esp-nn 1.2.3 (``../shared/sdk/esp-nn/README.md``, 2026).

Each row is one kernel call on a small tensor. Where its operands were is read from esp-nn's own test app
at that version (``test_app/sdkconfig.defaults*``, ``tests/include/test_utils.h``), not from the README's
"Memory" column: the 2022 and 1.2 test apps enable no PSRAM, so every buffer was internal RAM; the v1.1.2 app
enables it and ``ESP_NN_TEST_ALLOC`` puts input, filter, output and scratch in (quad, 80 MHz) PSRAM with a
64 KB cache of 64-byte lines, where the kernel finds them cold (:data:`BENCH_COLD`). The fit subtracts
those modelled misses and solves, per table, one cost per inner-loop unit of :mod:`yamflash.chip.espnn`: the two
1x1 rows fix the cycles per instruction of the 1x1 kernel (least squares over both; its instructions are
counted from the assembly by :func:`yamflash.chip.espnn.pointwise_instructions`, the FC kernel's priced alike),
the FC row the per-call overhead; every other row fixes the unit its kernel uses. Fixed, not fitted:
a memcpy at 0.5 cycle/byte (one 32-bit load and one store per 4 bytes), and the memory model of
:mod:`yamflash.chip.memory` (Espressif's bus parameters).

HELD-BACK CHECKS -- whole-model Invoke times nobody fitted anything to (:data:`CHECKS`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .espnn import Layer
from .memory import Layout

GENS = ("2022", "1.1", "1.2")
# Which code each table's kernels ran: the 2022 code took the 1.1 branches except where espnn.plan says.
CODE_OF = {"2022": "2022", "1.1": "1.1", "1.2": "1.2"}

MEMCPY_CYCLES_PER_BYTE = 0.5

BENCH_LAYOUT = Layout(arena="psram", model="psram", psram="quad", cache_kb=64, line=64)
# Tables whose benchmark buffers were in PSRAM (the others ran from internal RAM: no misses to subtract).
BENCH_COLD = {"2022": False, "1.1": True, "1.2": False}


@dataclass(frozen=True)
class KernelRow:
    """One row of an esp-nn README kernel table."""

    function: str
    data: str  # the "Data info" column, verbatim
    layer: Layer
    ticks: int
    ansi_ticks: int
    external: bool  # "Memory" column


def _conv(h: int, w: int, c: int, k: int, f: int, pad: int = 0) -> Layer:
    oh, ow = (h + 2 * pad - f) + 1, (w + 2 * pad - f) + 1
    return Layer(0, "CONV_2D", (h, w, c), (oh, ow, k), (f, f), (1, 1), (pad, pad), weight_bytes=k * f * f * c)


def _dw(h: int, w: int, c: int, mult: int, f: int, pad: int) -> Layer:
    # esp-nn's depthwise test: out = (in + stride - 1) / stride with padding, (in + stride - f) / stride without
    oh, ow = (h, w) if pad else (h - f + 1, w - f + 1)
    return Layer(0, "DEPTHWISE_CONV_2D", (h, w, c), (oh, ow, c * mult), (f, f), (1, 1), (pad, pad), mult,
                 weight_bytes=f * f * c * mult)


def _elem(op: str, n: int) -> Layer:
    return Layer(0, op, (1, 1, n), (1, 1, n), elements=n)


def _pool(op: str) -> Layer:  # input(16,16), filter 3x3, 16 channels, pad 1, stride 1 (pooling_test.c)
    return Layer(0, op, (16, 16, 16), (16, 16, 16), (3, 3), (1, 1), (1, 1), elements=16 * 16 * 16)


def _fc(n: int, ch: int) -> Layer:
    return Layer(0, "FULLY_CONNECTED", (1, 1, n), (1, 1, ch), weight_bytes=n * ch)


def _table(add: tuple[int, int], mul: tuple[int, int], c64: tuple[int, int], c16: tuple[int, int],
           c3: tuple[int, int], c3_in: int, dw3: tuple[int, int], dw5: tuple[int, int], maxp: tuple[int, int],
           avgp: tuple[int, int], fc: tuple[int, int], fc_len: int, relu: tuple[int, int],
           softmax: tuple[int, int] | None = None) -> list[KernelRow]:
    rows = [
        KernelRow("elementwise_add", "size = 1615", _elem("ADD", 1615), add[1], add[0], True),
        KernelRow("elementwise_mul", "size = 1615", _elem("MUL", 1615), mul[1], mul[0], True),
        KernelRow("convolution", "input(10,10), filter(64x1x1x64)", _conv(10, 10, 64, 64, 1), c64[1], c64[0], True),
        KernelRow("convolution", "input(8,8), filter(16x1x1x16)", _conv(8, 8, 16, 16, 1), c16[1], c16[0], True),
        KernelRow("convolution", f"input({c3_in},{c3_in}), filter(64x3x3x3)", _conv(c3_in, c3_in, 3, 64, 3),
                  c3[1], c3[0], True),
        KernelRow("depthwise conv", "input(18,18), pad(0,0), filter 1x3x3x16", _dw(18, 18, 16, 1, 3, 0),
                  dw3[1], dw3[0], True),
        KernelRow("depthwise conv", "input(12,12), pad(1,1), filter 8x5x5x4", _dw(12, 12, 4, 8, 5, 1),
                  dw5[1], dw5[0], True),
        KernelRow("max pool", "input(16,16), filter(1x3x3x16)", _pool("MAX_POOL_2D"), maxp[1], maxp[0], False),
        KernelRow("avg pool", "input(16,16), filter(1x3x3x16)", _pool("AVERAGE_POOL_2D"), avgp[1], avgp[0], False),
        KernelRow("fully connected", f"len: {fc_len}, ch = 3", _fc(fc_len, 3), fc[1], fc[0], False),
        KernelRow("prelu (relu6)", "size: 1615", _elem("RELU6", 1615), relu[1], relu[0], False),
    ]
    if softmax:
        rows.append(KernelRow("softmax", "h: 8, w: 32", Layer(0, "SOFTMAX", (1, 8, 32), (1, 8, 32),
                                                              elements=256), softmax[1], softmax[0], False))
    return rows


# (ANSI C, Optimized) ticks, as published.
KERNEL_TABLES: dict[str, list[KernelRow]] = {
    "2022": _table(add=(320397, 87119), mul=(125958, 44239), c64=(4663012, 428675), c16=(301014, 32433),
                   c3=(2115418, 1020923), c3_in=10, dw3=(1190062, 203278), dw5=(837072, 182335),
                   maxp=(485714, 76747), avgp=(541462, 160580), fc=(15853, 9547), fc_len=265,
                   relu=(19472, 2734)),
    "1.1": _table(add=(312327, 71644), mul=(122046, 30950), c64=(4642259, 461398), c16=(300032, 43578),
                  c3=(2106801, 643689), c3_in=10, dw3=(1192832, 191931), dw5=(1679406, 366102),
                  maxp=(485714, 76747), avgp=(541462, 160580), fc=(12290, 4439), fc_len=265,
                  relu=(18315, 1856)),
    "1.2": _table(add=(281337, 74440), mul=(122703, 35002), c64=(4712500, 331008), c16=(312754, 39022),
                  c3=(2193289, 394842), c3_in=8, dw3=(1159831, 184176), dw5=(1671363, 372435),
                  maxp=(376294, 48069), avgp=(427293, 118052), fc=(8443, 1078), fc_len=271,
                  relu=(1125, 98), softmax=(15209, 11107)),
}
TABLE_SOURCE = {
    "2022": "espressif/esp-nn README.md @13d77d1 (2022-01)",
    "1.1": "espressif/esp-nn README.md @v1.1.2",
    "1.2": "espressif/esp-nn 1.2.3 README.md (../shared/sdk/esp-nn)",
}


# ---- the models of the held-back checks ------------------------------------------------------------------

def same(size: int, k: int, s: int) -> tuple[int, int]:
    """TFLite's SAME padding: output size and the leading pad (ComputePaddingHeightWidth)."""
    out = (size + s - 1) // s
    total = max(0, (out - 1) * s + k - size)
    return out, total // 2


def valid(size: int, k: int, s: int) -> tuple[int, int]:
    return (size - k + s) // s, 0


def mobilenet(name: str, h: int, w: int, c: int, stem: tuple[int, int, int, str],
              blocks: list[tuple[int, int]], head: list[Layer]) -> list[Layer]:
    """A MobileNet-v1 body: a 3x3 stem (``(out_ch, stride, kind)``, kind CONV_2D or DEPTHWISE_CONV_2D),
    then depthwise 3x3 + pointwise 1x1 blocks ``(stride, out_ch)``, all SAME-padded; then ``head``."""
    layers: list[Layer] = []

    def add(op: str, oc: int, k: int, s: int, mult: int = 1) -> None:
        nonlocal h, w, c
        oh, ph = same(h, k, s)
        ow, pw = same(w, k, s)
        wb = oc * k * k * (1 if op == "DEPTHWISE_CONV_2D" else c)
        layers.append(Layer(len(layers), op, (h, w, c), (oh, ow, oc), (k, k), (s, s), (ph, pw), mult,
                            weight_bytes=wb, const_bytes=4 * oc))
        h, w, c = oh, ow, oc

    oc, s, kind = stem
    add(kind, oc, 3, s, oc // c if kind == "DEPTHWISE_CONV_2D" else 1)
    for s, oc in blocks:
        add("DEPTHWISE_CONV_2D", c, 3, s)
        add("CONV_2D", oc, 1, 1)
    return layers + [Layer(len(layers) + i, lay.op, lay.inp, lay.out, lay.kernel, lay.stride, lay.pad,
                           lay.ch_mult, lay.weight_bytes, lay.const_bytes, lay.filter_offset, lay.elements)
                     for i, lay in enumerate(head)]


# Person detection (esp-tflite-micro examples/person_detection, person_detect_model_data.cc, 300,568 B):
# MobileNet v1 alpha 0.25 on 96x96x1. Layer by layer as in that file (op, shapes, strides, padding and filter
# bytes compared with layers_from_model on the 300,568-byte array, once, by hand): the stem is a
# DEPTHWISE_CONV_2D 1 -> 8 (depth multiplier 8, stride 2), then 13 blocks, AVERAGE_POOL 3x3, a 1x1 CONV_2D
# 256 -> 2, RESHAPE, SOFTMAX.
PERSON_DETECTION = mobilenet(
    "person_detection", 96, 96, 1, (8, 2, "DEPTHWISE_CONV_2D"),
    [(1, 16), (2, 32), (1, 32), (2, 64), (1, 64), (2, 128), (1, 128), (1, 128), (1, 128), (1, 128), (1, 128),
     (2, 256), (1, 256)],
    [Layer(0, "AVERAGE_POOL_2D", (3, 3, 256), (1, 1, 256), (3, 3), (2, 2), elements=9 * 256),
     Layer(0, "CONV_2D", (1, 1, 256), (1, 1, 2), weight_bytes=512, const_bytes=8),
     Layer(0, "RESHAPE", (1, 1, 2), (1, 1, 2), elements=2),
     Layer(0, "SOFTMAX", (1, 1, 2), (1, 1, 2), elements=2)])

# YAMNet on a 96x64 log-mel patch (the model yamflash converts): RESHAPE to 96x64x1, CONV_2D 3x3/2 -> 32,
# 13 blocks, MEAN over time and frequency, FULLY_CONNECTED 1024 -> 521, LOGISTIC. test_estimate checks this
# list against the converted model.tflite.
YAMNET_BLOCKS = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512), (1, 512),
                 (1, 512), (1, 512), (2, 1024), (1, 1024)]
YAMNET = [Layer(0, "RESHAPE", (1, 96, 64), (96, 64, 1), elements=96 * 64)] + mobilenet(
    "yamnet", 96, 64, 1, (32, 2, "CONV_2D"), YAMNET_BLOCKS,
    [Layer(0, "MEAN", (3, 2, 1024), (1, 1, 1024), elements=6 * 1024),
     Layer(0, "FULLY_CONNECTED", (1, 1, 1024), (1, 1, 521), weight_bytes=521 * 1024, const_bytes=4 * 521),
     Layer(0, "LOGISTIC", (1, 1, 521), (1, 1, 521), elements=521)])
YAMNET = [Layer(i, lay.op, lay.inp, lay.out, lay.kernel, lay.stride, lay.pad, lay.ch_mult, lay.weight_bytes,
                lay.const_bytes, lay.filter_offset, lay.elements) for i, lay in enumerate(YAMNET)]


@dataclass(frozen=True)
class Check:
    """A published whole-model Invoke time, with everything the publication says about how it ran."""

    name: str
    model: str  # key of MODELS
    gen: str
    layout: Layout
    published_ms: float
    source: str
    assumptions: str
    published_range: tuple[float, float] | None = None


MODELS = {"person_detection": PERSON_DETECTION, "yamnet": YAMNET}

CHECKS: list[Check] = [
    Check("person detection, esp-nn 2021, arena internal", "person_detection", "2022",
          Layout(arena="internal", model="flash", psram="quad", cache_kb=32, line=32), 54.0,
          "espressif/esp-tflite-micro README.md 'Performance Comparison' (commit 4c9ba39, 2021-12-17): "
          "ESP32-S3, 240 MHz, with ESP-NN 54 ms, 'Internal memory used'",
          "arena heap_caps_malloc(MALLOC_CAP_INTERNAL) and model as rodata in QIO flash at 80 MHz "
          "(examples/person_detection at that commit); no S3 cache settings there, so ESP-IDF's defaults "
          "(32 KB data cache, 32-byte lines)"),
    Check("person detection, esp-nn 1.2, arena internal", "person_detection", "1.2",
          Layout(arena="internal", model="flash", psram="octal", cache_kb=64, line=64), 47.0,
          "espressif/esp-nn 1.2.3 README.md 'Model-level performance', note: 'Person detection on ESP32-S3 "
          "with internal RAM: 47ms'",
          "model as rodata in QIO flash at 80 MHz; 64 KB data cache, 64-byte lines "
          "(examples/person_detection/sdkconfig.defaults.esp32s3 of esp-tflite-micro)"),
    Check("person detection, esp-nn 1.2, arena PSRAM", "person_detection", "1.2",
          Layout(arena="psram", model="flash", psram="octal", cache_kb=64, line=64), 54.0,
          "espressif/esp-nn 1.2.3 README.md 'Model-level performance': ESP32-S3 240 MHz with ESP-NN 54 ms; "
          "note: 'SPIRAM used for TensorArena'",
          "octal PSRAM at 80 MHz (CONFIG_SPIRAM_MODE_OCT in the example's sdkconfig.defaults.esp32s3), arena "
          "heap_caps_malloc_prefer(SPIRAM first); the table header also says 'using internal memory', so this "
          "reading of the note is ours"),
    Check("YAMNet INT8 port, arena + model in PSRAM", "yamnet", "1.1",
          Layout(arena="psram", model="psram", psram="octal", cache_kb=32, line=32), 508.0,
          "the published ESP32-S3 YAMNet port quoted in issue 14: model from SPIFFS into PSRAM, "
          "1,157,736 B arena in PSRAM, ESP-NN, 240 MHz, esp-tflite-micro 1.x: 500-650 ms per Invoke, p95 508 ms",
          "esp-nn 1.1.x (the release line before 1.2, 2026); octal PSRAM at 80 MHz (an N16R8-class board); "
          "ESP-IDF's default 32 KB data cache with 32-byte lines; filters 16-byte aligned as TensorFlow's "
          "converter writes them (schema.fbs: force_align: 16)",
          (500.0, 650.0)),
]
