"""Compile the firmware as an ESP32-S3 build of ESP-IDF v5.5 would, with the host's gcc/g++ 12.

What matches the chip build: every source of firmware/main, components/yf_core and `yamflash gen`'s
output; the real ESP-IDF v5.5, esp-tflite-micro v1.3.7, esp-nn and esp-dsp include trees of ../shared/sdk,
component by component as ESP-IDF resolves main's PRIV_REQUIRES (public includes of each required
component and of what it REQUIRES, plus the common requirements); an sdkconfig.h made by kconfgen from the
generated sdkconfig.defaults (sdkconfig.py); ESP-IDF's own compile flags (compile_flags() below: read from
the sdk's tools/cmake/build.cmake, plus those of the top-level CMakeLists.txt and toolchain file, which the
sdk lacks).

What differs, by necessity: the host compiler targets x86-64 (so `long`/pointer sizes and glibc's headers
are the host's, not Xtensa/newlib's), Xtensa-only flags are left out (see TOOLCHAIN_FLAGS), and FreeRTOS
comes with its `portable/linux` port headers from the same FreeRTOS-Kernel (ESP-IDF's linux target),
because the Xtensa port's headers need the Xtensa toolchain. The gate compiles to assembly (`-S`) and
never assembles; build_driver() (at the end) makes host objects only for tests that run the code here.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import sdkconfig as kconfig

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHIM = HERE / "shim"  # portmacro.h (dual-core macros for the linux port), sys/reent.h: see each file
FIRMWARE = ROOT / "firmware"
SDK = Path(os.environ.get("YAMFLASH_SDK", ROOT.parent / "shared" / "sdk"))
IDF = SDK / "esp-idf-v5.5"
TFLM = SDK / "esp-tflite-micro-v1.3.7"
NN = SDK / "esp-nn"
DSP = SDK / "esp-dsp-v1.8.2"
TARGET = kconfig.TARGET
JOBS = 2  # the CI machine has 2 cores

PROFILES = ("esp32s3-n16r8", "esp32s3-n8r2")
CONSOLES = ("usb-serial-jtag", "uart")
MICS = ("i2s", "pdm")
STORAGES = ("spiffs", "partition")


def missing_sdk() -> str | None:
    """Why the gate cannot run here, or None."""
    for d in (IDF, TFLM, NN, DSP):
        if not d.is_dir():
            return f"{d} is absent (the real ESP-IDF/TFLite Micro sources live in ../shared/sdk; set YAMFLASH_SDK)"
    if shutil.which("gcc") is None or shutil.which("g++") is None:
        return "gcc/g++ are not installed"
    try:
        import kconfiglib  # noqa: F401  (shipped by esp-idf-kconfig)
    except ImportError:
        return "esp-idf-kconfig is not installed (pip install -e '.[test]')"
    return None


# ---- components -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """Public include dirs (for an esp32s3 build) and public REQUIRES of one component, as its
    CMakeLists.txt in ../shared/sdk registers them."""

    root: Path
    includes: tuple[str, ...]
    requires: tuple[str, ...] = ()
    defines: tuple[str, ...] = ()  # INTERFACE/PUBLIC compile definitions


C = IDF / "components"
FREERTOS_PORT = "linux"  # see the module docstring
COMPONENTS: dict[str, Component] = {
    # components/freertos/CMakeLists.txt: config/include(+/freertos), config/${arch}/include, the kernel's
    # include, portable/${arch}/include(+/freertos), esp_additions/include; arch = linux here (docstring),
    # which also adds PUBLIC projCOVERAGE_TEST=0.
    "freertos": Component(C / "freertos", ("config/include", "config/include/freertos",
                                           f"config/{FREERTOS_PORT}/include", "FreeRTOS-Kernel/include",
                                           f"FreeRTOS-Kernel/portable/{FREERTOS_PORT}/include",
                                           f"FreeRTOS-Kernel/portable/{FREERTOS_PORT}/include/freertos",
                                           "esp_additions/include"), defines=("projCOVERAGE_TEST=0",)),
    # components/newlib/CMakeLists.txt: platform_include, whose headers wrap newlib's own (#include_next,
    # <machine/...>), which glibc does not have. The C library here is the host's, so it is left out, as
    # ESP-IDF's linux target leaves newlib out (the same CMakeLists.txt returns early for linux).
    "newlib": Component(C / "newlib", ()),
    # components/esp_hw_support/CMakeLists.txt: public_include_dirs; REQUIRES soc.
    "esp_hw_support": Component(C / "esp_hw_support", (
        "include", "include/soc", f"include/soc/{TARGET}", "dma/include", "ldo/include", "debug_probe/include",
        "mspi_timing_tuning/include", "mspi_timing_tuning/tuning_scheme_impl/include", "power_supply/include"),
        ("soc",)),
    # components/heap/CMakeLists.txt: include, tlsf (a submodule, absent from the sdk).
    "heap": Component(C / "heap", ("include", "tlsf")),
    "log": Component(C / "log", ("include",)),
    # components/soc/CMakeLists.txt: include, ${target}, ${target}/include, ${target}/register; INTERFACE
    # SOC_MMU_PAGE_SIZE=CONFIG_MMU_PAGE_SIZE and SOC_XTAL_FREQ_MHZ=CONFIG_XTAL_FREQ.
    "soc": Component(C / "soc", ("include", TARGET, f"{TARGET}/include", f"{TARGET}/register"),
                     defines=("SOC_MMU_PAGE_SIZE=CONFIG_MMU_PAGE_SIZE", "SOC_XTAL_FREQ_MHZ=CONFIG_XTAL_FREQ")),
    # components/hal/CMakeLists.txt: platform_port/include, ${target}/include, include; REQUIRES soc esp_rom.
    "hal": Component(C / "hal", ("platform_port/include", f"{TARGET}/include", "include"), ("soc", "esp_rom")),
    # components/esp_rom/CMakeLists.txt: include, ${target}/include, ${target}/include/${target}, ${target}.
    "esp_rom": Component(C / "esp_rom", ("include", f"{TARGET}/include", f"{TARGET}/include/{TARGET}", TARGET)),
    "esp_common": Component(C / "esp_common", ("include",)),
    "esp_system": Component(C / "esp_system", ("include",)),
    # components/xtensa/CMakeLists.txt: ${target}/include, include, deprecated_include.
    "xtensa": Component(C / "xtensa", (f"{TARGET}/include", "include", "deprecated_include")),
    "cxx": Component(C / "cxx", ()),  # not in the sdk; registers no include dirs (esp-idf v5.5)
    "esp_timer": Component(C / "esp_timer", ("include",)),
    "esp_partition": Component(C / "esp_partition", ("include",)),  # OS build: REQUIRES nothing
    "spiffs": Component(C / "spiffs", ("include",), ("esp_partition",)),
    "esp_driver_i2s": Component(C / "esp_driver_i2s", ("include",)),
    "esp_driver_gpio": Component(C / "esp_driver_gpio", ("include",)),
    "esp_driver_uart": Component(C / "esp_driver_uart", ("include",)),
    "esp_driver_usb_serial_jtag": Component(C / "esp_driver_usb_serial_jtag", ("include",)),
    # components/esp_psram/CMakeLists.txt: include, xip_impl/include (SOC_SPIRAM_XIP_SUPPORTED on the S3).
    "esp_psram": Component(C / "esp_psram", ("include", "xip_impl/include")),
    "esp_app_format": Component(C / "esp_app_format", ("include",)),
    "vfs": Component(C / "vfs", ("include",)),
    "esp_ringbuf": Component(C / "esp_ringbuf", ("include",)),
    "esp_pm": Component(C / "esp_pm", ("include",)),
    "esp_mm": Component(C / "esp_mm", ("include",)),
    # components/spi_flash/CMakeLists.txt: include; REQUIRES hal.
    "spi_flash": Component(C / "spi_flash", ("include",), ("hal",)),
    # components/bootloader_support/CMakeLists.txt (app build): include, bootloader_flash/include; REQUIRES soc.
    "bootloader_support": Component(C / "bootloader_support", ("include", "bootloader_flash/include"), ("soc",)),
    # driver/CMakeLists.txt: the legacy drivers' public requirements.
    "driver": Component(C / "driver", ("deprecated", "i2c/include", "twai/include"),
                        ("esp_pm", "esp_ringbuf", "freertos", "soc", "hal", "esp_hw_support")),
    # Managed components. esp-tflite-micro: INCLUDE_DIRS . third_party/{gemmlowp,flatbuffers/include,ruy,
    # kissfft} and INTERFACE -DTF_LITE_STATIC_MEMORY (its CMakeLists.txt).
    "espressif__esp-tflite-micro": Component(TFLM, (".", "third_party/gemmlowp", "third_party/flatbuffers/include",
                                                    "third_party/ruy", "third_party/kissfft"),
                                             defines=("TF_LITE_STATIC_MEMORY",)),
    "espressif__esp-nn": Component(NN, ("include", "src/common")),
    # esp-dsp v1.8.2 CMakeLists.txt include_dirs (modules/*/include, in its order).
    "espressif__esp-dsp": Component(DSP, tuple(
        f"modules/{d}/include" for d in (
            "dotprod", "support", "support/mem", "windows", "windows/hann", "windows/blackman",
            "windows/blackman_harris", "windows/blackman_nuttall", "windows/nuttall", "windows/flat_top", "iir",
            "fir", "math", "math/add", "math/sub", "math/mul", "math/addc", "math/mulc", "math/sqrt",
            "matrix/mul", "matrix/add", "matrix/addc", "matrix/mulc", "matrix/sub", "matrix", "fft", "dct",
            "conv", "common", "matrix/mul/test", "kalman/ekf", "kalman/ekf_imu13states"))),
}
# tools/cmake/build.cmake __build_init: requirements of every component (chip target), + ${arch}.
COMMON_REQUIRES = ("cxx", "newlib", "freertos", "esp_hw_support", "heap", "log", "soc", "hal", "esp_rom",
                   "esp_common", "esp_system", "xtensa")
# main/idf_component.yml's dependencies; "the component manager adds them to main's requirements".
MAIN_MANAGED = ("espressif__esp-tflite-micro", "espressif__esp-nn", "espressif__esp-dsp")
YF_CORE_MANAGED = ("espressif__esp-dsp",)  # components/yf_core/idf_component.yml


def main_priv_requires(cmakelists: Path) -> list[str]:
    """The PRIV_REQUIRES of firmware/main/CMakeLists.txt."""
    m = re.search(r"PRIV_REQUIRES((?:\s+[A-Za-z0-9_-]+)+)", cmakelists.read_text())
    if not m:
        raise ValueError(f"{cmakelists}: no PRIV_REQUIRES")
    return m.group(1).split()


def closure(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """Components visible to a component requiring ``names``: each one plus its public REQUIRES.
    Returns (known, unknown): an unknown one is not in ../shared/sdk, so its headers cannot be found."""
    seen: list[str] = []
    unknown: list[str] = []
    todo = list(names)
    while todo:
        n = todo.pop(0)
        if n in seen or n in unknown:
            continue
        if n not in COMPONENTS:
            unknown.append(n)
            continue
        seen.append(n)
        todo += COMPONENTS[n].requires
    return seen, unknown


def include_flags(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """-I and -D flags for the components ``names`` (in requirement order; absent sdk folders skipped)."""
    inc, defs = [f"-I{SHIM}"], []
    for n in names:
        comp = COMPONENTS[n]
        inc += [f"-I{comp.root / d}" for d in comp.includes if (comp.root / d).is_dir()]
        defs += [f"-D{d}" for d in comp.defines if f"-D{d}" not in defs]
    return inc, defs


# newlib's <sys/types.h> defines _SYS_TYPES_FD_SET to say that it provides fd_set/FD_SET, and
# components/vfs/include/esp_vfs.h refuses to compile without it. The host's glibc provides both through
# <sys/types.h> too (with _GNU_SOURCE, which build.cmake defines) but has no such marker.
HOST_LIBC_DEFINES = ["-D_SYS_TYPES_FD_SET"]


# ---- flags ------------------------------------------------------------------------------------------


def build_cmake_flags(build_cmake: Path) -> dict[str, list[str]]:
    """The quoted flags __build_set_default_build_specifications appends to compile_definitions,
    compile_options, c_compile_options and cxx_compile_options (the chip branch: -std=gnu17/gnu++2b)."""
    text = build_cmake.read_text()
    body = re.search(r"function\(__build_set_default_build_specifications\)(.*?)endfunction\(\)", text, re.S)
    if not body:
        raise ValueError(f"{build_cmake}: no __build_set_default_build_specifications")
    out: dict[str, list[str]] = {}
    for var, args in re.findall(r"list\(APPEND\s+(\w+)(.*?)\)\s*$", body.group(1), re.S | re.M):
        out.setdefault(var, []).extend(re.findall(r'"([^"]+)"', args))
    return out


# tools/cmake/toolchain-esp32s3.cmake (esp-idf v5.5, not in ../shared/sdk) puts "-mlongcalls
# -fno-builtin-memcpy -fno-builtin-memset -fno-builtin-bzero -fno-builtin-stpcpy -fno-builtin-strncpy" in
# CMAKE_C_FLAGS/CMAKE_CXX_FLAGS. -mlongcalls is Xtensa-only (call range), left out; the rest are kept.
TOOLCHAIN_FLAGS = ["-fno-builtin-memcpy", "-fno-builtin-memset", "-fno-builtin-bzero", "-fno-builtin-stpcpy",
                   "-fno-builtin-strncpy"]


def root_cmake_flags(cfg: dict[str, str]) -> tuple[list[str], list[str], list[str], list[str]]:
    """esp-idf v5.5's top-level CMakeLists.txt (not in ../shared/sdk): compile options chosen by sdkconfig.
    Returns (options, c_options, cxx_options, definitions)."""
    on = {k for k, v in cfg.items() if v == "y"}
    opts: list[str] = []
    if "COMPILER_OPTIMIZATION_SIZE" in on:
        opts += ["-Os", "-freorder-blocks"]
    elif "COMPILER_OPTIMIZATION_DEBUG" in on:
        opts += ["-Og", "-fno-shrink-wrap"]
    elif "COMPILER_OPTIMIZATION_NONE" in on:
        opts += ["-O0"]
    elif "COMPILER_OPTIMIZATION_PERF" in on:
        opts += ["-O2"]
    cxx = ["-fexceptions" if "COMPILER_CXX_EXCEPTIONS" in on else "-fno-exceptions",
           "-frtti" if "COMPILER_CXX_RTTI" in on else "-fno-rtti"]
    c = ["-Wno-old-style-declaration"]
    if "COMPILER_WARN_WRITE_STRINGS" in on:
        opts.append("-Wwrite-strings")
    defs = ["-DNDEBUG"] if "COMPILER_OPTIMIZATION_ASSERTIONS_DISABLE" in on else []
    for mode, flag in (("NORM", "-fstack-protector"), ("STRONG", "-fstack-protector-strong"),
                       ("ALL", "-fstack-protector-all")):
        if f"COMPILER_STACK_CHECK_MODE_{mode}" in on:
            opts.append(flag)
    if "COMPILER_DISABLE_GCC12_WARNINGS" in on:
        opts += ["-Wno-address", "-Wno-use-after-free"]
    if "COMPILER_DISABLE_GCC13_WARNINGS" in on:
        opts.append("-Wno-xor-used-as-pow")
        c.append("-Wno-enum-int-mismatch")
        cxx += ["-Wno-self-move", "-Wno-dangling-reference"]
    if "COMPILER_DISABLE_GCC14_WARNINGS" in on:
        opts.append("-Wno-calloc-transposed-args")
    opts += ["-fstrict-volatile-bitfields", "-fno-jump-tables", "-fno-tree-switch-conversion"]
    cxx.append("-fuse-cxa-atexit")
    return opts, c, cxx, defs


@dataclass
class Flags:
    """Flags common to every translation unit of one sdkconfig."""

    c: list[str]
    cxx: list[str]


def compile_flags(cfg: dict[str, str]) -> Flags:
    b = build_cmake_flags(IDF / "tools" / "cmake" / "build.cmake")
    opts, c_opts, cxx_opts, root_defs = root_cmake_flags(cfg)
    common = list(b.get("compile_options", [])) + opts
    if cfg.get("COMPILER_DISABLE_DEFAULT_ERRORS") == "y":
        # The top-level CMakeLists.txt: idf_build_replace_option_from_property(COMPILE_OPTIONS -Werror -Werror=all)
        common = ["-Werror=all" if f == "-Werror" else f for f in common]
    # build.cmake __build_get_idf_git_revision and __build_init: IDF_VER and ESP_PLATFORM.
    defs = [f"-D{d}" for d in b.get("compile_definitions", [])] + root_defs + ['-DIDF_VER="v5.5"', "-DESP_PLATFORM"]
    defs += HOST_LIBC_DEFINES
    # Stricter than ESP-IDF (its -Wno-error=... keep some warnings warnings): the gate fails on any warning.
    strict = ["-Werror"]
    return Flags(c=TOOLCHAIN_FLAGS + common + list(b.get("c_compile_options", [])) + c_opts + defs + strict,
                 cxx=TOOLCHAIN_FLAGS + common + list(b.get("cxx_compile_options", [])) + cxx_opts + defs + strict)


# ---- translation units ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    profile: str
    console: str
    mic: str
    storage: str
    model_place: str | None = None  # gen's --model-place; None: gen's choice (PSRAM copy on the N16R8)

    @property
    def name(self) -> str:
        place = f"/{self.model_place}" if self.model_place else ""
        return f"{self.profile}/{self.console}/{self.mic}/{self.storage}{place}"

    @property
    def slug(self) -> str:
        return self.name.replace("/", "_")


VARIANTS = [Variant(p, c, m, s) for p in PROFILES for c in CONSOLES for m in MICS for s in STORAGES]


@dataclass
class Unit:
    """One translation unit of one variant, with everything its compiler command needs."""

    source: Path
    variant: Variant
    argv: list[str]  # compiler command without -E/-S and output
    uses_generated: bool
    preprocessed_key: str = ""
    diagnostics: str = ""
    failed: bool = False


@dataclass
class Result:
    units: list[Unit] = field(default_factory=list)
    compiled: int = 0  # distinct preprocessed outputs compiled

    @property
    def failures(self) -> list[Unit]:
        return [u for u in self.units if u.failed]


def main_sources(fw: Path) -> list[Path]:
    """The SRCS of firmware/main/CMakeLists.txt (generated/yf_tables.c included), from that file."""
    srcs = re.search(r"SRCS((?:\s+\"[^\"]+\")+)", (fw / "main" / "CMakeLists.txt").read_text())
    if not srcs:
        raise ValueError("firmware/main/CMakeLists.txt: no SRCS")
    return [fw / "main" / s for s in re.findall(r'"([^"]+)"', srcs.group(1))]


def core_sources(fw: Path) -> list[Path]:
    """The YF_CORE_SRCS of components/yf_core/CMakeLists.txt."""
    core = fw / "components" / "yf_core"
    m = re.search(r"set\(YF_CORE_SRCS(.*?)\)", (core / "CMakeLists.txt").read_text(), re.S)
    if not m:
        raise ValueError("components/yf_core/CMakeLists.txt: no YF_CORE_SRCS")
    return [core / s for s in m.group(1).split()]


def units_for(variant: Variant, fw: Path, sdkconfig_dir: Path, cfg: dict[str, str]) -> list[Unit]:
    flags = compile_flags(cfg)
    core_inc = fw / "components" / "yf_core" / "include"
    cfg_inc = [f"-I{sdkconfig_dir}"]  # build/config, where ESP-IDF writes sdkconfig.h
    # yf_core is main's own component: its include folder is added below.
    priv = [r for r in main_priv_requires(fw / "main" / "CMakeLists.txt") if r != "yf_core"]
    main_comps, _ = closure(priv + list(COMMON_REQUIRES) + list(MAIN_MANAGED))
    main_inc, main_defs = include_flags(main_comps)
    core_comps, _ = closure(list(COMMON_REQUIRES) + list(YF_CORE_MANAGED))
    core_inc_flags, core_defs = include_flags(core_comps)
    units = []
    for src in main_sources(fw):
        cxx = src.suffix in (".cpp", ".cc")
        base = ["g++", *flags.cxx] if cxx else ["gcc", *flags.c]
        # main/CMakeLists.txt: INCLUDE_DIRS "." "generated", PRIV_REQUIRES yf_core (its public include),
        # target_compile_options -Wall -Wextra.
        argv = [*base, "-Wall", "-Wextra", *main_defs, f"-I{fw / 'main'}", f"-I{fw / 'main' / 'generated'}",
                f"-I{core_inc}", *cfg_inc, *main_inc, str(src)]
        units.append(Unit(src, variant, argv, uses_generated=True))
    for src in core_sources(fw):
        # components/yf_core/CMakeLists.txt: INCLUDE_DIRS include, PRIVATE YF_USE_ESP_DSP=1, -Wall -Wextra.
        argv = ["gcc", *flags.c, "-DYF_USE_ESP_DSP=1", "-Wall", "-Wextra", *core_defs, f"-I{core_inc}", *cfg_inc,
                *core_inc_flags, str(src)]
        units.append(Unit(src, variant, argv, uses_generated=False))
    return units


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nice", "-n", "10", *argv], capture_output=True, text=True, timeout=600)


def _normalise(text: str, variant_dir: Path, cfg_dir: Path) -> str:
    """Preprocessed text with the per-variant folders replaced, so equal code hashes equal."""
    return text.replace(str(variant_dir), "@VARIANT@").replace(str(cfg_dir), "@SDKCONFIG@")


def compile_all(units: list[Unit], variant_dirs: dict[Variant, Path], cfg_dirs: dict[Variant, Path],
                jobs: int = JOBS, log: Callable[[str], None] | None = None) -> Result:
    """Preprocess every unit once, then compile each distinct preprocessed output once (-S to /dev/null).

    A unit's diagnostics are those of the compile of its preprocessed text, so a warning in shared code
    is reported for every variant that contains it. Nothing is cached between runs."""
    res = Result(units=units)

    def preprocess(u: Unit) -> None:
        p = _run([*u.argv, "-E", "-o", "-"])
        if p.returncode != 0 or p.stderr.strip():
            u.failed, u.diagnostics = True, p.stderr
            return
        norm = _normalise(p.stdout, variant_dirs[u.variant], cfg_dirs[u.variant])
        flags = " ".join(a for a in u.argv if a.startswith(("-W", "-f", "-O", "-std", "-m")))
        u.preprocessed_key = hashlib.sha256((flags + "\0" + u.source.name + "\0" + norm).encode()).hexdigest()

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(preprocess, units))
    groups: dict[str, list[Unit]] = {}
    for u in units:
        if not u.failed:
            groups.setdefault(u.preprocessed_key, []).append(u)

    def compile_group(group: list[Unit]) -> None:
        first = group[0]
        # The original source, not the .i: some warnings depend on macro-expansion tracking.
        p = _run([*first.argv, "-S", "-o", os.devnull])
        if p.returncode != 0 or p.stderr.strip():
            for u in group:
                u.failed, u.diagnostics = True, p.stderr
        if log:
            log(f"{'FAIL' if p.returncode or p.stderr.strip() else 'ok  '} {first.source.name} "
                f"({len(group)} variant(s), first {first.variant.name})")

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(compile_group, groups.values()))
    res.compiled = len(groups)
    return res


# ---- variants ---------------------------------------------------------------------------------------


def copy_firmware(dest: Path) -> Path:
    """The firmware's sources (no generated files, no model image) in ``dest``."""
    def ignore(d: str, names: list[str]) -> set[str]:
        return {n for n in names if n in ("generated", "spiffs", "model", "build", ".pio") or n.startswith("sdkconfig")}

    shutil.copytree(FIRMWARE, dest, ignore=ignore)
    return dest


def prepare(variant: Variant, manifest: Path, work: Path) -> tuple[Path, Path, dict[str, str]]:
    """`yamflash gen` for ``variant`` into a fresh copy of firmware/, and its sdkconfig.h.
    Returns (firmware copy, sdkconfig folder, sdkconfig values)."""
    from yamflash.errors import UserError
    from yamflash.target import gen

    fw = copy_firmware(work / variant.slug / "firmware")
    cfg = gen.GenConfig(profile=variant.profile, console=variant.console, storage=variant.storage,
                        model_place=variant.model_place, mic=gen.MicConfig(type=variant.mic))
    try:
        gen.generate(manifest, cfg, fw)
    except UserError as exc:  # a variant gen refuses for this model cannot be compiled: say which and why
        raise RuntimeError(f"yamflash gen refuses {variant.name} for {manifest}: {exc}") from exc
    cfg_dir = kconfig.generate((fw / "sdkconfig.defaults").read_text(), IDF, [DSP / "Kconfig"], work / "kconfig")
    return fw, cfg_dir, kconfig.read_config(cfg_dir / "sdkconfig")


def run_gate(manifest: Path, work: Path, variants: list[Variant] = VARIANTS,
             mutate: Callable[[Path], None] | None = None, only: set[str] | None = None,
             log: Callable[[str], None] | None = None) -> Result:
    """Generate and compile ``variants``; ``mutate`` may edit each firmware copy first and ``only`` limit
    the sources compiled to those file names (both for the gate's own tests)."""
    units: list[Unit] = []
    vdirs: dict[Variant, Path] = {}
    cdirs: dict[Variant, Path] = {}
    for v in variants:
        fw, cfg_dir, cfg = prepare(v, manifest, work)
        if mutate:
            mutate(fw)
        vdirs[v], cdirs[v] = work / v.slug, cfg_dir
        units += [u for u in units_for(v, fw, cfg_dir, cfg) if only is None or u.source.name in only]
    return compile_all(units, vdirs, cdirs, log=log)


def report(res: Result, limit: int = 6) -> str:
    """The compiler's messages of the failing units (one per distinct message), for an assertion."""
    seen: dict[str, list[str]] = {}
    for u in res.failures:
        # Drop the per-variant folder so one message shared by many variants is shown once.
        diag = re.sub(r"\S*/" + re.escape(u.variant.slug) + r"/", "", u.diagnostics)
        seen.setdefault(diag, []).append(f"{u.source.name} [{u.variant.name}]")
    parts = []
    for diag, where in list(seen.items())[:limit]:
        parts.append(f"--- {', '.join(where[:4])}{' ...' if len(where) > 4 else ''} ({len(where)} unit(s))\n"
                     f"{diag.strip()[:4000]}")
    return "\n".join(parts)


# ---- running firmware/main on the host ---------------------------------------------------------------

SANITIZE = ["-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
DRIVER_SOURCES = ("yf_app.c", "yf_commands.c", "yf_tasks.c", "yf_model_store.c", "yf_sha256.c", "yf_tables.c")


def build_driver(variant: Variant, manifest: Path, work: Path,
                 mutate: Callable[[Path], None] | None = None) -> tuple[Path, Path]:
    """firmware/main's yf_tasks.c, yf_model_store.c and yf_sha256.c, compiled as the gate compiles them (plus
    ASan/UBSan), linked with fakes.c (ESP-IDF/FreeRTOS stand-ins, prototypes checked by the real headers) and
    driver.c; ``mutate`` may edit the firmware copy first. Returns (executable, firmware copy)."""
    fw, cfg_dir, cfg = prepare(variant, manifest, work)
    if mutate:
        mutate(fw)
    units = {u.source.name: u for u in units_for(variant, fw, cfg_dir, cfg)}
    objs = []

    def cc(argv: list[str], out: Path) -> None:
        p = _run([*argv, *SANITIZE, "-c", "-o", str(out)])
        if p.returncode != 0 or p.stderr.strip():
            raise RuntimeError(f"{' '.join(argv[-1:])}:\n{p.stderr}")
        objs.append(str(out))

    build = work / variant.slug / "driver"
    build.mkdir(parents=True, exist_ok=True)
    for name in DRIVER_SOURCES:
        cc(units[name].argv, build / (name + ".o"))
    template = units["yf_tasks.c"].argv[:-1]
    for src in (HERE / "fakes.c", HERE / "driver.c"):
        cc([*template, f"-I{HERE}", str(src)], build / (src.name + ".o"))
    core_inc = fw / "components" / "yf_core" / "include"
    for src in core_sources(fw):  # the portable FFT: esp-dsp's is Xtensa code
        cc(["gcc", "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{core_inc}", str(src)],
           build / (src.name + ".o"))
    exe = build / "driver"
    p = _run(["gcc", *SANITIZE, *objs, "-Wl,--wrap=fopen,--wrap=stat,--wrap=fread", "-lm", "-o", str(exe)])
    if p.returncode != 0:
        raise RuntimeError(f"link:\n{p.stderr}")
    return exe, fw
