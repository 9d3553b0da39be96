"""The real SPIFFS tools from ../shared/sdk, built on this host and cached by their inputs.

- mkspiffs 0.2.3 in its esp-idf build (``CPPFLAGS=-DSPIFFS_OBJ_META_LEN=4``): the tool PlatformIO's
  ``pio run -t buildfs`` runs (package tool-mkspiffs ~2.230.0 of platform-espressif32 6.12.0).
- ESP-IDF v5.5's ``spiffsgen.py``, run with the arguments ``spiffs_create_partition_image``
  (components/spiffs/project_include.cmake) gives it for an sdkconfig: the idf.py path.
- ``tests/c/spiffs_read.c``: pellepl/spiffs (mkspiffs's copy, ``spiffs/src``; ESP-IDF's own copy is a git
  submodule that the sdk folder lacks) compiled with ESP-IDF v5.5's ``spiffs_config.h`` and an ``sdkconfig.h``
  of the generated CONFIG_SPIFFS_* values: the SPIFFS the firmware mounts, reading an image back.

Builds go to ``~/.cache/yamflash/<name>-<hash of inputs>/`` from a copy (never into ../shared).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from yamflash.cachedir import cache_root

ROOT = Path(__file__).resolve().parents[1]
SDK = Path(os.environ.get("YAMFLASH_SDK", ROOT.parent / "shared" / "sdk"))
MKSPIFFS_SRC = SDK / "mkspiffs-0.2.3"
IDF_SPIFFS = SDK / "esp-idf-v5.5" / "components" / "spiffs"
SPIFFSGEN = IDF_SPIFFS / "spiffsgen.py"
READER_SRC = ROOT / "tests" / "c" / "spiffs_read.c"
READER_SHIM = ROOT / "tests" / "c" / "spiffs_shim"
# mkspiffs's build_all_configs.sh, "Build configuration for ESP-IDF"; VERSION and SPIFFS_VERSION come from
# `git describe` in its Makefile, and the sdk copy has no .git, so they are given.
MKSPIFFS_MAKE = ["CPPFLAGS=-DSPIFFS_OBJ_META_LEN=4", "BUILD_CONFIG_NAME=-esp-idf", "VERSION=0.2.3",
                 "SPIFFS_VERSION=0.3.7-5-gf5e26c4"]
SPIFFS_SRCS = ("spiffs_cache.c", "spiffs_check.c", "spiffs_gc.c", "spiffs_hydrogen.c", "spiffs_nucleus.c")


def missing() -> str | None:
    """Why the tools cannot be built here, or None."""
    for p in (MKSPIFFS_SRC / "Makefile", MKSPIFFS_SRC / "spiffs" / "src" / "spiffs_nucleus.c", SPIFFSGEN,
              IDF_SPIFFS / "include" / "spiffs_config.h", IDF_SPIFFS / "Kconfig"):
        if not p.is_file():
            return f"{p} is absent (the real SPIFFS tools live in ../shared/sdk; set YAMFLASH_SDK)"
    for tool in ("make", "cc", "c++", "gcc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def _digest(files: Iterable[Path], base: Path, extra: Iterable[str]) -> str:
    h = hashlib.sha256()
    for p in sorted(files):
        h.update(str(p.relative_to(base)).encode() + b"\0" + p.read_bytes() + b"\0")
    for x in extra:
        h.update(x.encode() + b"\0")
    return h.hexdigest()[:16]


def _compiler_ids() -> list[str]:
    return [subprocess.run([c, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
            for c in ("cc", "c++", "gcc")]


def _publish(tmp: Path, final: Path) -> Path:
    """Move a finished build folder into place; another process that got there first wins."""
    try:
        tmp.rename(final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def mkspiffs() -> Path:
    """The mkspiffs binary, built from a copy of the sdk's sources once per set of inputs."""
    files = [p for p in MKSPIFFS_SRC.rglob("*") if p.is_file()]
    out = cache_root() / f"mkspiffs-{_digest(files, MKSPIFFS_SRC, MKSPIFFS_MAKE + _compiler_ids())}"
    exe = out / "mkspiffs"
    if exe.is_file():
        return exe
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".tmp-", dir=out.parent))
    src = tmp / "src"
    shutil.copytree(MKSPIFFS_SRC, src)
    p = subprocess.run(["nice", "make", "-j2", *MKSPIFFS_MAKE], cwd=src, capture_output=True, text=True)
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"building mkspiffs failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    shutil.copy2(src / "mkspiffs", tmp / "mkspiffs")
    shutil.rmtree(src)
    return _publish(tmp, out) / "mkspiffs"


def kconfig_defaults(kconfig: Path) -> dict[str, str]:
    """CONFIG_ name -> first default of each `config` entry of a Kconfig file (bool, int; quotes dropped)."""
    out: dict[str, str] = {}
    name = None
    for line in kconfig.read_text().splitlines():
        m = re.match(r"\s*config\s+(\w+)", line)
        if m:
            name = m.group(1)
            continue
        m = re.match(r"\s*default\s+(\S+)\s*$", line)
        if m and name and f"CONFIG_{name}" not in out:
            out[f"CONFIG_{name}"] = m.group(1).strip('"')
    return out


def spiffs_config(sdkconfig_defaults: Path) -> dict[str, str]:
    """CONFIG_SPIFFS_* as a build from this sdkconfig.defaults gets them: ESP-IDF's Kconfig defaults, then the file."""
    cfg = {k: v for k, v in kconfig_defaults(IDF_SPIFFS / "Kconfig").items() if k.startswith("CONFIG_SPIFFS_")}
    for m in re.finditer(r"^(CONFIG_SPIFFS_\w+)=(.*)$", sdkconfig_defaults.read_text(), re.M):
        cfg[m.group(1)] = m.group(2).strip().strip('"')
    return cfg


def reader(cfg: dict[str, str]) -> Path:
    """spiffs_read compiled for the CONFIG_SPIFFS_* values ``cfg`` (sdkconfig.h: y -> 1, n -> undefined)."""
    header = "".join(f"#define {k} {1 if v == 'y' else v}\n" for k, v in sorted(cfg.items())
                     if v != "n" and re.fullmatch(r"y|\d+", v))
    src = MKSPIFFS_SRC / "spiffs" / "src"
    inputs = [*(src / s for s in SPIFFS_SRCS), *src.glob("*.h"), IDF_SPIFFS / "include" / "spiffs_config.h"]
    key = _digest([READER_SRC, *READER_SHIM.glob("*.h")], ROOT, [header, *_compiler_ids()])
    key = hashlib.sha256((key + _digest(inputs, SDK, [])).encode()).hexdigest()[:16]
    out = cache_root() / f"spiffs-reader-{key}"
    exe = out / "spiffs_read"
    if exe.is_file():
        return exe
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".tmp-", dir=out.parent))
    (tmp / "sdkconfig.h").write_text("/* CONFIG_SPIFFS_* of the generated sdkconfig.defaults */\n" + header)
    inc = [f"-I{tmp}", f"-I{READER_SHIM}", f"-I{IDF_SPIFFS / 'include'}", f"-I{src}"]
    # The reader is ours: -Werror. SPIFFS itself gets ESP-IDF's flags for it (components/spiffs/CMakeLists.txt).
    cmds = [["gcc", "-std=gnu99", "-O1", "-Wall", "-Wextra", "-Werror", *inc, "-c", str(READER_SRC), "-o",
             str(tmp / "spiffs_read.o")]]
    cmds += [["gcc", "-std=gnu99", "-O1", "-Wall", "-Wno-format", "-Wno-stringop-truncation", *inc, "-c",
              str(src / s), "-o", str(tmp / (s + ".o"))] for s in SPIFFS_SRCS]
    cmds.append(["gcc", *(str(tmp / (s + ".o")) for s in SPIFFS_SRCS), str(tmp / "spiffs_read.o"), "-o",
                 str(tmp / "spiffs_read")])
    for cmd in cmds:
        p = subprocess.run(["nice", *cmd], capture_output=True, text=True)
        if p.returncode != 0 or "warning" in p.stderr:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(f"{' '.join(cmd)}\n{p.stderr[-3000:]}")
    for o in tmp.glob("*.o"):
        o.unlink()
    return _publish(tmp, out) / "spiffs_read"


def spiffsgen_argv(size: int, base_dir: Path, image: Path, cfg: dict[str, str]) -> list[str]:
    """What spiffs_create_partition_image runs for partition ``size`` (given in hex, as parttool prints it)."""
    argv = [sys.executable, str(SPIFFSGEN), f"0x{size:x}", str(base_dir), str(image),
            f"--page-size={cfg['CONFIG_SPIFFS_PAGE_SIZE']}", f"--obj-name-len={cfg['CONFIG_SPIFFS_OBJ_NAME_LEN']}",
            f"--meta-len={cfg['CONFIG_SPIFFS_META_LENGTH']}"]
    flags = {"CONFIG_SPIFFS_FOLLOW_SYMLINKS": "--follow-symlinks", "CONFIG_SPIFFS_USE_MAGIC": "--use-magic",
             "CONFIG_SPIFFS_USE_MAGIC_LENGTH": "--use-magic-len"}
    for flag, opt in flags.items():
        if cfg.get(flag) == "y":
            argv.append(opt)
    return argv


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def read_back(reader_exe: Path, image: Path, name: str, out: Path) -> list[str]:
    """Files listed in the image ("name<TAB>size"), after copying ``name`` to ``out``; AssertionError if not."""
    p = run([str(reader_exe), str(image), name, str(out)])
    assert p.returncode == 0, f"{image}: {p.stderr.strip()}"
    return p.stdout.splitlines()
