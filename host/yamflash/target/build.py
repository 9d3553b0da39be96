"""`yamflash build`: run PlatformIO (`pio run`) or ESP-IDF (`idf.py build`), then write the flash manifest.

Before anything long runs, the toolchain is checked without touching the network: PlatformIO's platform and
packages on disk, or an exported ESP-IDF. When something would have to be downloaded and the download
hosts cannot be reached, the build stops at once with one message instead of waiting on a network that is
not there. The ``sim`` profile needs no toolchain: its "build" lays out the same flash images (binary
partition table, raw model partition) with an app descriptor the virtual board reads.

flash.json lists each image with its offset: bootloader at 0x0 (ESP32-S3), the partition table at
CONFIG_PARTITION_TABLE_OFFSET (from the build's sdkconfig), app and model at the offsets ESP-IDF gives
partitions.csv's rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import UserError
from ..manifest import write_all
from . import partitions, profiles

PIO_PLATFORM = "espressif32"
PIO_PLATFORM_VERSION = "6.12.0"  # keep in step with firmware/platformio.ini
PIO_PACKAGES = ("framework-espidf", "toolchain-xtensa-esp-elf", "tool-cmake", "tool-ninja")
PIO_HOST = ("api.registry.platformio.org", 443)
IDF_REGISTRY_HOST = ("components.espressif.com", 443)
MANAGED = ("espressif__esp-tflite-micro", "espressif__esp-nn", "espressif__esp-dsp")
BOOTLOADER_OFFSET = 0x0  # ESP32-S3 (ESP32 and ESP32-S2 use 0x1000)

Echo = Callable[[str], None]


def network_available(host: tuple[str, int], timeout: float = 2.0) -> bool:
    """Whether a TCP connection to host opens within timeout seconds, DNS lookup included.

    The probe runs in a daemon thread because getaddrinfo() ignores socket timeouts.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(host, timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def find_tool(name: str) -> str | None:
    """``name`` on PATH, or beside this Python (a virtual environment's bin/)."""
    found = shutil.which(name)
    if found:
        return found
    here = Path(sys.executable).parent / name
    return str(here) if here.is_file() and os.access(here, os.X_OK) else None


def pio_core_dir() -> Path:
    return Path(os.environ.get("PLATFORMIO_CORE_DIR") or Path.home() / ".platformio")


def pio_missing(core: Path, packages: tuple[str, ...] = PIO_PACKAGES) -> list[str]:
    """What of the pinned platform and its packages is not installed in PlatformIO's core folder."""
    missing = []
    versions = []
    for d in sorted((core / "platforms").glob(f"{PIO_PLATFORM}*")):
        try:
            versions.append(json.loads((d / "platform.json").read_text()).get("version"))
        except (OSError, ValueError):
            continue
    if PIO_PLATFORM_VERSION not in versions:
        missing.append(f"platform {PIO_PLATFORM}@{PIO_PLATFORM_VERSION}" +
                       (f" (installed: {', '.join(map(str, versions))})" if versions else ""))
    for pkg in packages:
        if not any((core / "packages").glob(f"{pkg}*/package.json")):
            missing.append(f"package {pkg}")
    return missing


def idf_missing(fw: Path) -> list[str]:
    """What an ESP-IDF build lacks: idf.py, IDF_PATH, the Xtensa toolchain, downloaded managed components."""
    missing = []
    if not os.environ.get("IDF_PATH") or not find_tool("idf.py"):
        missing.append("ESP-IDF 5.x (run `. $IDF_PATH/export.sh` so idf.py and IDF_PATH are set)")
    if not (find_tool("xtensa-esp-elf-gcc") or find_tool("xtensa-esp32s3-elf-gcc")):
        missing.append("the Xtensa toolchain (xtensa-esp-elf-gcc; `$IDF_PATH/install.sh esp32s3`)")
    if not all((fw / "managed_components" / m).is_dir() for m in MANAGED):
        missing.append("managed components (esp-tflite-micro, esp-nn, esp-dsp in firmware/managed_components)")
    return missing


@dataclass
class Generated:
    """firmware/main/generated/yf_gen.json: what `yamflash gen` produced."""

    data: dict[str, Any]

    @property
    def profile(self) -> profiles.Profile:
        return profiles.get(self.data["profile"])

    @property
    def version(self) -> str:
        return str(self.data["generator"]).split()[-1]


def load_generated(fw: Path, profile: str | None) -> Generated:
    path = fw / "main" / "generated" / "yf_gen.json"
    try:
        g = Generated(json.loads(path.read_text()))
    except FileNotFoundError:
        raise UserError(f"{path} is missing; run `yamflash gen` first.") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is unreadable ({exc}); run `yamflash gen` again.") from None
    if profile is not None and profile != g.data.get("profile"):
        raise UserError(f"{fw} was generated for {g.data.get('profile')}, not {profile}; run "
                        f"`yamflash gen --board {profile}` first.")
    return g


def pio_commands(pio: str, fw: Path, g: Generated) -> list[list[str]]:
    """`pio run` for the app (bootloader and partition table included), then `-t buildfs` for SPIFFS."""
    env = g.profile.name
    cmds = [[pio, "run", "-d", str(fw), "-e", env]]
    if g.data["storage"] == "spiffs":
        cmds.append([pio, "run", "-d", str(fw), "-e", env, "-t", "buildfs"])
    return cmds


# What `pio run -t buildfs` runs (platform-espressif32 6.12.0, builder/main.py, fetch_fs_size + DataToBin):
#   mkspiffs_espressif32_espidf -c <data_dir> -s <FS_SIZE> -p 256 -b 4096 .pio/build/<env>/spiffs.bin
# FS_SIZE is the size of the last data partition of subtype spiffs, fat or littlefs in partitions.csv; the
# binary is mkspiffs 0.2.3 (package tool-mkspiffs ~2.230.0) in its esp-idf build (-DSPIFFS_OBJ_META_LEN=4).
PIO_FS_PAGE = 0x100
PIO_FS_BLOCK = 0x1000
PIO_FS_SUBTYPES = ("spiffs", "fat", "littlefs")
SPIFFS_DIR = "spiffs"  # platformio.ini's data_dir; main/CMakeLists.txt's spiffs_create_partition_image folder


def pio_fs_size(fw: Path) -> int:
    """FS_SIZE as PlatformIO takes it from partitions.csv (the last filesystem-type data partition)."""
    try:
        rows = partitions.from_csv((fw / "partitions.csv").read_text())
    except OSError:
        raise UserError(f"{fw / 'partitions.csv'} is missing; run `yamflash gen`.") from None
    sub = partitions.SUBTYPES[partitions.TYPES["data"]]
    fs = [p for p in rows if p.type == partitions.TYPES["data"] and p.subtype in {sub[n] for n in PIO_FS_SUBTYPES}]
    if not fs:
        raise UserError(f"{fw / 'partitions.csv'} has no SPIFFS partition for `pio run -t buildfs`; "
                        f"run `yamflash gen`.")
    return fs[-1].size


def pio_mkspiffs_args(fw: Path, image: Path) -> list[str]:
    """The arguments `pio run -t buildfs` gives mkspiffs for this project (tests run the same mkspiffs with them)."""
    data_dir = fw / SPIFFS_DIR
    return ["-c", str(data_dir), "-s", str(pio_fs_size(fw)), "-p", str(PIO_FS_PAGE), "-b", str(PIO_FS_BLOCK),
            str(image)]


def check_spiffs_input(fw: Path, g: Generated, tool: str) -> None:
    """Before a SPIFFS build: the folder holds exactly the generated model, and the partition fits the packer.

    Both mkspiffs and spiffsgen.py pack every file of the folder, and the partition was sized for the model
    alone; mkspiffs needs about 25 % more room than spiffsgen.py (partitions.mkspiffs_blocks), so a
    partitions.csv sized by an older yamflash fails `pio run -t buildfs` with "File system is full".
    """
    folder = fw / SPIFFS_DIR
    model = fw / g.data["model_file"]
    others = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p != model)
    if others:
        raise UserError(f"{folder} holds {', '.join(others)} besides the model; the model partition is sized for "
                        f"the model alone: remove them (or run `yamflash gen` again).")
    try:
        data = model.read_bytes()
    except OSError:
        raise UserError(f"{model} is missing; run `yamflash gen`.") from None
    if hashlib.sha256(data).hexdigest() != g.data["model_sha256"]:
        raise UserError(f"{model} is not the model `yamflash gen` wrote; run `yamflash gen` again.")
    name = "/" + model.name
    if tool == "pio":
        need, have, who = partitions.mkspiffs_blocks(len(data), name), pio_fs_size(fw), "PlatformIO's mkspiffs"
    else:
        rows = {p.name: p for p in partitions.from_csv((fw / "partitions.csv").read_text())}
        if "model" not in rows:
            raise UserError("partitions.csv lacks a 'model' partition; run `yamflash gen`.")
        need, have, who = partitions.spiffsgen_blocks(len(data), name), rows["model"].size, "ESP-IDF's spiffsgen.py"
    need *= partitions.SPIFFS_BLOCK
    if have < need:
        raise UserError(f"the model's SPIFFS partition is {have:,} bytes; {who} needs {need:,} for this model: run "
                        f"`yamflash gen` again (it sizes the partition for both PlatformIO and idf.py).")


def idf_build_dir(fw: Path, g: Generated) -> Path:
    return fw / "build" / g.profile.name


def idf_commands(idf: str, fw: Path, g: Generated) -> list[list[str]]:
    """`idf.py build` into a per-profile build folder with its own sdkconfig."""
    b = idf_build_dir(fw, g)
    return [[idf, "-C", str(fw), "-B", str(b), "-DIDF_TARGET=esp32s3", f"-DSDKCONFIG={b / 'sdkconfig'}", "build"]]


def pio_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PLATFORMIO_SETTING_ENABLE_TELEMETRY", "no")
    env.setdefault("PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL", "3650")
    return env


def check_toolchain(tool: str, fw: Path, online: Callable[[tuple[str, int]], bool] = network_available,
                    spiffs: bool = False) -> str:
    """The tool's executable; UserError (at once) when it is missing or would need an unreachable download."""
    if tool == "pio":
        pio = find_tool("pio") or find_tool("platformio")
        if pio is None:
            raise UserError("PlatformIO is not installed: `pip install platformio`, or build with --tool idf.")
        missing = pio_missing(pio_core_dir(), PIO_PACKAGES + (("tool-mkspiffs",) if spiffs else ()))
        if missing and not online(PIO_HOST):
            raise UserError(f"PlatformIO needs {', '.join(missing)} and cannot download them (no connection to "
                            f"{PIO_HOST[0]}); install them on a connected machine with `pio pkg install -d firmware "
                            f"-e <profile>` (or copy ~/.platformio), or build with --tool idf.")
        return pio
    if tool == "idf":
        idf = find_tool("idf.py")
        missing = idf_missing(fw)
        only_components = missing and all(m.startswith("managed components") for m in missing)
        if missing and not (only_components and idf and online(IDF_REGISTRY_HOST)):
            raise UserError(f"ESP-IDF build not possible here: missing {'; '.join(missing)}.")
        assert idf is not None
        return idf
    raise UserError(f"unknown build tool {tool!r}; use pio or idf.")


def run_streaming(cmd: list[str], echo: Echo, env: dict[str, str] | None = None) -> None:
    """Run cmd, passing each output line to echo as it comes; UserError on a non-zero exit."""
    echo("$ " + " ".join(cmd))
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                env=env, errors="replace")
    except OSError as exc:
        raise UserError(f"cannot run {cmd[0]}: {exc.strerror}.") from None
    assert proc.stdout is not None
    for line in proc.stdout:
        echo(line.rstrip("\n"))
    if proc.wait() != 0:
        raise UserError(f"`{' '.join(cmd[:4])} ...` failed (exit {proc.returncode}); see its output above.")


def sdkconfig_paths(fw: Path, profile: str, tool: str | None = None) -> list[Path]:
    """Where a build keeps the sdkconfig it made from sdkconfig.defaults: PlatformIO's sdkconfig.<env> (or a
    plain sdkconfig), idf.py's per-profile build/<profile>/sdkconfig; tool None: all of them."""
    pio = [fw / f"sdkconfig.{profile}", fw / "sdkconfig"]
    idf = [fw / "build" / profile / "sdkconfig"]
    return pio if tool == "pio" else idf if tool == "idf" else pio + idf


def sdkconfig_value(fw: Path, g: Generated, tool: str, name: str) -> str | None:
    """CONFIG_<name> of the build's sdkconfig, else of sdkconfig.defaults; None when neither sets it."""
    for path in [*sdkconfig_paths(fw, g.profile.name, tool), fw / "sdkconfig.defaults"]:
        if path.is_file():
            m = re.search(rf"^CONFIG_{name}=(\S+)", path.read_text(), re.MULTILINE)
            if m:
                return m.group(1)
    return None


def table_offset(fw: Path, g: Generated, tool: str) -> int:
    """CONFIG_PARTITION_TABLE_OFFSET of the build's sdkconfig (else sdkconfig.defaults, else 0x8000)."""
    v = sdkconfig_value(fw, g, tool, "PARTITION_TABLE_OFFSET")
    return int(v, 0) if v is not None else partitions.DEFAULT_TABLE_OFFSET


def console_baud(fw: Path, g: Generated, tool: str) -> int | None:
    """The UART console's baud the firmware is built with (CONFIG_ESP_CONSOLE_UART_BAUDRATE of the build's
    sdkconfig, else sdkconfig.defaults); None for USB-Serial-JTAG, which ignores the rate."""
    if g.data.get("console") != "uart":
        return None
    v = sdkconfig_value(fw, g, tool, "ESP_CONSOLE_UART_BAUDRATE")
    return int(v) if v is not None and v.isdigit() else 115200  # ESP-IDF's default when no sdkconfig sets it


def read_layout(fw: Path, offset: int) -> list[partitions.Partition]:
    try:
        text = (fw / "partitions.csv").read_text()
    except OSError:
        raise UserError(f"{fw / 'partitions.csv'} is missing; run `yamflash gen`.") from None
    return partitions.resolve(partitions.from_csv(text), offset)


def source_hash(paths: list[Path], root: Path) -> str:
    """sha256 over (relative path, content) of the files, in sorted order."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def sim_app(fw: Path, g: Generated) -> bytes:
    """The virtual board's "app": a JSON descriptor saying what it is, not an ESP32 image."""
    core = fw / "components" / "yf_core"
    core_files = [p for p in core.rglob("*") if p.is_file() and p.suffix in (".c", ".h")]
    gen_files = [p for p in (fw / "main" / "generated").glob("*") if p.is_file()]
    desc = {
        "fw": g.version,
        "kind": "yamflash-virtual-app",
        "board": "sim",
        "note": "not an ESP32 image: the virtual board runs yf_core compiled for the host",
        "yf_core_sha256": source_hash(core_files, fw) if core_files else None,
        "generated_sha256": source_hash(gen_files, fw),
        "model_sha256": g.data["model_sha256"],
        "generator": g.data["generator"],
        "labels": g.data.get("labels"),
        "arena_size": g.data["arena_bytes"],
        "arena_used": g.data.get("arena_measured"),  # the chip's figure (model.json arena.chip_espnn, or the bound)
        "arena_where": g.data.get("arena_where"),  # gen's placement (YF_ARENA_INTERNAL)
        "detector": g.data.get("detector"),
    }
    return (json.dumps(desc, indent=1, sort_keys=True) + "\n").encode()


def _entry(role: str, offset: int, name: str, data: bytes, partition: str | None = None) -> dict[str, Any]:
    e: dict[str, Any] = {"role": role, "name": role, "offset": f"0x{offset:x}", "file": name, "bytes": len(data),
                         "sha256": hashlib.sha256(data).hexdigest()}
    if partition:
        e["partition"] = partition
    return e


def write_manifest(out: Path, g: Generated, parts: list[partitions.Partition], offset: int,
                   images: dict[str, bytes], console_baud: int | None = None) -> dict[str, Any]:
    """Copy the images to out/ and write flash.json; UserError when an image outgrows its partition."""
    by_name = {p.name: p for p in parts}
    app = next((p for p in parts if p.type == partitions.TYPES["app"]), None)
    model = by_name.get("model")
    if app is None or model is None:
        raise UserError("partitions.csv lacks an app or a 'model' partition; run `yamflash gen`.")
    files = []
    if "bootloader" in images:
        if len(images["bootloader"]) > offset - BOOTLOADER_OFFSET:
            raise UserError(f"bootloader ({len(images['bootloader'])} bytes) runs into the partition table at "
                            f"0x{offset:x}; raise CONFIG_PARTITION_TABLE_OFFSET.")
        files.append(_entry("bootloader", BOOTLOADER_OFFSET, "bootloader.bin", images["bootloader"]))
    files.append(_entry("partition-table", offset, "partition-table.bin", images["partition-table"]))
    for role, part, name in (("app", app, "app.bin"), ("model", model, "model.bin")):
        data = images[role]
        if len(data) > part.size:
            raise UserError(f"{role} image is {len(data):,} bytes, its partition '{part.name}' holds {part.size:,}; "
                            f"run `yamflash gen` with a larger --app-size or check the model.")
        files.append(_entry(role, part.offset or 0, name, data, part.name))
    prof = g.profile
    manifest = {
        "chip": "esp32s3", "profile": prof.name, "flash_size": f"{g.data['flash_size'] // profiles.MB}MB",
        "flash_mode": prof.flash_mode, "flash_freq": prof.flash_freq, "files": files,
        "model_sha256": g.data["model_sha256"], "firmware_version": g.version, "model_storage": g.data["storage"],
        "partition_table_offset": f"0x{offset:x}", "built_by": f"yamflash {__version__}",
        # monitor and the HIL suite talk to the console at this rate (--console uart: gen's uart_baud)
        "console": g.data.get("console"), "console_baud": console_baud,
    }
    names = {"bootloader": "bootloader.bin", "partition-table": "partition-table.bin", "app": "app.bin",
             "model": "model.bin"}
    # Staged, then swapped: a full disk leaves the previous images and flash.json as a matching set.
    write_all({**{out / names[role]: data for role, data in images.items()},
               **{out / name: data for name, data in esp_idf_artefacts(manifest, images).items()},
               out / "flash.json": json.dumps(manifest, indent=2) + "\n"}, flag="--out")
    return manifest


# ESP-IDF v5.5 writes these beside its build (components/esptool_py: flasher_args.json.in, esptool_py_flash_target
# in project_include.cmake); idf.py, esptool `@flash_args`, IDEs and web tools read them. Images are listed in the
# order ESP-IDF's components add them (bootloader, app, partition table, then a partition image such as the model).
IDF_ORDER = ("bootloader", "app", "partition-table", "model")
IDF_FLASHMODE = {"qio": "dio", "qout": "dio", "dio": "dio", "dout": "dout", "opi": "dout"}  # ESPTOOLPY_FLASHMODE


def esp_idf_artefacts(manifest: dict[str, Any], images: dict[str, bytes]) -> dict[str, bytes]:
    """flasher_args.json and flash_args as ESP-IDF's build writes them, and merged-binary.bin (esptool's merge-bin
    of flash_args: one image to write at 0x0 with `esptool write-flash 0x0` or a web flasher).

    Not for the virtual board: its "app" is no ESP32 image, and a file that esptool would write to a chip
    is exactly what `yamflash flash` refuses to do with it.
    """
    if manifest["profile"] == "sim" or "bootloader" not in images:
        return {}
    from esptool.cmds import merge_bin

    files = {f["role"]: f for f in manifest["files"]}
    roles = [r for r in IDF_ORDER if r in files] + [r for r in files if r not in IDF_ORDER]
    # Kconfig's ESPTOOLPY_FLASHMODE: the ROM and 2nd-stage loaders start in DIO; the app switches to QIO itself.
    mode = IDF_FLASHMODE.get(manifest["flash_mode"], manifest["flash_mode"])
    freq, size = manifest["flash_freq"], manifest["flash_size"]
    entries = [(r, files[r]["offset"], files[r]["file"]) for r in roles]
    flasher_args = (
        "{\n"
        f'    "write_flash_args" : [ "--flash_mode", "{mode}",\n'
        f'                           "--flash_size", "{size}",\n'
        f'                           "--flash_freq", "{freq}" ],\n'
        '    "flash_settings" : {\n'
        f'        "flash_mode": "{mode}",\n'
        f'        "flash_size": "{size}",\n'
        f'        "flash_freq": "{freq}"\n'
        "    },\n"
        '    "flash_files" : {\n        '
        + ",\n        ".join(f'"{off}" : "{name}"' for _, off, name in entries)
        + "\n    },\n    "
        + ",\n    ".join(f'"{r}" : {{ "offset" : "{off}", "file" : "{name}", "encrypted" : "false" }}'
                         for r, off, name in entries)
        + ",\n"
        '    "extra_esptool_args" : {\n'
        '        "after"  : "hard_reset",\n'
        '        "before" : "default_reset",\n'
        '        "stub"   : true,\n'
        f'        "chip"   : "{manifest["chip"]}"\n'
        "    }\n"
        "}\n")
    flash_args = f"--flash_mode {mode} --flash_freq {freq} --flash_size {size}\n" + \
        "\n".join(f"{off} {name}" for _, off, name in entries)
    # idf.py merge-bin runs `esptool merge-bin @flash_args`: the same regions and flash settings, padded with 0xFF.
    with contextlib.redirect_stdout(io.StringIO()):  # esptool prints progress and hints
        merged = merge_bin([(int(off, 16), images[r]) for r, off, _ in entries], manifest["chip"],
                           flash_mode=mode, flash_freq=freq, flash_size=size)
    assert merged is not None
    return {"flasher_args.json": flasher_args.encode(), "flash_args": flash_args.encode(), "merged-binary.bin": merged}


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        raise UserError(f"the build did not produce {path} ({what}); check the build output above.") from None


def build_sim(fw: Path, out: Path, g: Generated) -> dict[str, Any]:
    offset = int(g.data.get("table_offset", partitions.DEFAULT_TABLE_OFFSET))
    parts = read_layout(fw, offset)
    image = _read(fw / g.data["model_file"], "model partition image")
    try:
        model, head = partitions.read_model_image(image)
    except ValueError as exc:
        raise UserError(f"{fw / g.data['model_file']}: {exc}; run `yamflash gen --board sim` again.") from None
    if head["sha256"] != g.data["model_sha256"]:
        raise UserError("the model image does not match yf_gen.json; run `yamflash gen --board sim` again.")
    images = {"partition-table": partitions.to_binary(parts), "app": sim_app(fw, g), "model": image}
    return write_manifest(out / "sim", g, parts, offset, images)


def build(firmware_dir: str | Path, out_dir: str | Path, profile: str | None = None, tool: str = "pio",
          echo: Echo = print, online: Callable[[tuple[str, int]], bool] = network_available) -> dict[str, Any]:
    """Build the generated profile and write out_dir/<profile>/flash.json; returns the manifest."""
    fw, out = Path(firmware_dir), Path(out_dir)
    g = load_generated(fw, profile)
    if g.profile.sim:
        return build_sim(fw, out, g)
    exe = check_toolchain(tool, fw, online, spiffs=g.data["storage"] == "spiffs")
    if g.data["storage"] == "spiffs":
        check_spiffs_input(fw, g, tool)
    if tool == "pio":
        for cmd in pio_commands(exe, fw, g):
            run_streaming(cmd, echo, pio_env())
        b = fw / ".pio" / "build" / g.profile.name
        boot, table, app = b / "bootloader.bin", b / "partitions.bin", b / "firmware.bin"
        spiffs = b / "spiffs.bin"
    else:
        for cmd in idf_commands(exe, fw, g):
            run_streaming(cmd, echo)
        b = idf_build_dir(fw, g)
        boot, table, app = b / "bootloader" / "bootloader.bin", b / "partition_table" / "partition-table.bin", \
            b / "yamflash.bin"
        spiffs = b / "model.bin"
    offset = table_offset(fw, g, tool)
    parts = read_layout(fw, offset)
    model = spiffs if g.data["storage"] == "spiffs" else fw / g.data["model_file"]
    images = {"bootloader": _read(boot, "bootloader"), "partition-table": _read(table, "partition table"),
              "app": _read(app, "app"), "model": _read(model, "model partition image")}
    if partitions.from_binary(images["partition-table"]) != parts:
        raise UserError("the built partition table differs from partitions.csv as yamflash reads it; "
                        "run `yamflash gen` and build again.")
    model_part = next((p for p in parts if p.name == "model"), None)
    if g.data["storage"] == "spiffs" and model_part and len(images["model"]) != model_part.size:
        # mkspiffs and spiffsgen.py both write an image of exactly the partition's size
        raise UserError(f"{model} is {len(images['model']):,} bytes but the model partition {model_part.size:,}; "
                        f"it was built for another partition table: run `yamflash gen` and build again.")
    return write_manifest(out / g.profile.name, g, parts, offset, images, console_baud(fw, g, tool))
