"""yf_core, the firmware's portable C core, built for this host and called through ctypes.

The virtual board and the tests run the very C the chip runs. The library is compiled on first use into
``~/.cache/yamflash/native/<hash of sources and flags>/libyf_core.so`` (cachedir.py), so editing a source
rebuilds it and concurrent processes never load a half-written file. binding.py builds and loads it and mirrors its
structs; dsp.py wraps the frontend, patcher, quantizer and detector; codec.py the protocol pieces; device.py
the command handling the virtual board answers with. Callers use this package's names (``native.Frontend``).
"""

from __future__ import annotations

from .binding import (
    BUILD_DIR,
    CFLAGS,
    CMD_NAMES,
    CORE_DIR,
    DETECT_MAX_CLASSES,
    FRAME_HOP,
    FRAME_LEN,
    LINE_LOG,
    LINE_PROTO,
    MAX_LINE,
    NUM_MEL,
    PARSE_ARG,
    PARSE_BAD,
    PARSE_OK,
    PARSE_UNKNOWN_CMD,
    PATCH_FRAMES,
    PATCH_HOP,
    PAYLOAD_MAX,
    SPEC,
    BenchOp,
    BenchSummary,
    Cmd,
    DetectConfig,
    DetEvent,
    DeviceOps,
    FrontendConfig,
    Hello,
    JsonWriter,
    LineAsm,
    LineOut,
    OpErr,
    PatchReq,
    Stats,
    build,
    lib,
    library_path,
    sources,
)
from .codec import (
    LineAssembler,
    b64decode,
    b64encode,
    bench_summary,
    encode_json,
    parse_cmd,
)
from .device import (
    Device,
    DeviceApp,
    OpError,
    PatchRequest,
    detect_config,
    detector_settings,
)
from .dsp import (
    Detector,
    DetectorSettings,
    Frontend,
    Patcher,
    dequantize,
    mel_tables,
    quantize,
)

__all__ = [
    'BUILD_DIR', 'BenchOp', 'BenchSummary', 'CFLAGS', 'CMD_NAMES', 'CORE_DIR', 'Cmd', 'DETECT_MAX_CLASSES',
    'DetEvent', 'DetectConfig', 'Detector', 'DetectorSettings', 'Device', 'DeviceApp', 'DeviceOps', 'FRAME_HOP',
    'FRAME_LEN', 'Frontend', 'FrontendConfig', 'Hello', 'JsonWriter', 'LINE_LOG', 'LINE_PROTO', 'LineAsm',
    'LineAssembler', 'LineOut', 'MAX_LINE', 'NUM_MEL', 'OpErr', 'OpError', 'PARSE_ARG', 'PARSE_BAD', 'PARSE_OK',
    'PARSE_UNKNOWN_CMD', 'PATCH_FRAMES', 'PATCH_HOP', 'PAYLOAD_MAX', 'PatchReq', 'PatchRequest', 'Patcher',
    'SPEC', 'Stats', 'b64decode', 'b64encode', 'bench_summary', 'build', 'dequantize', 'detect_config',
    'detector_settings', 'encode_json', 'lib', 'library_path', 'mel_tables', 'parse_cmd', 'quantize', 'sources',
]
