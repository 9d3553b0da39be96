"""`yamflash gen`: model.json + board/detector settings -> the firmware's generated sources and flash layout.

Everything written is a pure function of its inputs (no timestamps, sorted keys, fixed float format), so
the same inputs give byte-identical files, and a file is rewritten only when its content changes (its
mtime stays, and ESP-IDF/PlatformIO do not rebuild). Every header names the generator version and the
model's sha256.
"""

from __future__ import annotations

import contextlib
import difflib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from .. import __version__
from ..chip.inspect import TFLM_OPS
from ..errors import UserError
from ..frontend import PARAMS, periodic_hann, sparse_mel
from ..manifest import ModelManifest, write_all
from ..protocol_spec import DetectorSettings
from ..protocol_spec import load as _spec
from . import arena, layout, partitions, profiles

TEMPLATES = Path(str(resources.files(__package__).joinpath("templates")))  # package data, in a wheel too
GENERATOR = f"yamflash {__version__}"

ARENA_MARGIN_PCT = arena.CHIP_MARGIN_PCT  # on the chip's own figure (ESP-NN scratch included): arena.py
ARENA_MARGIN_MIN = arena.MARGIN_MIN
DEFAULT_APP_SIZE = 2 * profiles.MB
MAX_DET_CLASSES = _spec().const("MAX_CLASSES")  # the protocol spec's, as yf_detect.h's

MIC_PINS = {"i2s": ("bclk", "ws", "din"), "pdm": ("clk", "din")}
DEFAULT_PINS = {"i2s": {"bclk": 5, "ws": 4, "din": 6}, "pdm": {"clk": 42, "din": 41}}
CONSOLES = ("usb-serial-jtag", "uart")
STORAGES = ("spiffs", "partition")


@dataclass
class MicConfig:
    type: str = "i2s"  # "i2s" (standard, INMP441-class) | "pdm"
    pins: dict[str, int] = field(default_factory=dict)
    slot: str = "left"  # i2s: which slot the mic drives (L/R pin low -> left)


@dataclass
class DetectorConfig:
    """[detector] of yamflash.toml: classes by label or index, the rest with the protocol spec's defaults."""

    # Empty: "Speech" for an AudioSet model, every class of a model trained on your own sounds
    classes: list[str | int] = field(default_factory=list)
    threshold: float = field(default_factory=lambda: DetectorSettings().threshold)
    window: int = field(default_factory=lambda: DetectorSettings().window)
    min_count: int = field(default_factory=lambda: DetectorSettings().min_count)
    refractory_ms: int = field(default_factory=lambda: DetectorSettings().refractory_ms)


@dataclass
class GenConfig:
    """Everything besides model.json that decides what `gen` writes (yamflash.toml, then CLI flags)."""

    profile: str = "esp32s3-n16r8"
    console: str | None = None  # None: the profile's default
    storage: str | None = None
    model_place: str | None = None  # raw partition: "psram" (copied at boot) | "flash" (mmap); None: layout.py
    flash_size: int | None = None  # None: the profile's
    app_size: int = DEFAULT_APP_SIZE
    table_offset: int = partitions.DEFAULT_TABLE_OFFSET
    arena_margin_pct: int = ARENA_MARGIN_PCT
    uart_baud: int = 921600
    mic: MicConfig = field(default_factory=MicConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> GenConfig:
    """GenConfig from yamflash.toml ([board], [mic], [detector], [model]; defaults when path is None), then
    ``overrides`` (the CLI's flags) on top: see ``override``."""
    return override(_from_toml(path), **(overrides or {}))


def override(cfg: GenConfig, *, flash_size: str | None = None, app_size: str | None = None,
             mic_type: str | None = None, pins: Sequence[str] = (), classes: Sequence[str | int] = (),
             **values: Any) -> GenConfig:
    """Flags over yamflash.toml: each one given (not None or empty) wins. ``values`` are GenConfig's fields by
    name (profile, console, storage, arena_margin_pct, ...) and the detector's (threshold, window, min_count,
    refractory_ms); sizes are text ("8MB"), pins NAME=GPIO; another microphone type drops the file's pins."""
    det = {f.name for f in fields(DetectorConfig)}
    top = {f.name for f in fields(GenConfig)} - {"mic", "detector"}
    for key, value in values.items():
        if key not in det | top:
            raise TypeError(f"gen has no setting {key!r}")
        if value is not None:
            setattr(cfg.detector if key in det else cfg, key, value)
    if flash_size:
        cfg.flash_size = partitions.parse_size(flash_size)
    if app_size:
        cfg.app_size = partitions.parse_size(app_size)
    if mic_type and mic_type != cfg.mic.type:
        cfg.mic = MicConfig(type=mic_type, slot=cfg.mic.slot)
    for spec in pins:
        name, _, gpio = spec.partition("=")
        if not gpio.strip().isdigit():
            raise UserError(f"--pin {spec}: write NAME=GPIO, e.g. --pin din=6.")
        cfg.mic.pins[name.strip().lower()] = int(gpio)
    if classes:
        cfg.detector.classes = list(classes)
    return cfg


def _from_toml(path: str | Path | None) -> GenConfig:
    cfg = GenConfig()
    if path is None:
        return cfg
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise UserError("reading yamflash.toml needs Python 3.11+ or `pip install tomli`.") from None
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path} does not exist; create it or drop --config.") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not valid TOML ({exc}); fix it and run `yamflash gen` again.") from None
    known = {"board", "mic", "detector", "model"}
    if extra := set(data) - known:
        raise UserError(f"{path}: unknown section(s) {sorted(extra)}; use {sorted(known)}.")
    board, mic, det, model = (data.get(k, {}) for k in ("board", "mic", "detector", "model"))
    _take(cfg, board, path, "board", profile=str, console=str, flash_size=partitions.parse_size,
          app_size=partitions.parse_size, table_offset=partitions.parse_size, uart_baud=int)
    _take(cfg, model, path, "model", storage=str, model_place=str, arena_margin_pct=int)
    _take(cfg.detector, det, path, "detector", classes=list, threshold=float, window=int, min_count=int,
          refractory_ms=int)
    mic = dict(mic)
    _take(cfg.mic, {k: mic.pop(k) for k in ("type", "slot") if k in mic}, path, "mic", type=str, slot=str)
    cfg.mic.pins = {k: int(v) for k, v in mic.items()}
    return cfg


def _take(obj: Any, table: dict[str, Any], path: str | Path, section: str, **conv: Any) -> None:
    for key, value in table.items():
        if key not in conv:
            raise UserError(f"{path}: unknown key [{section}] {key}; known: {', '.join(conv)}.")
        try:
            setattr(obj, key, conv[key](value))
        except (TypeError, ValueError) as exc:
            raise UserError(f"{path}: [{section}] {key} = {value!r} is not valid ({exc}).") from None


@dataclass
class Plan:
    """Resolved inputs of one generation: the values every template sees."""

    manifest: ModelManifest
    model: bytes
    profile: profiles.Profile
    cfg: GenConfig
    console: str
    storage: str
    flash_size: int
    ops: list[tuple[str, str]]  # (BuiltinOperator name, AddXxx)
    det_classes: list[int]
    pins: dict[str, int]
    arena_bytes: int
    parts: list[partitions.Partition]
    arena_need: arena.ChipNeed | None = None  # the chip's need (measured, or the labelled bound)
    arena_where: str = "psram"  # where AllocArena puts it: "internal" | "psram"
    model_place: str = "flash"  # where the firmware reads the model: "psram" (a copy) | "flash" (memory-mapped)

    @property
    def model_partition(self) -> partitions.Partition:
        return next(p for p in self.parts if p.name == "model")


def resolve_ops(op_names: list[str]) -> list[tuple[str, str]]:
    """(op, AddXxx) for each op, sorted; UserError naming every op TFLite Micro cannot register."""
    missing = sorted(n for n in set(op_names) if n not in TFLM_OPS)
    if missing:
        raise UserError(f"the model uses op(s) TFLite Micro has no kernel for: {', '.join(missing)}; "
                        f"convert the model again with `yamflash convert` (int8, TFLite Micro builtins only).")
    return [(n, TFLM_OPS[n]) for n in sorted(set(op_names))]


def default_classes(labels: list[str]) -> list[str | int]:
    """What the detector watches when nothing is configured: Speech in YAMNet's 521 AudioSet classes;
    in a model trained with `yamflash train`/`distill` (no Speech class), each of its classes."""
    if "speech" in (name.lower() for name in labels):
        return ["Speech"]
    return list(range(min(len(labels), MAX_DET_CLASSES)))


def resolve_classes(wanted: list[str | int], labels: list[str]) -> list[int]:
    """Class indices for labels (case-insensitive) or indices; UserError suggesting near labels.
    Nothing wanted: ``default_classes``."""
    wanted = wanted or default_classes(labels)
    lower = {name.lower(): i for i, name in enumerate(labels)}
    out: list[int] = []
    for w in wanted:
        if isinstance(w, int) or (isinstance(w, str) and w.strip().isdigit()):
            i = int(w)
            if not 0 <= i < len(labels):
                raise UserError(f"detector class index {i} is out of range 0..{len(labels) - 1}.")
        else:
            key = str(w).strip().lower()
            if key not in lower:
                near = difflib.get_close_matches(str(w), labels, n=3, cutoff=0.5)
                hint = f" (did you mean {', '.join(repr(n) for n in near)}?)" if near else ""
                raise UserError(f"no class labelled {w!r} in the model{hint}; use a label from model.json's "
                                f"labels or a class index.")
            i = lower[key]
        if i not in out:
            out.append(i)
    if len(out) > MAX_DET_CLASSES:
        raise UserError(f"{len(out)} detector classes; the firmware watches at most {MAX_DET_CLASSES}.")
    return out


def _check_detector(d: DetectorConfig) -> None:
    """The detector command's ranges (the protocol spec), so what gen accepts the board accepts."""
    problem = DetectorSettings([], d.threshold, d.window, d.min_count, d.refractory_ms).problem()
    if problem:
        raise UserError(f"detector {problem}.")


def arena_size(measured: int, margin_pct: int) -> int:
    """Arena to configure: the measured need plus margin_pct % (at least ARENA_MARGIN_MIN), 16-aligned."""
    return arena.size(arena.ChipNeed(measured, True, "", measured, 0), margin_pct)


MODEL_HEADROOM_PCT = 10  # room in a raw model partition for a retrained model of about the same size


def raw_model_partition_size(model_bytes: int, headroom_pct: int = MODEL_HEADROOM_PCT) -> int:
    """A raw model partition: header + model + headroom_pct % (so `flash --model-only` of a slightly larger
    model needs no new partition table), in whole 4 KiB flash sectors."""
    need = partitions.MODEL_IMAGE_HEADER.size + model_bytes
    return partitions.align_up(need + need * headroom_pct // 100, 0x1000)


def plan_layout(profile: profiles.Profile, storage: str, model_bytes: int, app_size: int, table_offset: int,
                flash_size: int) -> list[partitions.Partition]:
    """nvs, phy_init, factory app, model; resolved and checked against the flash size."""
    t, s = partitions.TYPES, partitions.SUBTYPES
    if storage == "spiffs":
        model = partitions.Partition("model", t["data"], s[1]["spiffs"], partitions.spiffs_size_for(model_bytes))
    else:
        size = raw_model_partition_size(model_bytes)
        model = partitions.Partition("model", t["data"], s[1]["undefined"], size)
    if app_size % 0x10000:
        raise UserError(f"app size 0x{app_size:x} must be a multiple of 64 KiB (0x10000).")
    rows = [
        partitions.Partition("nvs", t["data"], s[1]["nvs"], 0x6000),
        partitions.Partition("phy_init", t["data"], s[1]["phy"], 0x1000),
        partitions.Partition("factory", t["app"], s[0]["factory"], app_size),
        model,
    ]
    parts = partitions.resolve(rows, table_offset)
    if storage != "spiffs" and parts[-1].offset + parts[-1].size > flash_size:  # fit without the headroom
        rows[-1] = partitions.Partition("model", t["data"], s[1]["undefined"], raw_model_partition_size(model_bytes, 0))
        parts = partitions.resolve(rows, table_offset)
    partitions.check_fits(parts, flash_size, f"{profile.name} board ({flash_size // profiles.MB} MB flash)")
    return parts


# Pins a microphone must not take on an ESP32-S3 (ESP32-S3 datasheet v1.9, section 2 "Pins": 2.3.2 IO MUX
# functions, 2.4 strapping pins; ESP32-S3-WROOM-1 datasheet, pin notes for octal PSRAM modules).
GPIO_ABSENT = frozenset(range(22, 26))  # the S3 has no GPIO 22-25
GPIO_SPI_FLASH = frozenset(range(26, 33))  # SPICS1, SPIHD, SPIWP, SPICS0, SPICLK, SPIQ, SPID: flash and PSRAM
GPIO_OCTAL_PSRAM = frozenset(range(33, 38))  # SPIIO4-7 and SPIDQS: taken by octal PSRAM
GPIO_USB = frozenset((19, 20))  # USB D-/D+: the USB-Serial-JTAG console
GPIO_UART0 = frozenset((43, 44))  # U0TXD/U0RXD: the UART console
GPIO_STRAPPING = frozenset((0, 3, 45, 46))  # sampled at reset: a microphone driving one can change the boot mode


def check_mic_pins(pins: dict[str, int], prof: profiles.Profile, console: str) -> None:
    """UserError for a mic pin the board cannot give it: absent, wired to flash/PSRAM/console, strapping, shared."""
    taken: list[tuple[frozenset[int], str]] = [
        (GPIO_ABSENT, "does not exist on the ESP32-S3 (it has no GPIO 22-25)"),
        (GPIO_SPI_FLASH, "is wired to the SPI flash and PSRAM"),
        (GPIO_STRAPPING, "is a strapping pin sampled at reset (a microphone driving it can stop the board booting)"),
    ]
    if prof.psram == "octal":
        taken.append((GPIO_OCTAL_PSRAM, f"is used by the octal PSRAM of {prof.name}"))
    if console == "usb-serial-jtag":
        taken.append((GPIO_USB, "is USB D-/D+, which carries the USB-Serial-JTAG console"))
    if console == "uart":
        taken.append((GPIO_UART0, "is UART0 TX/RX, which carries the UART console"))
    seen: dict[int, str] = {}
    for name, gpio in sorted(pins.items()):
        if not 0 <= gpio <= 48:
            raise UserError(f"mic pin {name} = GPIO {gpio}: the ESP32-S3 has GPIO 0..48.")
        for group, why in taken:
            if gpio in group:
                raise UserError(f"mic pin {name} = GPIO {gpio} {why}; pick another pin with --pin {name}=GPIO "
                                f"(defaults: {DEFAULT_PINS}).")
        if gpio in seen:
            raise UserError(f"mic pins {seen[gpio]} and {name} are both GPIO {gpio}; give each its own pin.")
        seen[gpio] = name


def make_plan(manifest_path: str | Path, cfg: GenConfig) -> Plan:
    """Check model.json, the model file and the settings; UserError on anything inconsistent."""
    m = ModelManifest.load(manifest_path)  # schema and field checks
    model = m.read_model()  # present, and the file model.json describes
    m.check_firmware()  # a frontend, dtypes and labels the firmware core can run
    prof = profiles.get(cfg.profile)
    console = cfg.console or prof.console
    storage = "partition" if prof.sim else (cfg.storage or prof.storage)
    if not prof.sim and console not in CONSOLES:
        raise UserError(f"console {console!r}: use one of {', '.join(CONSOLES)}.")
    if storage not in STORAGES:
        raise UserError(f"model storage {storage!r}: use spiffs or partition.")
    if prof.sim and cfg.storage == "spiffs":
        raise UserError("the sim profile stores the model in a raw partition; drop --storage spiffs.")
    if cfg.mic.type not in MIC_PINS:
        raise UserError(f"microphone type {cfg.mic.type!r}: use i2s (standard, INMP441-class) or pdm.")
    if cfg.mic.slot not in ("left", "right"):
        raise UserError(f"microphone slot {cfg.mic.slot!r}: use left or right.")
    pins = DEFAULT_PINS[cfg.mic.type] | cfg.mic.pins
    if extra := set(pins) - set(MIC_PINS[cfg.mic.type]):
        raise UserError(f"pin(s) {sorted(extra)} do not apply to a {cfg.mic.type} microphone "
                        f"(it uses {', '.join(MIC_PINS[cfg.mic.type])}).")
    check_mic_pins(pins, prof, console)
    _check_detector(cfg.detector)
    flash = cfg.flash_size or prof.flash_size
    need = arena.chip_need(m, model)  # the chip's figure (ESP-NN scratch included), not the host's
    arena_bytes = arena.size(need, cfg.arena_margin_pct)
    where = arena.placement(arena_bytes, prof)
    arena.check_ram(prof, storage, len(model), arena_bytes, where)
    place = layout.model_place(prof, storage, cfg.model_place, len(model), arena_bytes, where)
    return Plan(
        manifest=m, model=model, profile=prof, cfg=cfg, console=console, storage=storage, flash_size=flash,
        ops=resolve_ops(m.ops), det_classes=resolve_classes(cfg.detector.classes, m.labels),
        pins={k: pins[k] for k in MIC_PINS[cfg.mic.type]},
        arena_bytes=arena_bytes, arena_need=need, arena_where=where, model_place=place,
        parts=plan_layout(prof, storage, len(model), cfg.app_size, cfg.table_offset, flash),
    )


# ---- rendering --------------------------------------------------------------------------------------


def c_float(v: float) -> str:
    """A float32 as a C literal that reads back to the same float32 ('%.9g' round-trips float32)."""
    s = f"{float(v):.9g}"
    if "e" not in s and "." not in s and "n" not in s:
        s += ".0"
    return s + "f"


def c_string(s: str) -> str:
    """A C string literal: printable ASCII kept, quotes/backslash/'?' (trigraphs) escaped, other bytes octal."""
    out = []
    for b in s.encode("utf-8"):
        ch = chr(b)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def c_rows(values: list[Any], per_line: int = 6, indent: str = "    ") -> str:
    """Array initializer body: ``per_line`` C literals a line (floats via c_float), each followed by a comma."""
    lits = [c_float(v) if isinstance(v, float) else str(v) for v in values]
    return "\n".join(indent + " ".join(x + "," for x in lits[i : i + per_line]) for i in range(0, len(lits), per_line))


def _env() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(c_float=c_float, c_string=c_string, c_rows=c_rows, hex=lambda n: f"0x{n:x}")
    return env


def context(plan: Plan) -> dict[str, Any]:
    """The variables templates see."""
    m = plan.manifest
    bands = sparse_mel(PARAMS)
    offsets, total = [], 0
    for _, w in bands:
        offsets.append(total)
        total += len(w)
    mp = plan.model_partition
    return {
        "generator": GENERATOR, "model_sha256": m.model.sha256, "model_bytes": len(plan.model),
        "m": m, "fe": PARAMS, "profile": plan.profile, "console": plan.console, "storage": plan.storage,
        "model_place": plan.model_place,
        "flash_size": plan.flash_size, "flash_size_mb": plan.flash_size // profiles.MB,
        "ops": plan.ops, "labels": m.labels, "det": plan.cfg.detector, "det_classes": plan.det_classes,
        "mic": plan.cfg.mic, "pins": plan.pins, "uart_baud": plan.cfg.uart_baud,
        "arena_bytes": plan.arena_bytes, "arena_need": _need(plan), "arena_where": plan.arena_where,
        "arena_margin_pct": plan.cfg.arena_margin_pct, "arena_margin_min": ARENA_MARGIN_MIN,
        "hann": [float(x) for x in periodic_hann(PARAMS.frame_length)],
        "mel_first": [first for first, _ in bands], "mel_len": [len(w) for _, w in bands],
        "mel_offset": offsets, "mel_weights": [[float(x) for x in w] for _, w in bands], "mel_total": total,
        "parts": plan.parts, "table_offset": plan.cfg.table_offset, "model_part": mp,
        "image_header": partitions.MODEL_IMAGE_HEADER.size, "image_magic": partitions.MODEL_IMAGE_MAGIC,
        "image_version": partitions.MODEL_IMAGE_VERSION,
        "sha_bytes": list(bytes.fromhex(m.model.sha256)),
    }


GENERATED = {  # template -> path relative to the firmware folder
    "generated/yf_model_params.h.j2": "main/generated/yf_model_params.h",
    "generated/yf_board_config.h.j2": "main/generated/yf_board_config.h",
    "generated/yf_detector_config.h.j2": "main/generated/yf_detector_config.h",
    "generated/yf_tables.h.j2": "main/generated/yf_tables.h",
    "generated/yf_tables.c.j2": "main/generated/yf_tables.c",
    "generated/yf_op_resolver.h.j2": "main/generated/yf_op_resolver.h",
    "generated/yf_gen.cmake.j2": "main/generated/yf_gen.cmake",
    "partitions.csv.j2": "partitions.csv",
    "sdkconfig.defaults.j2": "sdkconfig.defaults",
}
SPIFFS_MODEL = "spiffs/model.tflite"
PARTITION_MODEL = "model/model_partition.bin"
STAMP = "main/generated/yf_gen.json"


def render_one(plan: Plan, template: str) -> bytes:
    """One file of GENERATED for this plan (chip_arena.py compiles yf_inference.cpp against two of them)."""
    return _env().get_template(template).render(context(plan)).encode()


def render(plan: Plan) -> dict[str, bytes]:
    """Relative path -> content of every file `gen` owns for this plan."""
    env, ctx = _env(), context(plan)
    files = {out: env.get_template(tpl).render(ctx).encode() for tpl, out in GENERATED.items()}
    if plan.storage == "spiffs":
        files[SPIFFS_MODEL] = plan.model
    else:
        files[PARTITION_MODEL] = partitions.model_image(plan.model)
    files[STAMP] = (json.dumps(stamp(plan), indent=2, sort_keys=True) + "\n").encode()
    return files


def _need(plan: Plan) -> arena.ChipNeed:
    return plan.arena_need or arena.chip_need(plan.manifest, plan.model)


def stamp(plan: Plan) -> dict[str, Any]:
    """What `yamflash build` needs to know about this generation (yf_gen.json)."""
    mp = plan.model_partition
    return {
        "generator": GENERATOR, "profile": plan.profile.name, "storage": plan.storage, "console": plan.console,
        "flash_size": plan.flash_size, "table_offset": plan.cfg.table_offset,
        "model_sha256": plan.manifest.model.sha256, "model_bytes": len(plan.model),
        "model_partition": {"offset": mp.offset, "size": mp.size, "subtype": mp.subtype},
        "model_file": SPIFFS_MODEL if plan.storage == "spiffs" else PARTITION_MODEL,
        "arena_bytes": plan.arena_bytes, "ops": [op for op, _ in plan.ops],
        "mic": asdict(plan.cfg.mic) | {"pins": plan.pins}, "detector_classes": plan.det_classes,
        # What the headers give the chip, for the virtual board's app descriptor (build --board sim): the
        # chip's arena need (what AllocateTensors will use), whether it was measured, and where it goes.
        "arena_measured": _need(plan).bytes, "arena_chip_measured": _need(plan).measured,
        "arena_where": plan.arena_where, "arena_host": plan.manifest.arena_bytes, "model_place": plan.model_place,
        "labels": list(plan.manifest.labels),
        "detector": asdict(plan.cfg.detector) | {"classes": plan.det_classes},
    }


@dataclass
class GenResult:
    written: list[str]
    unchanged: list[str]
    removed: list[str]
    plan: Plan


def generate(manifest_path: str | Path, cfg: GenConfig, firmware_dir: str | Path) -> GenResult:
    """Render everything and write only files whose content changed (atomically)."""
    plan = make_plan(manifest_path, cfg)
    fw = Path(firmware_dir)
    if not (fw / "main").is_dir():
        raise UserError(f"{fw} is not the firmware folder (no main/); pass --firmware firmware.")
    written, unchanged, removed = [], [], []
    changed: dict[str | Path, bytes] = {}
    for rel, data in render(plan).items():
        path = fw / rel
        if path.is_file() and path.read_bytes() == data:
            unchanged.append(rel)
            continue
        changed[path] = data
        written.append(rel)
    # All staged, then swapped: a full disk or a read-only file leaves the previous generation whole.
    for path in write_all(changed, flag="--firmware"):
        path.chmod(0o644)
    stale = PARTITION_MODEL if plan.storage == "spiffs" else SPIFFS_MODEL
    if (fw / stale).is_file():
        (fw / stale).unlink()
        removed.append(stale)
        with contextlib.suppress(OSError):
            (fw / stale).parent.rmdir()  # only when now empty
    removed += retire_stale_sdkconfig(fw, plan.profile.name)
    return GenResult(written, unchanged, removed, plan)


def stale_settings(sdkconfig: str, defaults: str) -> list[str]:
    """The settings of sdkconfig.defaults that an existing sdkconfig does not carry.

    ESP-IDF and PlatformIO read sdkconfig.defaults only when they create an sdkconfig, so an sdkconfig
    from an earlier `gen` keeps its old values (e.g. the USB console after `--console uart`)."""
    have = set(sdkconfig.splitlines())
    return [line for line in defaults.splitlines() if line.startswith("CONFIG_") and line not in have]


def retire_stale_sdkconfig(fw: Path, profile: str) -> list[str]:
    """Rename every sdkconfig that disagrees with the current sdkconfig.defaults to <name>.old (kept, as
    ESP-IDF's own menuconfig does, so nothing the user set by hand is lost); the next build makes a fresh
    one. Returns what was renamed."""
    try:
        defaults = (fw / "sdkconfig.defaults").read_text()
    except OSError:
        return []
    retired = []
    from .build import sdkconfig_paths

    for path in sdkconfig_paths(fw, profile):
        if not path.is_file() or not stale_settings(path.read_text(errors="replace"), defaults):
            continue
        old = path.with_name(path.name + ".old")
        try:
            path.replace(old)
        except OSError as exc:
            raise UserError(f"{path} holds settings older than this gen and cannot be renamed ({exc.strerror}); "
                            f"delete it so the next build starts from sdkconfig.defaults.") from None
        retired.append(f"{path.relative_to(fw)} (settings changed; kept as {old.name})")
    return retired
