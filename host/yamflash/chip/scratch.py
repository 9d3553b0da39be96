"""The scratch buffers ESP-NN's kernels ask TFLite Micro's arena for on an ESP32-S3, from a model's shapes.

On the chip, esp-tflite-micro's ESP-NN kernels (tensorflow/lite/micro/kernels/esp_nn/conv.cc,
depthwise_conv.cc, softmax.cc) call ``RequestScratchBufferInArena`` in Prepare with the size
``esp_nn_get_*_scratch_size`` returns; for a 1x1 stride-1 conv that is a copy of the whole filter (1 MiB for
YAMNet's 1024->1024 layer). The host's ``tflite-micro`` package runs reference kernels, which ask for none,
so its arena figure is short by at least the largest of these.

This module states those sizes in Python so ``gen`` can bound the chip's arena where the chip build
(chip_arena.py, which compiles esp-nn's own C) cannot run: a clone without ``../shared/sdk``, or an old
model.json. tests/test_chip_arena.py checks every function here against the compiled
``esp_nn_get_*_scratch_size_esp32s3`` of the esp-nn source in ``../shared/sdk/esp-nn`` (the newest public
esp-nn, VERSION 1.2.3; the firmware pins 1.4.1 from Espressif's registry, which is not public).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# The sdk's esp-nn is the newest public source: its src/ equals espressif/esp-nn master d45b843 ("Bump version
# to 1.2.3"); the registry's 1.4.x that idf_component.yml pins is not public. Older public tags differ: v1.1.2
# and v1.2.0 reserve 32 alignment bytes where this source reserves 64.
ESPNN_PINNED = "1.4.1"  # firmware/main/idf_component.yml


@dataclass(frozen=True)
class Request:
    """One scratch request, with the shapes esp_nn/<op>.cc passes (NHWC widths and heights)."""

    kind: str  # "conv" | "depthwise" | "softmax"
    op_index: int
    in_w: int
    in_h: int
    in_c: int
    f_w: int = 0
    f_h: int = 0
    out_w: int = 0
    out_h: int = 0
    out_c: int = 0
    stride_w: int = 1
    stride_h: int = 1
    pad_w: int = 0
    pad_h: int = 0
    ch_mult: int = 1
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def conv_s3(in_w: int, in_h: int, in_c: int, f_w: int, f_h: int, out_w: int, out_h: int, out_c: int,
            stride_w: int, stride_h: int, pad_w: int, pad_h: int) -> int:
    """esp_nn_get_conv_scratch_size_esp32s3 (src/convolution/esp_nn_conv_esp32s3.c)."""
    align = 64  # alignment (16) + the assembly's pre/post access margin (48)
    if f_w == 1 and f_h == 1 and pad_w == 0 and pad_h == 0 and stride_w == 1 and stride_h == 1:
        ch8 = (in_c + 7) & ~7
        transpose = 0 if in_w * in_h < 8 else 2 * 8 * ch8
        input_scratch = in_w * in_h * ch8 if in_c % 8 else 0
        return input_scratch + ch8 * out_c + transpose + align  # the 1x1 path copies the whole filter
    row = f_w * in_c
    window = f_w * f_h * in_c
    if row < 16 <= window:  # im2col path
        window16 = (window + 15) & ~15
        return out_c * 4 + 16 + out_c * window16 + 16 + window16 + align
    ch16 = (in_c + 15) & ~15
    input_scratch = 0 if pad_w == 0 and pad_h == 0 else (in_w + 2 * pad_w) * (in_h + 2 * pad_h) * in_c
    filter_scratch = f_w * f_h * ch16 * out_c
    filter_align = (row + 15) // 16 * 16 * f_h * out_c
    pad_right = max(0, out_w * stride_w + f_w - 1 - in_w)
    pad_bottom = max(0, out_h * stride_h + f_h - 1 - in_h)
    boundary = (in_w + pad_right) * (in_h + pad_bottom) * in_c if pad_right > 0 or pad_bottom > 0 else 0
    return input_scratch + filter_scratch + filter_align + boundary + align + out_c * 4


def depthwise_s3(in_w: int, in_h: int, ch: int, f_w: int, f_h: int, out_w: int, out_h: int, stride_w: int,
                 stride_h: int, pad_w: int, pad_h: int, ch_mult: int) -> int:
    """esp_nn_get_depthwise_conv_scratch_size_esp32s3 (src/convolution/esp_nn_depthwise_conv_s8_esp32s3.c)."""
    filter_size = f_w * f_h * ch * ch_mult
    if ch_mult == 1 and ch % 8 == 0:
        if f_w == 3 and f_h == 3:
            if ch % 16 == 0:
                if pad_w or pad_h:
                    pw, ph = pad_w * 2, pad_h * 2
                else:
                    pw, ph = out_w * stride_w + f_w - 1 - in_w, out_h * stride_h + f_h - 1 - in_h
                if not (pw or ph):
                    return filter_size + 16
                full = (in_w + pw) * (in_h + ph) * ch
                if full <= 40 * 1024:
                    return filter_size + full + 16
                return filter_size + (in_w + pw) * f_h * ch + 16  # tiled: a strip of filter_ht rows
            if ch >= 12:  # padded to 16 channels, s8 path + compaction
                ch16 = (ch + 15) & ~15
                tpw = pad_w * 2 + max(0, out_w * stride_w + 2 - in_w)
                tph = pad_h * 2 + max(0, out_h * stride_h + 2 - in_h)
                return 9 * ch16 + (in_w + tpw) * (in_h + tph) * ch16 + out_w * out_h * ch16 + 64
            return 2 * (filter_size + in_w * in_h * ch) + 32
        s16 = 2 * (filter_size + in_w * in_h * ch)
        if s16 <= 48 * 1024:
            return s16 + 32
        return 2 * filter_size + 2 * in_w * f_h * ch + 32  # tiled
    if ch_mult == 1 and ch > 3:  # channels padded to 8, 16-byte aligned sections
        ch8 = (ch + 7) & ~7

        def up16(n: int) -> int:
            return (n + 15) & ~15

        input_start = up16(f_w * f_h * ch8 * 2)
        out_start = up16(input_start + in_w * in_h * ch8 * 2)
        bias_start = up16(out_start + out_w * out_h * ch8)
        return bias_start + 3 * ch8 * 4 + 16
    if ch_mult % 4 == 0:
        return 2 * (filter_size + in_w * in_h * ch) + 32
    return 32


def softmax_s3(width: int, height: int) -> int:
    """esp_nn_get_softmax_scratch_size_esp32s3 (src/softmax/esp_nn_softmax_s8_esp32s3.c)."""
    del height
    return width * 4


def size_of(r: Request) -> int:
    """The bytes esp-nn's S3 function returns for request ``r`` (its own ``bytes`` field is ignored)."""
    if r.kind == "conv":
        return conv_s3(r.in_w, r.in_h, r.in_c, r.f_w, r.f_h, r.out_w, r.out_h, r.out_c, r.stride_w, r.stride_h,
                       r.pad_w, r.pad_h)
    if r.kind == "depthwise":
        return depthwise_s3(r.in_w, r.in_h, r.in_c, r.f_w, r.f_h, r.out_w, r.out_h, r.stride_w, r.stride_h,
                            r.pad_w, r.pad_h, r.ch_mult)
    return softmax_s3(r.in_w, r.in_h)


def _tflm_padding(in_size: int, k: int, stride: int, dilation: int, same: bool) -> tuple[int, int]:
    """(output size, leading pad) as TFLite Micro's ComputePaddingHeightWidth computes them."""
    eff = (k - 1) * dilation + 1
    out = (in_size + stride - 1) // stride if same else (in_size - eff + stride) // stride
    total = max(0, (out - 1) * stride + eff - in_size)
    return out, total // 2


def model_requests(tflite: bytes) -> list[Request]:
    """Every scratch request the ESP-NN kernels make in Prepare for this model, in op order (int8 ops)."""
    from ..model.tflite_fb import FlatModel

    fm = FlatModel(tflite)
    out: list[Request] = []
    for op in fm.ops:
        if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "SOFTMAX") or fm.tensor_type(op.inputs[0]) != "INT8":
            continue
        shape = fm.tensor_shape(op.inputs[0])
        if op.name == "SOFTMAX":
            out.append(Request("softmax", op.index, shape[1], shape[2] if len(shape) > 2 else 1, 0,
                               bytes=softmax_s3(shape[1], 0)))
            continue
        _, in_h, in_w, in_c = shape
        fshape = fm.tensor_shape(op.inputs[1])  # conv [O, kh, kw, I]; depthwise [1, kh, kw, C*mult]
        _, out_h, out_w, out_c = fm.tensor_shape(op.outputs[0])
        o = op.options
        same = o.padding == fm.s.Padding.SAME
        _, pad_h = _tflm_padding(in_h, fshape[1], o.strideH, o.dilationHFactor, same)
        _, pad_w = _tflm_padding(in_w, fshape[2], o.strideW, o.dilationWFactor, same)
        kind = "conv" if op.name == "CONV_2D" else "depthwise"
        mult = 1 if kind == "conv" else int(o.depthMultiplier)
        r = Request(kind, op.index, in_w, in_h, in_c, fshape[2], fshape[1], out_w, out_h, out_c, o.strideW,
                    o.strideH, pad_w, pad_h, mult)
        out.append(Request(**(r.to_dict() | {"bytes": size_of(r)})))
    return out


def largest(tflite: bytes) -> int:
    """The largest single scratch request (0 when the model makes none)."""
    return max((r.bytes for r in model_requests(tflite)), default=0)
