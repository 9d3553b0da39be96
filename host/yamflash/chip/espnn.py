"""What ESP-NN does with one op on the ESP32-S3: which kernel runs, the scratch it asks for, the copies it makes.

esp-tflite-micro v1.3.7 (``tensorflow/lite/micro/kernels/esp_nn/``) hands CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED, AVERAGE/MAX_POOL_2D, SOFTMAX, ADD and MUL to ESP-NN; every other op (MEAN, LOGISTIC,
RESHAPE, ...) runs TFLite Micro's reference kernel. In ``Prepare`` conv.cc and depthwise_conv.cc ask
``RequestScratchBufferInArena`` for ``esp_nn_get_*_scratch_size``; in ``Eval`` the ESP32-S3 dispatchers
copy filters and inputs into that scratch before the assembly kernels run. This module mirrors, in Python
(so the estimate needs no compiler), these esp-nn functions -- the coordinator may dedupe it with the
compiled ones of ``chip_arena``:

- :func:`conv_scratch_size` = ``esp_nn_get_conv_scratch_size_esp32s3`` (esp-nn 1.2.3,
  ``src/convolution/esp_nn_conv_esp32s3.c``; ``../shared/sdk/esp-nn``),
- :func:`depthwise_scratch_size` = ``esp_nn_get_depthwise_conv_scratch_size_esp32s3``
  (``src/convolution/esp_nn_depthwise_conv_s8_esp32s3.c``),
- :func:`softmax_scratch_size` = ``esp_nn_get_softmax_scratch_size_esp32s3`` (``src/softmax/``),
- :func:`plan` = the branch taken by ``esp_nn_conv_s8_esp32s3`` / ``esp_nn_depthwise_conv_s8_esp32s3`` and
  the per-Invoke ``memcpy``/pad/convert calls on that branch, for two code generations:
  ``"1.2"`` (esp-nn 1.2.x, the sdk copy) and ``"1.1"`` (esp-nn tag v1.1.2, espressif/esp-nn
  ``src/convolution/esp_nn_conv_esp32s3.c``; also the 2022 code esp-tflite-micro's first releases used,
  which took the same branches for the shapes modelled here). They differ where it costs time: v1.1 copies a
  1x1 filter into scratch on every Invoke when its address is not 8-byte aligned
  (``if ((int) filter_data & 7) memcpy(filter_aligned, filter_data, filter_size)``); v1.2 reads it in
  place with unaligned vector loads (``ee.ld.128.usar.ip`` in ``esp_nn_conv_s8_mult8_1x1_esp32s3.S``)
  but still requests the same scratch; v1.2 also adds an im2col path for ``filter_wd * in_ch < 16``.

``work`` counts what the kernel's inner loops do, in units the cost model prices (estimate.py):
``pw_i`` instructions the 1x1 kernel executes (:func:`pointwise_instructions`: its 8-position main loop
and its one-position leftover loop, which streams the whole filter again for each of the positions % 8),
``fc_i`` instructions of the fully-connected kernel (:func:`fc_instructions`), ``vec``/``im2col`` 16-lane
vector MACs of the general and the im2col kernel (lanes past ``filter_wd * in_ch`` are wasted), ``dw8`` and
``dw16`` MACs of the int8 and int16 depthwise kernels, and per-element units for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import scratch as espnn_scratch

GENERATIONS = ("2022", "1.1", "1.2")


def _r16(x: int) -> int:
    return (x + 15) & ~15


@dataclass(frozen=True)
class Layer:
    """One op of a graph as ESP-NN sees it (NHWC, batch 1)."""

    index: int
    op: str  # TFLite builtin name
    inp: tuple[int, int, int]  # height, width, channels of input 0 (FULLY_CONNECTED: 1, 1, depth)
    out: tuple[int, int, int]  # height, width, channels of output 0
    kernel: tuple[int, int] = (1, 1)  # filter height, width (pool window for pooling)
    stride: tuple[int, int] = (1, 1)  # height, width
    pad: tuple[int, int] = (0, 0)  # TFLite's computed padding (height, width), as esp-tflite-micro passes it
    ch_mult: int = 1
    weight_bytes: int = 0  # filter bytes read from the model
    const_bytes: int = 0  # other constant bytes read per Invoke (bias)
    filter_offset: int = 0  # filter data offset in the model file (its alignment in a 16-byte aligned copy)
    elements: int = 0  # elements of input 0 (non-MAC ops)

    @property
    def in_bytes(self) -> int:
        return self.inp[0] * self.inp[1] * self.inp[2]

    @property
    def out_bytes(self) -> int:
        return self.out[0] * self.out[1] * self.out[2]


@dataclass
class Plan:
    """The kernel ESP-NN (or TFLite Micro) runs for a layer, and what it reads, copies and computes."""

    kernel: str
    scratch: int = 0  # bytes requested from the arena in Prepare
    filter_copy: int = 0  # filter bytes copied model -> scratch per Invoke
    input_copy: int = 0  # bytes written into scratch per Invoke from the input (padding, int16 conversion)
    filter_passes: int = 1  # times the kernel streams the whole filter
    work: dict[str, float] = field(default_factory=dict)
    reference: bool = False  # TFLite Micro reference kernel (no ESP-NN version in esp-tflite-micro 1.3.7)
    resident: int | None = None  # peak bytes the dispatcher places in scratch (None: filter + input copies)

    @property
    def overflow(self) -> int:
        """Bytes the dispatcher places in scratch beyond what the scratch-size function asked for (> 0: the
        kernel writes past its arena buffer). esp-nn 1.2.3 does for a 3x3 depthwise conv with 16k channels,
        no padding (TFLite SAME at stride 2 on an even size) and a padded input over 40 KB: the size function
        budgets a 3-row strip (tiled), the ``pad_end`` branch of the dispatcher copies the whole padded input."""
        if self.reference:
            return 0
        used = self.resident if self.resident is not None else self.filter_copy + self.input_copy
        return max(0, used - self.scratch)


def pointwise_instructions(positions: int, ch: int, out_ch: int, gen: str) -> int:
    """Instructions ``esp_nn_conv_s8_mult8_1x1_esp32s3.S`` executes, counted from its listing.

    Per 8 positions: a transpose of ``ch/8`` blocks (33 instructions each) and, per output channel,
    ``ch/8`` iterations of 8 ``ee.vsmulas`` + filter load + sign extension (10 instructions; 13 in v1.2,
    whose unaligned filter load is 4) plus ~127 for prologue, QACC extraction, two requantization calls and
    the 8 stores. Per leftover position and output channel: ``ch/8`` iterations of 8 instructions (11 in
    v1.2) plus ~59 (setup, reduction, inline requantization, store).
    """
    c8 = (ch + 7) // 8
    extra = 0 if gen in ("2022", "1.1") else 3
    groups, left = divmod(positions, 8)
    main = groups * (15 + c8 * 33 + out_ch * (c8 * (10 + extra) + 127))
    leftover = left * out_ch * (c8 * (8 + extra) + 59)
    return main + leftover


def fc_instructions(depth: int, units: int, gen: str) -> int:
    """Instructions of one fully-connected row: v1.1's ``esp_nn_fully_connected_s8_esp32s3.S`` takes 10 per 8
    MACs; v1.2's ``esp_nn_fc_s8_mac16_esp32s3.S`` 8 per 32 (two ``ee.vmulas.s8.accx``); ~65 per output for
    setup and requantization."""
    per = (depth + 7) // 8 * 10 if gen in ("2022", "1.1") else (depth + 31) // 32 * 8
    return units * (per + 65)


def conv_scratch_size(lay: Layer) -> int:
    """``esp_nn_get_conv_scratch_size_esp32s3`` of esp-nn 1.2.3 (the sdk copy): espnn_scratch.conv_s3."""
    (in_ht, in_wd, in_ch), (out_ht, out_wd, out_ch) = lay.inp, lay.out
    (f_ht, f_wd), (s_ht, s_wd), (pad_ht, pad_wd) = lay.kernel, lay.stride, lay.pad
    return espnn_scratch.conv_s3(in_wd, in_ht, in_ch, f_wd, f_ht, out_wd, out_ht, out_ch, s_wd, s_ht, pad_wd, pad_ht)


def depthwise_scratch_size(lay: Layer) -> int:
    """``esp_nn_get_depthwise_conv_scratch_size_esp32s3`` of esp-nn 1.2.3: espnn_scratch.depthwise_s3."""
    (in_ht, in_wd, ch), (out_ht, out_wd, _) = lay.inp, lay.out
    (f_ht, f_wd), (s_ht, s_wd), (pad_ht, pad_wd) = lay.kernel, lay.stride, lay.pad
    return espnn_scratch.depthwise_s3(in_wd, in_ht, ch, f_wd, f_ht, out_wd, out_ht, s_wd, s_ht, pad_wd, pad_ht,
                                      lay.ch_mult)


def conv_scratch_size_v11(lay: Layer) -> int:
    """``esp_nn_get_conv_scratch_size_esp32s3`` of esp-nn v1.1.2 (32 bytes of alignment, no im2col branch)."""
    (in_ht, in_wd, in_ch), out_ch = lay.inp, lay.out[2]
    (f_ht, f_wd), (s_ht, s_wd), (pad_ht, pad_wd) = lay.kernel, lay.stride, lay.pad
    if (f_ht, f_wd, pad_ht, pad_wd, s_ht, s_wd) == (1, 1, 0, 0, 1, 1):
        ch8 = (in_ch + 7) & ~7
        transpose = 0 if in_wd * in_ht < 8 else 2 * 8 * ch8
        return (in_wd * in_ht * ch8 if in_ch % 8 else 0) + ch8 * out_ch + transpose + 32
    input_scratch = 0 if pad_wd == 0 and pad_ht == 0 else (in_wd + 2 * pad_wd) * (in_ht + 2 * pad_ht) * in_ch
    return input_scratch + f_wd * f_ht * _r16(in_ch) * out_ch + 32 + out_ch * 4


def depthwise_scratch_size_v11(lay: Layer) -> int:
    """``esp_nn_get_depthwise_conv_scratch_size_esp32s3`` of esp-nn v1.1.2 (no tiling)."""
    (in_ht, in_wd, ch), (out_ht, out_wd, _) = lay.inp, lay.out
    (f_ht, f_wd), (s_ht, s_wd), (pad_ht, pad_wd), mult = lay.kernel, lay.stride, lay.pad, lay.ch_mult
    filter_size = f_wd * f_ht * ch * mult
    if mult == 1 and ch % 8 == 0 and (f_ht, f_wd) == (3, 3):
        if ch % 16 == 0:
            if pad_wd or pad_ht:
                pw, ph = pad_wd * 2, pad_ht * 2
            else:
                pw, ph = out_wd * s_wd + f_wd - 1 - in_wd, out_ht * s_ht + f_ht - 1 - in_ht
            if pw or ph:
                return filter_size + (in_wd + pw) * (in_ht + ph) * ch + 16
            return filter_size + 16
        return 2 * (filter_size + in_wd * in_ht * ch) + 16
    if mult % 4 == 0:
        return 2 * (filter_size + in_wd * in_ht * ch) + 16
    return 32


def softmax_scratch_size(width: int) -> int:
    """``esp_nn_get_softmax_scratch_size_esp32s3``: espnn_scratch.softmax_s3."""
    return espnn_scratch.softmax_s3(width, 1)


def _conv_plan(lay: Layer, gen: str) -> Plan:
    (in_ht, in_wd, in_ch), (out_ht, out_wd, out_ch) = lay.inp, lay.out
    (f_ht, f_wd), (s_ht, s_wd), (pad_ht, pad_wd) = lay.kernel, lay.stride, lay.pad
    scratch = conv_scratch_size(lay) if gen == "1.2" else conv_scratch_size_v11(lay)
    positions = out_ht * out_wd
    if (f_ht, f_wd, pad_ht, pad_wd, s_ht, s_wd) == (1, 1, 0, 0, 1, 1):
        ch8 = (in_ch + 7) & ~7
        groups, left = divmod(in_ht * in_wd, 8)
        work = {"pw_i": pointwise_instructions(in_ht * in_wd, ch8, out_ch, gen), "pw_call": 1}
        copy = 0
        if in_ch % 8:  # channels padded to 8: filter and input copied (v1.1 and v1.2 alike)
            return Plan("esp_nn_conv_s8_1x1 (channels padded to 8)", scratch, ch8 * out_ch,
                        in_ht * in_wd * ch8, groups + left, work)
        if gen == "1.1" and lay.filter_offset % 8:
            copy = lay.weight_bytes  # misaligned filter: memcpy into scratch every Invoke
        return Plan("esp_nn_conv_s8_mult8_1x1_esp32s3", scratch, copy, 0, groups + left, work)
    row, window = f_wd * in_ch, f_wd * f_ht * in_ch
    if gen == "1.2" and row < 16 <= window:
        wa = _r16(window)
        return Plan("esp_nn_conv_s8_im2col_s3", scratch, out_ch * wa, positions * wa, positions,
                    {"im2col": positions * out_ch * wa})
    copy = 0
    if row % 16:
        copy = _r16(row) * f_ht * out_ch  # filter rows re-laid to 16 bytes, every Invoke
    elif lay.filter_offset % 16:
        copy = lay.weight_bytes
    pad_right = max(0, out_wd * s_wd + f_wd - 1 - in_wd)
    pad_bottom = max(0, out_ht * s_ht + f_ht - 1 - in_ht)
    if pad_wd or pad_ht:
        in_copy = (in_wd + 2 * pad_wd) * (in_ht + 2 * pad_ht) * in_ch
    elif gen == "1.2" and (pad_right or pad_bottom):
        in_copy = (in_wd + pad_right) * (in_ht + pad_bottom) * in_ch
    else:
        in_copy = 0
    return Plan("esp_nn_conv_s8_filter_aligned_input_padded_esp32s3", scratch, copy, in_copy, positions,
                {"vec": positions * out_ch * f_ht * _r16(row)})


def _depthwise_plan(lay: Layer, gen: str) -> Plan:
    (in_ht, in_wd, ch), (out_ht, out_wd, out_ch) = lay.inp, lay.out
    (f_ht, f_wd), (s_ht, s_wd), (pad_ht, pad_wd), mult = lay.kernel, lay.stride, lay.pad, lay.ch_mult
    scratch = depthwise_scratch_size(lay) if gen == "1.2" else depthwise_scratch_size_v11(lay)
    outputs = out_ht * out_wd * out_ch
    macs = outputs * f_ht * f_wd
    fsize = f_ht * f_wd * ch * mult
    s16 = {"dw16": macs}
    if mult == 1 and ch % 8 == 0 and (f_ht, f_wd) == (3, 3):
        if ch % 16 == 0 and (pad_ht, pad_wd) == (1, 1):
            padded = (in_wd + 2) * (in_ht + 2) * ch
            if gen == "1.2" and padded > 40 * 1024:  # row tiles: each output row copies its 3 input rows
                strip = f_ht * (in_wd + 2) * ch
                return Plan("esp_nn_depthwise_conv_s8_mult1_3x3_padded_esp32s3 (row tiles)", scratch, fsize,
                            out_ht * strip, 1, {"dw8": macs}, resident=fsize + strip)
            return Plan("esp_nn_depthwise_conv_s8_mult1_3x3_padded_esp32s3 (input padded)", scratch, fsize,
                        padded, 1, {"dw8": macs})
        if ch % 16 == 0 and (pad_ht, pad_wd) == (0, 0):
            pr = out_wd * s_wd + f_wd - 1 - in_wd
            pb = out_ht * s_ht + f_ht - 1 - in_ht
            in_copy = (in_wd + pr) * (in_ht + pb) * ch if pr or pb else 0
            return Plan("esp_nn_depthwise_conv_s8_mult1_3x3_padded_esp32s3", scratch, fsize, in_copy, 1,
                        {"dw8": macs})
        if gen == "1.2" and ch % 16 and ch >= 12:
            new_ch = _r16(ch)
            return Plan("esp_nn_depthwise_conv_s8_mult1_3x3_padded_esp32s3 (channels padded to 16)", scratch,
                        9 * new_ch, (in_wd + 2 * pad_wd + 2) * (in_ht + 2 * pad_ht + 2) * new_ch, 1,
                        {"dw8": outputs // ch * new_ch * 9})
        return Plan("esp_nn_depthwise_conv_s16_mult1_3x3_esp32s3", scratch, 2 * fsize, 2 * in_ht * in_wd * ch,
                    1, s16)
    if mult == 1 and ch % 8 == 0:
        if gen == "1.1":  # esp_nn_depthwise_conv_s8_ch_mult1: generic C, no scratch use
            return Plan("esp_nn_depthwise_conv_s8_ch_mult1", scratch, 0, 0, 1, {"dw_c": macs})
        return Plan("esp_nn_depthwise_conv_s16_mult1_esp32s3", scratch, 2 * fsize, 2 * in_ht * in_wd * ch, 1, s16)
    if mult % 8 == 0:
        name = "esp_nn_depthwise_conv_s16_mult8_3x3_esp32s3" if (f_ht, f_wd) == (3, 3) else \
            "esp_nn_depthwise_conv_s16_mult8_esp32s3"
        return Plan(name, scratch, 2 * fsize, 2 * in_ht * in_wd * ch, 1, s16)
    if mult % 4 == 0:
        return Plan("esp_nn_depthwise_conv_s16_mult4_esp32s3", scratch, 2 * fsize, 2 * in_ht * in_wd * ch, 1, s16)
    return Plan("esp_nn_depthwise_conv_s8_unrolled (generic C)", scratch, 0, 0, 1, {"dw_c": macs})


# Ops esp-tflite-micro v1.3.7 sends to ESP-NN (kernels/esp_nn/*.cc); the rest run TFLM's reference code.
ESP_NN_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D",
              "SOFTMAX", "ADD", "MUL")
# Ops TFLite Micro's reference kernels run as one copy of their output (RESHAPE memcpy's when the planner
# gives input and output different buffers, which it does in a chain).
COPY_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS", "PAD", "PADV2", "CONCATENATION", "SLICE", "STRIDED_SLICE")


def plan(lay: Layer, gen: str = "1.2") -> Plan:
    """The kernel, scratch, copies and inner-loop work of one layer under esp-nn generation ``gen``."""
    if gen not in GENERATIONS:
        raise ValueError(f"unknown esp-nn generation {gen!r}")
    if lay.op == "CONV_2D":
        return _conv_plan(lay, gen)
    if lay.op == "DEPTHWISE_CONV_2D":
        return _depthwise_plan(lay, gen)
    if lay.op == "FULLY_CONNECTED":
        units, depth, batch = lay.out[2], lay.inp[2], lay.inp[1]
        # fully_connected.cc calls the kernel once per batch row: each call streams the weights again
        return Plan("esp_nn_fully_connected_s8_esp32s3", 0, 0, 0, batch,
                    {"fc_i": batch * fc_instructions(depth, units, gen), "call": batch})
    if lay.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        key = "avg_pool" if lay.op == "AVERAGE_POOL_2D" else "max_pool"
        win = lay.out[0] * lay.out[1] * lay.out[2] * lay.kernel[0] * lay.kernel[1]
        if lay.out[2] % 4:  # pooling.cc: the S3 versions need channels % 4 == 0
            return Plan(f"esp_nn_{key}_s8_ansi", work={"ref": win}, reference=True)
        return Plan(f"esp_nn_{key}_s8_esp32s3", work={key: win})
    if lay.op == "SOFTMAX":
        return Plan("esp_nn_softmax_s8_esp32s3", softmax_scratch_size(lay.inp[2]), work={"softmax": lay.elements})
    if lay.op in ("ADD", "MUL"):
        return Plan(f"esp_nn_{lay.op.lower()}_elementwise_s8_esp32s3", work={lay.op.lower(): lay.elements})
    if lay.op in COPY_OPS:
        return Plan(f"TFLite Micro {lay.op} (copy)", work={"copy": lay.out_bytes}, reference=True)
    return Plan(f"TFLite Micro reference {lay.op}", work={"ref": lay.elements}, reference=True)
