"""`yamflash gen`: determinism, tables equal to frontend.py, the op resolver, the flash layout, and every
generated source compiling with the host compiler (C headers with gcc, the C++ resolver against a stub of
TFLite Micro's MicroMutableOpResolver built from TFLM_OPS)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from yamflash.chip.inspect import TFLM_OPS
from yamflash.cli import main
from yamflash.errors import UserError
from yamflash.frontend import PARAMS, periodic_hann, sparse_mel
from yamflash.target import gen, partitions, profiles

ROOT = Path(__file__).resolve().parents[1]
YF_CORE = ROOT / "firmware" / "components" / "yf_core"
MODEL_OPS = ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "LOGISTIC", "MEAN", "RESHAPE"]
ODD_LABELS = {1: 'Say "hi"', 2: "back\\slash", 3: "trigraph ??) and ??=", 4: "Caf\u00e9 */ end", 5: "tab\there"}

# Every CONFIG_ name `gen` may write, checked by hand against ESP-IDF v5.5.1's Kconfig files (see
# firmware/README.md). A name outside this set fails test_sdkconfig_names_are_verified until checked.
VERIFIED_KCONFIG = {
    "IDF_TARGET", "ESPTOOLPY_FLASHSIZE_4MB", "ESPTOOLPY_FLASHSIZE_8MB", "ESPTOOLPY_FLASHSIZE_16MB",
    "ESPTOOLPY_FLASHMODE_QIO", "ESPTOOLPY_FLASHFREQ_80M", "PARTITION_TABLE_CUSTOM",
    "PARTITION_TABLE_CUSTOM_FILENAME", "PARTITION_TABLE_OFFSET", "SPIRAM", "SPIRAM_MODE_OCT", "SPIRAM_MODE_QUAD",
    "SPIRAM_SPEED_80M", "SPIRAM_USE_MALLOC", "ESP_DEFAULT_CPU_FREQ_MHZ_240", "ESP32S3_DATA_CACHE_64KB",
    "ESP32S3_DATA_CACHE_LINE_64B", "COMPILER_OPTIMIZATION_PERF", "FREERTOS_HZ", "ESP_MAIN_TASK_STACK_SIZE",
    "ESP_TASK_WDT_TIMEOUT_S", "ESP_CONSOLE_USB_SERIAL_JTAG", "ESP_CONSOLE_SECONDARY_NONE",
    "ESP_CONSOLE_UART_CUSTOM", "ESP_CONSOLE_UART_CUSTOM_NUM_0", "ESP_CONSOLE_UART_BAUDRATE", "SPIFFS_PAGE_SIZE",
    "SPIFFS_OBJ_NAME_LEN", "SPIFFS_META_LENGTH", "SPIFFS_USE_MAGIC", "SPIFFS_USE_MAGIC_LENGTH",
}


def make_model(dir: Path, ops: list[str] | None = None, nbytes: int = 200_000, seed: int = 0) -> Path:
    """A model.json + a stand-in model.tflite (random bytes: gen never parses the flatbuffer)."""
    dir.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8).tobytes()
    (dir / "model.tflite").write_bytes(data)
    labels = [f"class {i}" for i in range(521)]
    labels[0], labels[69] = "Speech", "Dog"
    for i, name in ODD_LABELS.items():
        labels[i] = name
    m = {
        "schema": 1, "generator": "yamflash test",
        "model": {"file": "model.tflite", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        "input": {"shape": [1, 96, 64], "dtype": "int8", "scale": 0.047968219965696335, "zero_point": 16},
        "output": {"shape": [1, 521], "dtype": "int8", "scale": 0.00390625, "zero_point": -128,
                   "activation": "sigmoid"},
        "frontend": PARAMS.to_dict(), "labels": labels, "ops": ops or MODEL_OPS, "arena_bytes": 247216,
        "arena_measured_on": "test",
        # The chip's figure (ESP-NN scratch included) gen sizes from; without it gen would bound it from the
        # flatbuffer's shapes, and this stand-in model is random bytes.
        "arena": {"host_reference": 247216, "chip_espnn": 1160640, "largest_scratch": 1048640,
                  "chip_measured_on": "test"},
    }
    (dir / "model.json").write_text(json.dumps(m))
    return dir / "model.json"


def firmware_dir(tmp: Path) -> Path:
    fw = tmp / "firmware"
    (fw / "main").mkdir(parents=True)
    return fw


def run_gen(tmp: Path, name: str = "fw", **cfg: object) -> tuple[Path, gen.GenResult]:
    model = make_model(tmp / "model")
    fw = firmware_dir(tmp / name)
    c = gen.GenConfig(**cfg)  # type: ignore[arg-type]
    c.detector.classes = ["Dog", "speech", 42]
    return fw, gen.generate(model, c, fw)


def c_array(text: str, name: str) -> list[str]:
    m = re.search(rf"\b{name}\[[^\]]*\] = \{{(.*?)\n\}};", text, re.S)
    assert m, name
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    return [x.strip() for x in body.split(",") if x.strip()]


# ---- determinism -----------------------------------------------------------------------------------


def test_same_inputs_give_byte_identical_files(tmp_path: Path) -> None:
    fw1, r1 = run_gen(tmp_path, "a")
    fw2, r2 = run_gen(tmp_path, "b")
    assert sorted(r1.written) == sorted(r2.written)
    for rel in r1.written:
        assert (fw1 / rel).read_bytes() == (fw2 / rel).read_bytes(), rel


def test_unchanged_files_are_not_rewritten(tmp_path: Path) -> None:
    fw, first = run_gen(tmp_path)
    mtimes = {rel: (fw / rel).stat().st_mtime_ns for rel in first.written}
    c = gen.GenConfig()
    c.detector.classes = ["Dog", "speech", 42]
    again = gen.generate(tmp_path / "model" / "model.json", c, fw)
    assert again.written == [] and sorted(again.unchanged) == sorted(first.written)
    assert {rel: (fw / rel).stat().st_mtime_ns for rel in first.written} == mtimes
    c.detector.threshold = 0.7
    third = gen.generate(tmp_path / "model" / "model.json", c, fw)
    # The detector header, and the stamp that carries the settings to the virtual board's app descriptor.
    assert sorted(third.written) == ["main/generated/yf_detector_config.h", "main/generated/yf_gen.json"]


def test_headers_name_model_sha_and_generator(tmp_path: Path) -> None:
    fw, r = run_gen(tmp_path)
    sha = r.plan.manifest.model.sha256
    for rel in r.written:
        if rel.endswith((".h", ".c", ".csv", ".cmake", "sdkconfig.defaults")):
            head = (fw / rel).read_text().splitlines()[:2]
            assert gen.GENERATOR in head[0] and sha in head[1], rel


# ---- tables ----------------------------------------------------------------------------------------


def test_mel_and_window_tables_equal_frontend_float32(tmp_path: Path) -> None:
    fw, _ = run_gen(tmp_path)
    text = (fw / "main/generated/yf_tables.c").read_text()
    hann = np.array([float(v.rstrip("f")) for v in c_array(text, "yf_tab_hann")], np.float32)
    assert np.array_equal(hann, periodic_hann(PARAMS.frame_length))
    bands = sparse_mel(PARAMS)
    first = [int(v) for v in c_array(text, "yf_tab_mel_first")]
    length = [int(v) for v in c_array(text, "yf_tab_mel_len")]
    offset = [int(v) for v in c_array(text, "yf_tab_mel_offset")]
    weights = np.array([float(v.rstrip("f")) for v in c_array(text, "yf_tab_mel_weights")], np.float32)
    assert len(first) == 64 and first == [b[0] for b in bands]
    for j, (_, w) in enumerate(bands):
        assert length[j] == len(w)
        assert np.array_equal(weights[offset[j] : offset[j] + length[j]], w), j  # bit-exact float32
    assert len(weights) == sum(len(w) for _, w in bands)


@pytest.mark.parametrize("value", [0.0, 1.0, 1e-5, 0.047968219965696335, 123456.789, float(np.float32(1 / 3))])
def test_c_float_round_trips_float32(value: float) -> None:
    lit = gen.c_float(value)
    assert lit.endswith("f") and np.float32(float(lit[:-1])) == np.float32(value)


# ---- op resolver -----------------------------------------------------------------------------------


def test_resolver_has_exactly_the_models_ops(tmp_path: Path) -> None:
    fw, _ = run_gen(tmp_path)
    text = (fw / "main/generated/yf_op_resolver.h").read_text()
    assert "MicroMutableOpResolver<YF_OP_COUNT>" in text
    assert re.search(r"#define YF_OP_COUNT (\d+)", text).group(1) == str(len(MODEL_OPS))  # type: ignore[union-attr]
    assert re.findall(r"resolver\.(Add\w+)\(\)", text) == [TFLM_OPS[o] for o in sorted(MODEL_OPS)]


def test_tflm_ops_table_uses_real_method_names() -> None:
    # Spot checks of names read in tflite-micro's micro_mutable_op_resolver.h (the full table was generated
    # from that header; see inspect_model.py). A typo here would only show up when compiling for the chip.
    expected = {"CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "FULLY_CONNECTED":
                "AddFullyConnected", "LOGISTIC": "AddLogistic", "MEAN": "AddMean", "RESHAPE": "AddReshape",
                "AVERAGE_POOL_2D": "AddAveragePool2D", "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
                "SQUARED_DIFFERENCE": "AddSquaredDifference", "UNIDIRECTIONAL_SEQUENCE_LSTM":
                "AddUnidirectionalSequenceLSTM", "PADV2": "AddPadV2", "L2_POOL_2D": "AddL2Pool2D"}
    assert {k: TFLM_OPS[k] for k in expected} == expected
    assert len(TFLM_OPS) == 100 and len(set(TFLM_OPS.values())) == 100
    assert all(re.fullmatch(r"Add[A-Z][A-Za-z0-9]*", v) for v in TFLM_OPS.values())


def test_tflm_ops_table_against_header_when_available() -> None:
    header = os.environ.get("YAMFLASH_TFLM_RESOLVER_H")
    if not header or not Path(header).is_file():
        pytest.skip("set YAMFLASH_TFLM_RESOLVER_H to tflite-micro's micro_mutable_op_resolver.h to compare")
    src = Path(header).read_text()
    found = {}
    parts = re.split(r"TfLiteStatus (Add\w+)\(", src)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        m = re.search(r"BuiltinOperator_(\w+)", body[:600])
        if m and name not in ("AddBuiltin", "AddCustom"):
            found[m.group(1)] = name
    assert found == TFLM_OPS


def test_unknown_op_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = make_model(tmp_path / "m", ops=[*MODEL_OPS, "STABLEHLO_COMPOSITE"])
    with pytest.raises(UserError, match="STABLEHLO_COMPOSITE"):
        gen.generate(model, gen.GenConfig(), firmware_dir(tmp_path))
    rc = main(["gen", "--model", str(model), "--firmware", str(tmp_path / "firmware")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "STABLEHLO_COMPOSITE" in err[0] and "yamflash convert" in err[0]


# ---- detector, config ------------------------------------------------------------------------------


def test_detector_classes_by_label_or_index(tmp_path: Path) -> None:
    fw, r = run_gen(tmp_path)
    assert r.plan.det_classes == [69, 0, 42]
    text = (fw / "main/generated/yf_detector_config.h").read_text()
    assert "#define YF_DET_CLASSES { 69, 0, 42 }" in text and "#define YF_DET_NUM_CLASSES 3" in text
    with pytest.raises(UserError, match="did you mean 'Dog'"):
        gen.resolve_classes(["Dogg"], r.plan.manifest.labels)


def test_default_detector_classes_follow_the_model() -> None:
    """Nothing configured: Speech for YAMNet's AudioSet labels, every class of a trained model."""
    audioset = ["Speech", "Child speech", "Dog"]
    assert gen.resolve_classes([], audioset) == [0]
    assert gen.resolve_classes([], ["dog", "rooster", "rain"]) == [0, 1, 2]
    many = [f"sound {i}" for i in range(gen.MAX_DET_CLASSES + 5)]
    assert gen.resolve_classes([], many) == list(range(gen.MAX_DET_CLASSES))
    assert gen.resolve_classes(["rain"], ["dog", "rooster", "rain"]) == [2]


def test_config_file_and_bad_key(tmp_path: Path) -> None:
    toml = tmp_path / "yamflash.toml"
    toml.write_text('[board]\nprofile = "esp32s3-n8r2"\nconsole = "uart"\napp_size = "3M"\n'
                    '[mic]\ntype = "pdm"\nclk = 1\ndin = 2\n'
                    '[detector]\nclasses = ["Dog"]\nthreshold = 0.8\nwindow = 4\n[model]\nstorage = "partition"\n')
    c = gen.load_config(toml)
    assert (c.profile, c.console, c.app_size, c.mic.type, c.mic.pins, c.detector.window, c.storage) == \
        ("esp32s3-n8r2", "uart", 3 << 20, "pdm", {"clk": 1, "din": 2}, 4, "partition")
    toml.write_text("[detector]\nthresh = 1\n")
    with pytest.raises(UserError, match="unknown key"):
        gen.load_config(toml)


def test_uart_pdm_partition_profile(tmp_path: Path) -> None:
    c = gen.GenConfig(profile="esp32s3-n8r2", console="uart", storage="partition",
                      mic=gen.MicConfig(type="pdm", pins={"clk": 42, "din": 41}))
    fw = firmware_dir(tmp_path)
    r = gen.generate(make_model(tmp_path / "m"), c, fw)
    sdk = (fw / "sdkconfig.defaults").read_text()
    assert "CONFIG_SPIRAM_MODE_QUAD=y" in sdk and "CONFIG_ESPTOOLPY_FLASHSIZE_8MB=y" in sdk
    assert "CONFIG_ESP_CONSOLE_UART_CUSTOM=y" in sdk and "CONFIG_ESP_CONSOLE_UART_BAUDRATE=921600" in sdk
    board = (fw / "main/generated/yf_board_config.h").read_text()
    assert "#define YF_MIC_PDM 1" in board and "#define YF_MIC_PIN_CLK 42" in board
    image = (fw / gen.PARTITION_MODEL).read_bytes()
    assert partitions.read_model_image(image)[0] == (tmp_path / "m" / "model.tflite").read_bytes()
    assert not (fw / gen.SPIFFS_MODEL).exists() and r.plan.model_partition.subtype == 0x06


def test_n16r8_is_octal_16mb_usb_console(tmp_path: Path) -> None:
    fw, _ = run_gen(tmp_path)
    sdk = (fw / "sdkconfig.defaults").read_text()
    for line in ("CONFIG_SPIRAM_MODE_OCT=y", "CONFIG_ESPTOOLPY_FLASHSIZE_16MB=y",
                 "CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG=y", "CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_240=y",
                 "CONFIG_COMPILER_OPTIMIZATION_PERF=y",
                 "CONFIG_PARTITION_TABLE_CUSTOM=y", 'CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="partitions.csv"'):
        assert line in sdk.splitlines()
    model, _ = partitions.read_model_image((fw / gen.PARTITION_MODEL).read_bytes())  # default: raw partition
    assert model == (tmp_path / "model" / "model.tflite").read_bytes()


@pytest.mark.parametrize("profile,console", [("esp32s3-n16r8", "usb-serial-jtag"), ("esp32s3-n8r2", "uart")])
def test_sdkconfig_names_are_verified(tmp_path: Path, profile: str, console: str) -> None:
    fw = firmware_dir(tmp_path)
    gen.generate(make_model(tmp_path / "m"), gen.GenConfig(profile=profile, console=console), fw)
    names = set(re.findall(r"^CONFIG_(\w+)=", (fw / "sdkconfig.defaults").read_text(), re.M))
    assert names and names <= VERIFIED_KCONFIG, names - VERIFIED_KCONFIG


# ---- flash layout ----------------------------------------------------------------------------------


def test_partition_offsets_follow_esp_idf_rules(tmp_path: Path) -> None:
    fw, r = run_gen(tmp_path, storage="spiffs")
    got = {p.name: (p.offset, p.size) for p in r.plan.parts}
    model_size = partitions.spiffs_size_for(200_000)
    assert got == {"nvs": (0x9000, 0x6000), "phy_init": (0xF000, 0x1000), "factory": (0x10000, 0x200000),
                   "model": (0x210000, model_size)}
    csv = (fw / "partitions.csv").read_text()
    assert partitions.resolve(partitions.from_csv(csv)) == r.plan.parts
    assert "model, data, spiffs, , " in csv


def test_resolve_pads_to_type_alignment() -> None:
    t, s = partitions.TYPES, partitions.SUBTYPES
    rows = [partitions.Partition("nvs", t["data"], s[1]["nvs"], 0x5000),
            partitions.Partition("app", t["app"], s[0]["factory"], 0x100000),
            partitions.Partition("d", t["data"], s[1]["spiffs"], 0x3000)]
    got = partitions.resolve(rows, 0x9000)
    assert [p.offset for p in got] == [0xA000, 0x10000, 0x110000]
    with pytest.raises(UserError, match="multiple of 64 KiB"):
        partitions.resolve([partitions.Partition("app", t["app"], 0, 0x18000)])
    with pytest.raises(UserError, match="overlaps"):
        partitions.resolve([rows[0], partitions.Partition("x", t["data"], 0x82, 0x1000, 0x9000)])


def test_spiffs_size_fits_spiffsgen_and_mkspiffs() -> None:
    # Minimal image sizes that ESP-IDF v5.5.1's spiffsgen.py accepted (and one block less it refused) for a
    # single /model.tflite of these sizes, default geometry; recorded when partitions.py was written.
    known = {251: 4096, 25851: 28672, 100000: 110592, 4060920: 4456448}
    for n, size in known.items():
        assert partitions.spiffsgen_blocks(n) * partitions.SPIFFS_BLOCK == size
    # Fewest blocks mkspiffs 0.2.3 (PlatformIO's buildfs) built these in, found by bisection (one less failed
    # with "File system is full"); tests/test_spiffs_image.py reruns the real tool where ../shared/sdk is.
    mkspiffs_min = {1000: 3, 100000: 36, 1000000: 338, 4061480: 1364, 6000000: 2013, 9000000: 3018}
    for n, blocks in mkspiffs_min.items():
        assert blocks <= partitions.mkspiffs_blocks(n) <= blocks + 8, n
        assert partitions.spiffs_size_for(n) == partitions.mkspiffs_blocks(n) * partitions.SPIFFS_BLOCK
    assert partitions.spiffs_size_for(4061480) == 0x557000  # was 0x442000: spiffsgen.py's need + 2 blocks
    with pytest.raises(UserError, match="use --storage partition"):
        partitions.spiffs_size_for(14 * profiles.MB)


def test_model_too_big_for_flash_says_the_numbers(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", nbytes=3_000_000)
    c = gen.GenConfig(profile="esp32s3-n16r8", flash_size=4 * profiles.MB, storage="spiffs")
    with pytest.raises(UserError) as e:
        gen.generate(model, c, firmware_dir(tmp_path))
    msg = str(e.value)
    end = 0x210000 + partitions.spiffs_size_for(3_000_000)
    assert f"{end:,}" in msg and f"{4 * profiles.MB:,}" in msg and "model partition" in msg


def test_model_file_must_match_manifest(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    (tmp_path / "m" / "model.tflite").write_bytes(b"other")
    with pytest.raises(UserError, match="does not match"):
        gen.generate(model, gen.GenConfig(), firmware_dir(tmp_path))


# ---- compile with the host compiler ----------------------------------------------------------------

CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


def test_generated_c_and_yf_core_compile(tmp_path: Path) -> None:
    gcc = need("gcc")
    fw, _ = run_gen(tmp_path)
    gen_dir = fw / "main" / "generated"
    sources = [gen_dir / "yf_tables.c"]
    for h in ("yf_model_params.h", "yf_board_config.h", "yf_detector_config.h", "yf_tables.h"):
        src = tmp_path / f"inc_{h}.c"
        src.write_text(f'#include "{h}"\n#include "{h}"\nint yf_dummy_{h[:-2]};\n')
        sources.append(src)
    core = sorted((YF_CORE / "src").glob("*.c")) if YF_CORE.is_dir() else []
    for src in sources + core:
        subprocess.run([gcc, *CFLAGS, f"-I{gen_dir}", f"-I{YF_CORE / 'include'}", "-c", str(src), "-o",
                        str(tmp_path / (src.name + ".o"))], check=True, capture_output=True, text=True)
    # The labels survive C escaping: compile and print them back.
    main_c = tmp_path / "labels.c"
    main_c.write_text('#include <stdio.h>\n#include "yf_tables.h"\n'
                      'int main(void) { for (int i = 0; i < 6; ++i) printf("%s\\n", yf_tab_labels[i]); '
                      'return 0; }\n')
    exe = tmp_path / "labels"
    subprocess.run([gcc, *CFLAGS, f"-I{gen_dir}", str(main_c), str(gen_dir / "yf_tables.c"), "-o", str(exe)],
                   check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True).stdout.decode().splitlines()
    assert out[1:6] == [ODD_LABELS[i] for i in range(1, 6)]


def resolver_stub(root: Path) -> None:
    """tensorflow/lite/micro/micro_mutable_op_resolver.h with only TFLM_OPS's methods (for -fsyntax-only)."""
    d = root / "tensorflow" / "lite" / "micro"
    d.mkdir(parents=True)
    methods = "\n".join(f"  TfLiteStatus {m}() {{ return kTfLiteOk; }}" for m in sorted(TFLM_OPS.values()))
    (d / "micro_mutable_op_resolver.h").write_text(
        "#pragma once\ntypedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;\n"
        f"namespace tflite {{\ntemplate <unsigned int tOpCount>\nclass MicroMutableOpResolver {{\n public:\n"
        f"{methods}\n}};\n}}\n")


def test_op_resolver_compiles_against_stub(tmp_path: Path) -> None:
    gxx = need("g++")
    fw, _ = run_gen(tmp_path)
    resolver_stub(tmp_path / "stub")
    src = tmp_path / "use.cpp"
    src.write_text('#include "yf_op_resolver.h"\nint main() { YfOpResolver r; return yf_register_ops(r) ? 1 : 0; }\n')
    subprocess.run([gxx, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", f"-I{tmp_path / 'stub'}",
                    f"-I{fw / 'main' / 'generated'}", str(src)], check=True)


# ---- the real converted model ----------------------------------------------------------------------


def test_real_model_generates(tmp_path: Path, converted: Path) -> None:
    model = converted / "model.json"
    fw = firmware_dir(tmp_path)
    r = gen.generate(model, gen.GenConfig(), fw)
    mp = r.plan.model_partition
    n = r.plan.manifest.model.bytes
    assert r.plan.storage == "partition"  # the default: memory-mapped, nothing copied at boot
    assert mp.offset == 0x210000 and mp.size == gen.raw_model_partition_size(n)
    assert mp.size >= (partitions.MODEL_IMAGE_HEADER.size + n) * 1.1
    assert [a for _, a in r.plan.ops] == [TFLM_OPS[o] for o in sorted(r.plan.manifest.ops)]


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    """gen.load_config(path, overrides): yamflash.toml first, then every flag that was given; another microphone
    type drops the file's pins (they belong to the other wiring)."""
    toml = tmp_path / "yamflash.toml"
    toml.write_text('[board]\nprofile = "esp32s3-n8r2"\n[detector]\nthreshold = 0.4\nwindow = 4\n'
                    '[mic]\ntype = "i2s"\ndin = 7\n')
    cfg = gen.load_config(toml, {"threshold": 0.7, "window": None, "console": "uart", "flash_size": "8MB",
                                 "mic_type": "pdm", "pins": ("clk=40",), "classes": ("Dog",)})
    assert (cfg.profile, cfg.console, cfg.flash_size) == ("esp32s3-n8r2", "uart", 8 << 20)
    assert (cfg.detector.threshold, cfg.detector.window, cfg.detector.classes) == (0.7, 4, ["Dog"])
    assert (cfg.mic.type, cfg.mic.pins) == ("pdm", {"clk": 40})
    assert gen.load_config(toml).mic.pins == {"din": 7}
    with pytest.raises(UserError, match="NAME=GPIO"):
        gen.load_config(None, {"pins": ("din6",)})
    with pytest.raises(TypeError, match="no setting 'colour'"):
        gen.load_config(None, {"colour": "red"})
