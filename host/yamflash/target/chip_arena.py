"""The chip's tensor arena, measured on the host: the firmware's own yf_inference.cpp on TensorFlow Lite Micro
built from esp-tflite-micro v1.3.7 with its ESP-NN kernels.

Why: the host's ``tflite-micro`` package runs reference kernels, which ask the arena for no scratch buffers;
on the ESP32-S3, esp-tflite-micro's ESP-NN kernels ask for what ``esp_nn_get_*_scratch_size_esp32s3``
returns (a whole 1 MiB filter copy for YAMNet's 1024->1024 1x1 conv). So the chip needs ~1.16 MB where the
host measures ~0.25 MB. Here the real kernel glue requests the real S3 sizes:

- TFLite Micro: the sources esp-tflite-micro's CMakeLists.txt compiles, with tensorflow/lite/micro/kernels/
  esp_nn/<op>.cc replacing the reference kernels of the same name, ``-DESP_NN`` (signal/ and the
  micro frontend, which nothing here links, are left out).
- ESP-NN: its portable C (the ``c_srcs`` of esp-nn's CMakeLists.txt) for the arithmetic, and the ESP32-S3
  C files that define the scratch-size functions, compiled on the host; the Xtensa assembly they refer to
  is replaced by aborting stubs (chip_host/esp_nn_s3_stubs.c). chip_host/include/esp_nn.h maps the names.
- ESP-IDF: chip_host/include/esp_heap_caps.h, esp_log.h and esp_timer.h; the heap emulates the board
  profile's internal RAM and PSRAM, so AllocArena's placement and its 4x PSRAM retry run as on the chip.

Nothing is copied from ../shared/sdk: everything compiles from there, into
``~/.cache/yamflash/tflm-espnn-<hash of sources, flags and chip_host>/`` (a few minutes once on 2 cores).

Host truth is not chip truth: this is a 64-bit build, so TFLite Micro's persistent structures (pointers in
tensors, nodes and op data) are larger than on the 32-bit chip and the figure is an upper bound of the
chip's (``HOST_POINTER_NOTE``); kernel arithmetic is esp-nn's portable C, not the S3 assembly.
"""

from __future__ import annotations

import contextlib
import ctypes as C
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..cachedir import cache_root
from ..errors import UserError

HOST_DIR = Path(str(resources.files(__package__).joinpath("chip_host")))  # package data
# The firmware's own inference code and ../shared/sdk exist only beside a source checkout (host/yamflash/ in it);
# an installed wheel has neither, so it records no chip figure unless YAMFLASH_SDK and a checkout are there.
CHECKOUT = Path(__file__).resolve().parents[3]
TFLM = "esp-tflite-micro-v1.3.7"
ESPNN = "esp-nn"
INFERENCE_CPP = CHECKOUT / "firmware" / "main" / "yf_inference.cpp"

# esp-tflite-micro's CMakeLists.txt flags that change code (-DESP_NN, TF_LITE_STATIC_MEMORY, C++ dialect,
# no RTTI/exceptions); -O2 instead of its -O3 to keep the cold build short (integer kernels: same results).
TFLM_DEFS = ["-DESP_NN", "-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON"]
CXXFLAGS = ["-std=gnu++14", "-O2", "-fPIC", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics", "-w",
            *TFLM_DEFS]
CFLAGS = ["-std=gnu17", "-O2", "-fPIC", "-w"]
# Our own C: warnings are errors (chip_host.c, the stubs, and the firmware's yf_inference.cpp as ESP-IDF
# v5.5 compiles it: gnu++2b, no RTTI/exceptions, TF_LITE_STATIC_MEMORY from the tflite component's interface).
OWN_CFLAGS = ["-std=gnu17", "-O2", "-fPIC", "-Wall", "-Wextra", "-Werror"]
APP_CXXFLAGS = ["-std=gnu++2b", "-O2", "-fPIC", "-fno-rtti", "-fno-exceptions", "-Wall", "-Wextra", "-Werror",
                "-DTF_LITE_STATIC_MEMORY"]
JOBS = 2  # the build machines have 2 cores shared with other work

MAX_SCRATCH = 2048  # chip_host.c's table of scratch requests (a rewritten YAMNet, chip/rewrite.py, makes ~270)
HOST_POINTER_NOTE = "64-bit host build: an upper bound of the 32-bit chip's figure"
# Capacities of the emulated heap while measuring: no internal RAM (so the arena goes to PSRAM, where a
# figure does not depend on the board) and PSRAM far above any model's need.
MEASURE_ARENA = 16 << 20
MEASURE_PSRAM = 1 << 30


def sdk_dir() -> Path | None:
    """../shared/sdk (or $YAMFLASH_SDK) when it holds esp-tflite-micro and esp-nn; None in a user's clone."""
    env = os.environ.get("YAMFLASH_SDK")
    sdk = Path(env) if env else CHECKOUT.parent / "shared" / "sdk"
    if not INFERENCE_CPP.is_file():  # an installed wheel: no firmware sources to measure with
        return None
    return sdk if (sdk / TFLM / "CMakeLists.txt").is_file() and (sdk / ESPNN / "CMakeLists.txt").is_file() else None


def need_sdk() -> Path:
    sdk = sdk_dir()
    if sdk is None:
        raise UserError("measuring the chip's arena needs esp-tflite-micro v1.3.7 and esp-nn sources in ../shared/sdk "
                        "(or set YAMFLASH_SDK to that folder).")
    return sdk


# ---- the source lists, read from the upstream CMakeLists.txt files ----------------------------------------


def _cmake_block(text: str, head: str) -> list[str]:
    """The quoted items of the first ``head(...)`` block of a CMakeLists.txt."""
    i = text.index(head)
    return re.findall(r'"([^"]+)"', text[i: text.index(")", i)])


def tflm_sources(sdk: Path) -> list[Path]:
    """What esp-tflite-micro's CMakeLists.txt compiles into the tflite-lib component, ESP-NN kernels in place
    of the reference ones it removes; without signal/ and the micro frontend (not linked here)."""
    top = sdk / TFLM
    text = (top / "CMakeLists.txt").read_text()
    tfl = top / "tensorflow" / "lite"
    var = {"${tflite_dir}": tfl, "${tfmicro_dir}": tfl / "micro", "${tfmicro_kernels_dir}": tfl / "micro" / "kernels",
           "${compiler_mlir_dir}/": top / "tensorflow" / "compiler" / "mlir"}

    def expand(items: list[str]) -> list[Path]:
        out = []
        for s in items:
            for k, v in var.items():
                if s.startswith(k):
                    out.append(v / s[len(k):].lstrip("/"))
                    break
        return out

    micro = expand(_cmake_block(text, "set(srcs_micro"))
    micro = [p for p in micro if p not in expand(_cmake_block(text, "list(REMOVE_ITEM srcs_micro"))]
    micro += expand(_cmake_block(text, "list(APPEND srcs_micro"))
    kdir = tfl / "micro" / "kernels"
    removed = set(expand(_cmake_block(text, "list(REMOVE_ITEM srcs_kernels")))
    kernels = [p for p in sorted(kdir.glob("*.c*")) if p.suffix in (".c", ".cc") and p not in removed]
    esp_nn = sorted((kdir / "esp_nn").glob("*.cc"))
    bridge = [p for p in sorted((tfl / "micro" / "tflite_bridge").glob("*.c*")) if p.suffix in (".c", ".cc")]
    extra = expand([s for s in _cmake_block(text, "set(lib_srcs") if not s.startswith(("${srcs_", "${esp_nn",
                                                                                           "${src_", "${signal"))])
    srcs = micro + kernels + esp_nn + bridge + extra
    if missing := [str(p) for p in srcs if not p.is_file()]:
        raise UserError(f"esp-tflite-micro in {sdk} lacks {missing[0]}; restore ../shared/sdk.")
    return srcs


def espnn_sources(sdk: Path) -> list[Path]:
    """esp-nn's portable C (its CMakeLists.txt's c_srcs) plus the ESP32-S3 C files that define the
    scratch-size functions esp-tflite-micro's kernels call."""
    top = sdk / ESPNN
    text = (top / "CMakeLists.txt").read_text()
    portable = [top / s for s in _cmake_block(text, "set(c_srcs")]
    s3 = [top / "src" / "convolution" / "esp_nn_conv_esp32s3.c",
          top / "src" / "convolution" / "esp_nn_depthwise_conv_s8_esp32s3.c",
          top / "src" / "softmax" / "esp_nn_softmax_s8_esp32s3.c"]
    listed = set(_cmake_block(text, "set(s3_srcs"))
    for p in s3:  # the chip build compiles these very files
        if str(p.relative_to(top)) not in listed:
            raise UserError(f"{p} is not among esp-nn's ESP32-S3 sources any more; update chip_arena.py.")
    return portable + s3


def tflm_includes(sdk: Path) -> list[Path]:
    top = sdk / TFLM
    return [top, top / "third_party" / "gemmlowp", top / "third_party" / "flatbuffers" / "include",
            top / "third_party" / "ruy", top / "third_party" / "kissfft",
            sdk / ESPNN / "include", sdk / ESPNN / "src" / "common"]


def _shim_headers() -> list[Path]:
    """The stand-in headers TFLite Micro and esp-nn are compiled against (part of the library's key)."""
    return sorted((HOST_DIR / "include").glob("*.h"))


HOST_SOURCES = (HOST_DIR / "chip_host.c", HOST_DIR / "esp_nn_s3_stubs.c")  # linked into each app
EXPORTS = HOST_DIR / "exports.map"  # the app's exported symbols (see the file for why)


def _tree_digest(h: Any, folder: Path) -> None:
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes() + b"\0")


def _compiler(name: str, fallback: str) -> str:
    cc = os.environ.get(name) or shutil.which(fallback)
    if not cc:
        raise UserError(f"no {fallback} found to build TensorFlow Lite Micro for the host; install gcc/g++.")
    return cc


def lib_key(sdk: Path, arch: tuple[str, ...] = ()) -> str:
    """Hash of everything the library is built from: both source trees (content), flags, compilers, shim headers."""
    h = hashlib.sha256(b"objects v2\0")  # cache layout: one object per source
    _tree_digest(h, sdk / TFLM)
    _tree_digest(h, sdk / ESPNN)
    for p in _shim_headers():
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(" ".join(CXXFLAGS + CFLAGS + OWN_CFLAGS + list(arch)).encode())
    for name, fb in (("CXX", "g++"), ("CC", "gcc")):
        h.update(subprocess.run([_compiler(name, fb), "--version"], capture_output=True, text=True).stdout.encode())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder at a time per output (another process building the same waits, then finds it done)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run(cmd: list[str]) -> None:
    res = subprocess.run(["nice", "-n", "10", *cmd], capture_output=True, text=True)
    if res.returncode != 0:
        raise UserError(f"building the chip-arena library failed:\n{' '.join(cmd)}\n{res.stderr.strip()[-3000:]}")


@dataclass
class Library:
    objects: list[Path]  # compiled objects of TensorFlow Lite Micro + esp-nn that this app links
    folder: Path  # ~/.cache/yamflash/tflm-espnn-<key>/
    compiled: int  # objects compiled by this call (0: all came from the cache)
    seconds: float


def kernel_sources(srcs: list[Path], ops: list[str] | None) -> list[Path]:
    """The sources to compile for a model using ``ops`` (BuiltinOperator names): everything outside
    tensorflow/lite/micro/kernels, kernel_util.cc, and for each op the file that defines its Register_<OP>()
    (the ESP-NN one where esp-tflite-micro substitutes it) with its <stem>_common.cc. None: all of them.
    Compiling only these keeps a cold build to a third; build_app falls back to all when the link says one
    is missing."""
    if ops is None:
        return srcs
    kdir = next(p.parent for p in srcs if p.name == "kernel_util.cc" and p.parent.name == "kernels")
    kernels = [p for p in srcs if kdir in p.parents]
    keep = [p for p in srcs if kdir not in p.parents] + [kdir / "kernel_util.cc"]
    for op in ops:
        pat = re.compile(rf"\bRegister_{re.escape(op)}\(\)\s*\{{")
        for p in kernels:
            if pat.search(p.read_text(errors="replace")):
                keep += [p] + [q for q in kernels if q.name == f"{p.stem}_common.cc"]
    return sorted(set(keep), key=srcs.index)


def _object_name(sdk: Path, src: Path) -> str:
    rel = src.relative_to(sdk).with_suffix("")
    return "__".join(rel.parts) + ".o"


def compile_objects(sdk: Path, srcs: list[Path], log: Any = None, arch: tuple[str, ...] = ()) -> Library:
    """Each source compiled once into the cache folder of the library's key (``nice``, JOBS at a time); an
    object is written whole (compiled beside, then renamed) so a concurrent user never links half of one."""
    out = cache_root() / f"tflm-espnn-{lib_key(sdk, arch)}"
    objs = [out / _object_name(sdk, p) for p in srcs]
    todo = [(p, o) for p, o in zip(srcs, objs, strict=True) if not o.is_file()]
    if not todo:
        return Library(objs, out, 0, 0.0)
    t0 = time.monotonic()
    with _locked(out):
        out.mkdir(parents=True, exist_ok=True)
        todo = [(p, o) for p, o in todo if not o.is_file()]
        cxx, cc = _compiler("CXX", "g++"), _compiler("CC", "gcc")
        inc = [f"-I{p}" for p in [HOST_DIR / "include", *tflm_includes(sdk)]]
        if log and todo:
            log(f"compiling {len(todo)} files of TensorFlow Lite Micro with ESP-NN kernels for the chip arena "
                f"(once; cached in {out})")

        def one(job: tuple[Path, Path]) -> None:
            src, obj = job
            tmp = obj.with_suffix(f".{os.getpid()}.tmp")
            flags = CXXFLAGS if src.suffix == ".cc" else CFLAGS
            _run([cxx if src.suffix == ".cc" else cc, *flags, *arch, *inc, "-c", str(src), "-o", str(tmp)])
            os.replace(tmp, obj)

        with ThreadPoolExecutor(JOBS) as pool:
            list(pool.map(one, todo))
    return Library(objs, out, len(todo), time.monotonic() - t0)


def _resolver_ops(headers: Path) -> list[str]:
    """The BuiltinOperator names the generated yf_op_resolver.h registers."""
    return re.findall(r'return "([A-Z0-9_]+)";', (headers / "yf_op_resolver.h").read_text())


def build_app(headers: Path, sdk: Path | None = None, log: Any = None) -> tuple[Path, Library]:
    """libyf_chip.so: yf_inference.cpp (unmodified) compiled against ``headers`` (the folder holding the
    generated yf_model_params.h and yf_op_resolver.h), chip_host.c and the S3 stubs, linked with the cached
    TensorFlow Lite Micro + esp-nn objects its ops need."""
    sdk = sdk or need_sdk()
    all_srcs = tflm_sources(sdk) + espnn_sources(sdk)
    lib = compile_objects(sdk, kernel_sources(all_srcs, _resolver_ops(headers)), log)
    h = hashlib.sha256(lib.folder.name.encode())
    for p in [INFERENCE_CPP, *HOST_SOURCES, EXPORTS, *(headers / n for n in ("yf_model_params.h",
                                                                           "yf_op_resolver.h"))]:
        h.update(p.read_bytes() + b"\0")
    h.update(" ".join(APP_CXXFLAGS + OWN_CFLAGS).encode())
    out = cache_root() / f"chip-app-{h.hexdigest()[:16]}" / "libyf_chip.so"
    if out.is_file():
        return out, lib
    with _locked(out.parent):
        if out.is_file():
            return out, lib
        out.parent.mkdir(parents=True, exist_ok=True)
        inc = [f"-I{headers}", f"-I{INFERENCE_CPP.parent}", f"-I{HOST_DIR / 'include'}",
               *(f"-isystem{p}" for p in tflm_includes(sdk))]
        work = Path(tempfile.mkdtemp(dir=out.parent))
        try:
            objs = [str(work / f"{p.stem}.o") for p in HOST_SOURCES]
            for src, obj in zip(HOST_SOURCES, objs, strict=True):
                _run([_compiler("CC", "gcc"), *OWN_CFLAGS, f"-I{HOST_DIR / 'include'}",
                      *(f"-isystem{p}" for p in tflm_includes(sdk)), "-c", str(src), "-o", obj])
            app = work / "yf_inference.o"
            _run([_compiler("CXX", "g++"), *APP_CXXFLAGS, *inc, "-c", str(INFERENCE_CPP), "-o", str(app)])

            def link(lib_objs: list[Path]) -> None:
                _run([_compiler("CXX", "g++"), "-shared", str(app), *objs, *map(str, lib_objs), "-Wl,-z,defs",
                      f"-Wl,--version-script={EXPORTS}", "-Wl,-Bsymbolic", "-lm", "-o", str(work / out.name)])

            try:
                link(lib.objects)
            except UserError:  # an op whose kernel lives elsewhere: take every kernel (cached from now on)
                full = compile_objects(sdk, all_srcs, log)
                lib = Library(full.objects, full.folder, lib.compiled + full.compiled, lib.seconds + full.seconds)
                link(lib.objects)
            os.replace(work / out.name, out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return out, lib


def measure_32bit(headers: Path, model: bytes, sdk: Path | None = None, log: Any = None) -> dict[str, int]:
    """arena_used_bytes of the same build compiled for a 32-bit target (``-m32``: pointers and size_t as on
    the chip; needs gcc-multilib), run as a program (a 64-bit Python cannot load it): the measure of how much
    the 64-bit figure overstates the chip's. ``headers`` as for build_app; the arena goes in PSRAM."""
    sdk = sdk or need_sdk()
    arch = ("-m32",)
    lib = compile_objects(sdk, kernel_sources(tflm_sources(sdk) + espnn_sources(sdk), _resolver_ops(headers)), log,
                          arch)
    with tempfile.TemporaryDirectory() as td:
        inc = [f"-I{headers}", f"-I{INFERENCE_CPP.parent}", f"-I{HOST_DIR / 'include'}",
               *(f"-isystem{p}" for p in tflm_includes(sdk))]
        objs = []
        for src in [*HOST_SOURCES, HOST_DIR / "measure_main.c"]:
            objs.append(f"{td}/{src.stem}.o")
            _run([_compiler("CC", "gcc"), *OWN_CFLAGS, *arch, *inc, "-c", str(src), "-o", objs[-1]])
        exe, model_file = f"{td}/measure32", f"{td}/model.tflite"
        _run([_compiler("CXX", "g++"), *APP_CXXFLAGS, *arch, *inc, str(INFERENCE_CPP), *objs, *map(str, lib.objects),
              "-lm", "-o", exe])
        Path(model_file).write_bytes(model)
        res = subprocess.run([exe, model_file, str(MEASURE_PSRAM)], capture_output=True, text=True, timeout=120)
    vals = dict(kv.split("=") for kv in res.stdout.split())
    if res.returncode != 0 or vals.get("rc") != "0":
        raise UserError(f"the 32-bit build could not allocate the model: {res.stdout.strip()} {res.stderr[-500:]}")
    return {k: int(v) for k, v in vals.items()}


# ---- running it --------------------------------------------------------------------------------------------


class InferInfo(C.Structure):  # yf_inference.h yf_infer_info_t (x86-64/aarch64 ABI)
    _fields_ = [("arena_size", C.c_size_t), ("arena_used", C.c_size_t), ("arena_where", C.c_char_p),
                ("in_scale", C.c_float), ("out_scale", C.c_float), ("in_zp", C.c_int32), ("out_zp", C.c_int32),
                ("in_bytes", C.c_size_t), ("out_bytes", C.c_size_t)]


class Scratch(C.Structure):  # chip_host.c yfh_scratch_t
    _fields_ = [(n, C.c_int32) for n in ("kind", "in_w", "in_h", "in_c", "f_w", "f_h", "out_w", "out_h", "out_c",
                                         "stride_w", "stride_h", "pad_w", "pad_h", "ch_mult", "bytes")]


class DataDims(C.Structure):  # esp_nn_defs.h data_dims_t
    _fields_ = [("width", C.c_int32), ("height", C.c_int32), ("channels", C.c_int32), ("extra", C.c_int32)]


class ConvParams(C.Structure):  # esp_nn_defs.h conv_params_t
    _fields_ = [(n, C.c_int32) for n in ("in_offset", "out_offset", "stride_w", "stride_h", "pad_w", "pad_h",
                                         "dil_w", "dil_h", "act_min", "act_max")]


class DwConvParams(C.Structure):  # esp_nn_defs.h dw_conv_params_t
    _fields_ = [(n, C.c_int32) for n in ("in_offset", "out_offset", "ch_mult", "stride_w", "stride_h", "pad_w",
                                         "pad_h", "dil_w", "dil_h", "act_min", "act_max")]


KINDS = ("conv", "depthwise", "softmax")
MALLOC_CAP_8BIT, MALLOC_CAP_SPIRAM = 1 << 2, 1 << 10


class ChipInterpreter:
    """One instance of yf_inference.cpp (its globals are one interpreter): a private copy of the library is
    loaded per instance, with the emulated heap set to ``internal`` and ``psram`` bytes and ``psram_taken``
    of PSRAM already in use (the model, when SPIFFS storage copies it there)."""

    def __init__(self, lib: Path, model: bytes, internal: int, psram: int, psram_taken: int = 0,
                 arena_bytes: int | None = None, arena_internal: bool = False):
        fd, copy = tempfile.mkstemp(suffix=".so", prefix="yf_chip_")
        os.close(fd)
        shutil.copyfile(lib, copy)
        try:
            self.dll = C.CDLL(copy, mode=os.RTLD_LOCAL)
        finally:
            os.unlink(copy)  # the mapping stays; nothing is left on disk
        d = self.dll
        d.yf_infer_init.argtypes = [C.c_void_p, C.c_char_p, C.c_size_t]
        d.yf_infer_info.argtypes = [C.POINTER(InferInfo)]
        d.yf_infer_input.restype = C.POINTER(C.c_int8)
        d.yf_infer_output.restype = C.POINTER(C.c_int8)
        d.yf_infer_invoke.argtypes = [C.POINTER(C.c_uint32)]
        d.yfh_heap_config.argtypes = [C.c_size_t, C.c_size_t]
        d.yfh_heap_used.restype = C.c_size_t
        d.yfh_heap_peak.restype = C.c_size_t
        d.yfh_heap_failed.restype = C.c_size_t
        d.yfh_heap_failed.argtypes = [C.POINTER(C.c_int)]
        d.yfh_scratch_get.argtypes = [C.c_int, C.POINTER(Scratch)]
        d.yfh_log_read.restype = C.c_char_p
        d.heap_caps_malloc.restype = C.c_void_p
        d.heap_caps_malloc.argtypes = [C.c_size_t, C.c_uint32]
        d.yfh_heap_config(internal, psram)
        if arena_bytes is not None:  # a variable_arena() build
            C.c_size_t.in_dll(d, "yfh_arena_bytes").value = arena_bytes
            C.c_int.in_dll(d, "yfh_arena_internal").value = int(arena_internal)
        if psram_taken and not d.heap_caps_malloc(psram_taken, MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT):
            raise UserError(f"the model ({psram_taken:,} bytes) does not fit the board's PSRAM ({psram:,} bytes).")
        # TFLite Micro keeps pointers into the model: the buffer lives as long as this object, 16-aligned.
        self._model = np.frombuffer(model, np.uint8).copy()
        self.rc: int | None = None
        self.err = ""

    def init(self) -> int:
        """yf_infer_init: 0, -1 (err set) or -2 (ran with the 4x PSRAM arena); TFLite Micro's own messages
        (``Requested N, available M``) go to stderr, and land in ``self.tflm_log``."""
        buf = C.create_string_buffer(256)
        with _capture_fd2() as cap:
            self.rc = int(self.dll.yf_infer_init(self._model.ctypes.data, buf, len(buf)))
        self.tflm_log = cap.text
        self.err = buf.value.decode(errors="replace")
        return self.rc

    def info(self) -> dict[str, Any]:
        i = InferInfo()
        self.dll.yf_infer_info(C.byref(i))
        return {"size": int(i.arena_size), "used": int(i.arena_used),
                "where": (i.arena_where or b"").decode(), "in_bytes": int(i.in_bytes), "out_bytes": int(i.out_bytes)}

    def heap(self) -> dict[str, Any]:
        region = C.c_int(-1)
        failed = int(self.dll.yfh_heap_failed(C.byref(region)))
        where = ("internal", "psram")[region.value] if region.value >= 0 else None
        return {"internal_used": int(self.dll.yfh_heap_used(0)), "psram_used": int(self.dll.yfh_heap_used(1)),
                "internal_peak": int(self.dll.yfh_heap_peak(0)), "psram_peak": int(self.dll.yfh_heap_peak(1)),
                "failed": {"bytes": failed, "where": where} if where else None}

    def log(self) -> str:
        return (self.dll.yfh_log_read() or b"").decode(errors="replace")

    def scratch(self) -> list[dict[str, int | str]]:
        """Every scratch-size request the ESP-NN kernels made (Prepare), in order."""
        out = []
        n = int(self.dll.yfh_scratch_count())
        if n > MAX_SCRATCH:
            raise UserError(f"{n} scratch requests overflow chip_host.c's table of {MAX_SCRATCH}.")
        for k in range(n):
            s = Scratch()
            self.dll.yfh_scratch_get(k, C.byref(s))
            row: dict[str, int | str] = {f: int(getattr(s, f)) for f, _ in Scratch._fields_}
            row["kind"] = KINDS[int(s.kind)]
            out.append(row)
        return out

    def run_int8(self, patch: np.ndarray) -> np.ndarray:
        """One int8 input in, the raw int8 output out (yf_infer_input/invoke/output)."""
        inf = self.info()
        x = np.ascontiguousarray(np.asarray(patch, np.int8).reshape(-1))
        if x.size != inf["in_bytes"]:
            raise ValueError(f"input has {x.size} values, the model takes {inf['in_bytes']}")
        C.memmove(self.dll.yf_infer_input(), x.ctypes.data, x.size)
        us = C.c_uint32()
        if self.dll.yf_infer_invoke(C.byref(us)) != 0:
            raise UserError("Invoke failed in the chip build of TensorFlow Lite Micro.")
        return np.ctypeslib.as_array(self.dll.yf_infer_output(), (inf["out_bytes"],)).copy()

    # esp-nn's compiled S3 functions, called directly (the tests compare them with espnn_scratch.py).
    def conv_scratch_s3(self, r: dict[str, int]) -> int:
        f = self.dll.esp_nn_get_conv_scratch_size_esp32s3
        return int(f(C.byref(DataDims(r["in_w"], r["in_h"], r["in_c"], 1)), C.byref(DataDims(r["f_w"], r["f_h"],
                     r["in_c"], 0)), C.byref(DataDims(r["out_w"], r["out_h"], r["out_c"], 1)),
                     C.byref(ConvParams(0, 0, r["stride_w"], r["stride_h"], r["pad_w"], r["pad_h"], 0, 0, -128,
                                        127))))

    def depthwise_scratch_s3(self, r: dict[str, int]) -> int:
        f = self.dll.esp_nn_get_depthwise_conv_scratch_size_esp32s3
        return int(f(C.byref(DataDims(r["in_w"], r["in_h"], r["in_c"], 1)), C.byref(DataDims(r["f_w"], r["f_h"],
                     r["in_c"] * r["ch_mult"], 0)), C.byref(DataDims(r["out_w"], r["out_h"], r["out_c"], 1)),
                     C.byref(DwConvParams(0, 0, r["ch_mult"], r["stride_w"], r["stride_h"], r["pad_w"], r["pad_h"],
                                          0, 0, -128, 127))))

    def softmax_scratch_s3(self, width: int, height: int) -> int:
        return int(self.dll.esp_nn_get_softmax_scratch_size_esp32s3(C.c_int32(width), C.c_int32(height)))


class _Captured:
    text = ""


@contextlib.contextmanager
def _capture_fd2() -> Iterator[_Captured]:
    """TFLite Micro's DebugLog writes to fd 2: catch it into ``.text`` (and off the user's terminal)."""
    cap = _Captured()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            yield cap
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            cap.text = f.read().decode(errors="replace")


# ---- the figure model.json records ------------------------------------------------------------------------

INFERENCE_HEADERS = {"generated/yf_model_params.h.j2": "yf_model_params.h",
                     "generated/yf_op_resolver.h.j2": "yf_op_resolver.h"}


def write_headers(plan: Any, out: Path) -> Path:
    """The generated yf_model_params.h and yf_op_resolver.h of a gen Plan, into ``out``."""
    from . import gen

    out.mkdir(parents=True, exist_ok=True)
    for tpl, name in INFERENCE_HEADERS.items():
        (out / name).write_bytes(gen.render_one(plan, tpl))
    return out


VARIABLE_ARENA = """extern "C" {
extern size_t yfh_arena_bytes; /* chip_host.c: set by the host before yf_infer_init */
extern int yfh_arena_internal;
}
#define YF_ARENA_BYTES yfh_arena_bytes
#define YF_ARENA_INTERNAL yfh_arena_internal
"""


def variable_arena(headers: Path) -> Path:
    """Turn the generated YF_ARENA_BYTES / YF_ARENA_INTERNAL into variables the host sets before each
    yf_infer_init, so one build of yf_inference.cpp can try many arena sizes and placements (the test of the
    virtual board's allocation mirror, and the search for the smallest arena). yf_inference.cpp itself is
    untouched; only its copy of yf_model_params.h changes."""
    p = headers / "yf_model_params.h"
    text, n = re.subn(r"^#define YF_ARENA_BYTES \d+u\n(?:.*\n)*?#define YF_ARENA_INTERNAL [01]\n", VARIABLE_ARENA,
                      p.read_text(), count=1, flags=re.M)
    if n != 1:
        raise UserError(f"{p} has no YF_ARENA_BYTES ... YF_ARENA_INTERNAL block to replace.")
    p.write_text(text)
    return headers


def measuring_plan(manifest: dict[str, Any], model: bytes, work: Path) -> Any:
    """gen's plan for this model on the virtual-board profile, with the arena set to MEASURE_ARENA in PSRAM:
    the headers yf_inference.cpp is compiled against to find out what AllocateTensors uses."""
    from .. import manifest as mf
    from . import gen

    (work / "model.tflite").write_bytes(model)
    mf.write(work / "model.json", manifest)
    plan = gen.make_plan(work / "model.json", gen.GenConfig(profile="sim"))
    plan.arena_bytes, plan.arena_where = MEASURE_ARENA, "psram"
    return plan


def measure(manifest: dict[str, Any], model: bytes, log: Any = None) -> dict[str, Any] | None:
    """model.json's chip figures: ``arena_used_bytes`` of yf_inference.cpp on the ESP-NN build (arena in
    PSRAM, as large as it likes), and the scratch requests behind it. None where ../shared/sdk is absent."""
    from ..chip import scratch as espnn_scratch

    sdk = sdk_dir()
    if sdk is None:
        return None
    with tempfile.TemporaryDirectory() as td:
        plan = measuring_plan(manifest, model, Path(td))
        so, _ = build_app(write_headers(plan, Path(td) / "generated"), sdk, log)
    it = ChipInterpreter(so, model, internal=0, psram=MEASURE_PSRAM)
    if it.init() != 0:
        tflm = " / ".join(ln for ln in it.tflm_log.splitlines() if ln.strip())[-400:]
        raise UserError(f"TensorFlow Lite Micro with ESP-NN kernels cannot allocate this model: {it.err}; "
                        f"TensorFlow Lite Micro said: {tflm}")
    scratch = it.scratch()
    return {"chip_espnn": it.info()["used"], "largest_scratch": max((int(r["bytes"]) for r in scratch), default=0),
            "scratch_requests": len(scratch),
            "chip_measured_on": f"firmware yf_inference.cpp on esp-tflite-micro v1.3.7 with its ESP-NN kernels; "
                                f"ESP32-S3 scratch sizes of esp-nn {espnn_version(sdk)} (../shared/sdk; the firmware "
                                f"pins {espnn_scratch.ESPNN_PINNED}, not public); {HOST_POINTER_NOTE}"}


def espnn_version(sdk: Path) -> str:
    m = re.search(r'^version:\s*"?([^"\s]+)', (sdk / ESPNN / "idf_component.yml").read_text(), re.M)
    return m.group(1) if m else "of unknown version"
