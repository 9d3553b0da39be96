"""TensorFlow Lite Micro with esp-tflite-micro's ESP-NN kernels, built for this host from ../shared/sdk: the
library chip_arena.py runs the firmware's yf_inference.cpp on (and a -m32 program for the 32-bit figure).

The source lists are read from the upstream CMakeLists.txt files; objects are cached in
``~/.cache/yamflash/tflm-espnn-<hash of sources, flags and chip_host>/`` and only the model's kernels are
compiled. See chip_arena.py for what is built from where and why.
"""

from __future__ import annotations

import contextlib
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
