"""Firmware compile gate (issue 10): every source of firmware/main, components/yf_core and `yamflash gen`'s
output, for all 16 board profile x console x mic x storage variants, compiled with ESP-IDF v5.5's own flags
and -Werror against the real ESP-IDF v5.5 / esp-tflite-micro v1.3.7 / esp-nn / esp-dsp headers of
../shared/sdk, with an sdkconfig.h that kconfgen makes from the generated sdkconfig.defaults.
How it matches (and where it cannot match) the chip build: tests/firmware_compile/harness.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from firmware_compile import harness, sdkconfig
from test_gen import make_model
from yamflash.target import gen


@pytest.fixture(scope="module")
def sdk() -> None:
    why = harness.missing_sdk()
    if why:
        pytest.skip(f"firmware compile gate: {why}")


# ---- the gate ---------------------------------------------------------------------------------------


def test_every_variant_compiles_without_a_warning(sdk: None, converted: Path, tmp_path: Path) -> None:
    # Finding 6: the N8R2's 2 MB of PSRAM cannot hold the 4 MB model copy SPIFFS storage makes plus the arena, so
    # gen refuses that pair for full YAMNet; those variants compile with a model of the compact student's size.
    n8r2_spiffs = [v for v in harness.VARIANTS if v.profile == "esp32s3-n8r2" and v.storage == "spiffs"]
    with pytest.raises(RuntimeError, match="2 MB of PSRAM"):
        harness.run_gate(converted / "model.json", tmp_path / "refused", variants=n8r2_spiffs[:1])
    compact = make_model(tmp_path / "compact", nbytes=244_856)
    results = [harness.run_gate(converted / "model.json", tmp_path / "full",
                                variants=[v for v in harness.VARIANTS if v not in n8r2_spiffs]),
               harness.run_gate(compact, tmp_path / "compact", variants=n8r2_spiffs)]
    fw = harness.FIRMWARE
    per_variant = len(harness.main_sources(fw)) + len(harness.core_sources(fw))
    assert len(harness.VARIANTS) == 16
    assert sum(len(res.units) for res in results) == 16 * per_variant
    assert {u.variant for res in results for u in res.units} == set(harness.VARIANTS)
    for res in results:
        assert not res.failures, f"{len(res.failures)} of {len(res.units)} units fail:\n{harness.report(res)}"
        assert 0 < res.compiled <= len(res.units)


def test_main_requires_only_components_the_sdk_has(sdk: None) -> None:
    # A requirement outside ../shared/sdk (mbedtls, before issue 10) would leave its headers unfound.
    priv = harness.main_priv_requires(harness.FIRMWARE / "main" / "CMakeLists.txt")
    _, unknown = harness.closure([r for r in priv if r != "yf_core"])
    assert unknown == []
    assert "mbedtls" not in priv  # mbedtls_sha256() is gone from ESP-IDF 6.0's app API


def test_gate_reports_the_missing_include_and_a_warning(sdk: None, converted: Path, tmp_path: Path) -> None:
    """Issue 10 finding 1 (yf_tasks.c used YF_DET_* without including yf_detector_config.h) fails the gate
    with the compiler's message, and so does a plain warning."""

    def break_it(fw: Path) -> None:
        tasks = fw / "main" / "yf_tasks.c"
        text = tasks.read_text()
        assert '#include "yf_detector_config.h"\n' in text
        tasks.write_text(text.replace('#include "yf_detector_config.h"\n', ""))
        main = fw / "main" / "yf_main.c"
        main.write_text(main.read_text() + "\nstatic int yf_gate_unused;\n")

    one = [harness.Variant("esp32s3-n8r2", "uart", "pdm", "partition")]
    res = harness.run_gate(converted / "model.json", tmp_path, variants=one, mutate=break_it,
                           only={"yf_tasks.c", "yf_main.c", "yf_audio.c"})
    failed = {u.source.name: u.diagnostics for u in res.failures}
    assert set(failed) == {"yf_tasks.c", "yf_main.c"}, harness.report(res)
    assert "'YF_DET_NUM_CLASSES' undeclared" in failed["yf_tasks.c"].replace("\u2018", "'").replace("\u2019", "'")
    assert "yf_gate_unused" in failed["yf_main.c"] and "-Wunused-variable" in failed["yf_main.c"]
    assert "yf_gate_unused" in harness.report(res)


# ---- flags ------------------------------------------------------------------------------------------


def test_flags_are_esp_idf_v55s(sdk: None) -> None:
    b = harness.build_cmake_flags(harness.IDF / "tools" / "cmake" / "build.cmake")
    assert {"-Wall", "-Werror", "-Wextra", "-Wno-error=extra", "-Wno-unused-parameter", "-Wno-sign-compare",
            "-Wno-enum-conversion", "-ffunction-sections"} <= set(b["compile_options"])
    assert b["c_compile_options"] == ["-std=gnu17"] and b["cxx_compile_options"] == ["-std=gnu++2b"]
    assert "_GNU_SOURCE" in b["compile_definitions"]
    perf = harness.compile_flags({"COMPILER_OPTIMIZATION_PERF": "y", "COMPILER_DISABLE_DEFAULT_ERRORS": "y"})
    assert "-O2" in perf.c and "-std=gnu17" in perf.c and "-std=gnu++2b" in perf.cxx
    assert {"-fno-exceptions", "-fno-rtti"} <= set(perf.cxx) and "-fno-rtti" not in perf.c
    assert "-Werror=all" in perf.c and perf.c[-1] == "-Werror"  # ESP-IDF's default, then the gate's own
    assert not any(f.startswith("-mlongcalls") for f in perf.c + perf.cxx)


# ---- sdkconfig.h ------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile,console", [("esp32s3-n16r8", "usb-serial-jtag"), ("esp32s3-n8r2", "uart")])
def test_sdkconfig_keeps_every_generated_default(sdk: None, tmp_path: Path, profile: str, console: str) -> None:
    fw = tmp_path / "fw"
    (fw / "main").mkdir(parents=True)
    gen.generate(make_model(tmp_path / "model"), gen.GenConfig(profile=profile, console=console), fw)
    defaults = (fw / "sdkconfig.defaults").read_text()
    out = sdkconfig.generate(defaults, harness.IDF, [harness.DSP / "Kconfig"], tmp_path / "kconfig")
    cfg = sdkconfig.read_config(out / "sdkconfig")
    wanted = dict(line.split("=", 1) for line in defaults.splitlines() if line.startswith("CONFIG_"))
    assert wanted
    for key, value in wanted.items():
        assert cfg.get(key[len("CONFIG_"):]) == value, key
    header = (out / "sdkconfig.h").read_text()
    assert "#define CONFIG_COMPILER_OPTIMIZATION_PERF 1" in header
    # Defaults of the component Kconfig files themselves (esp_system/Kconfig, freertos/Kconfig, soc caps).
    assert cfg["ESP_TASK_WDT_CHECK_IDLE_TASK_CPU1"] == "y" and cfg["FREERTOS_NUMBER_OF_CORES"] == "2"
    assert cfg["IDF_TARGET_ESP32S3"] == "y" and cfg["IDF_TARGET_ARCH_XTENSA"] == "y"
    assert ("ESP_CONSOLE_UART_NUM" in cfg) and (cfg["ESP_CONSOLE_UART_NUM"] == "0") == (console == "uart")
    # A deprecated alias from an sdkconfig.rename file (esp_system/sdkconfig.rename) is written too.
    assert "#define CONFIG_TASK_WDT_TIMEOUT_S CONFIG_ESP_TASK_WDT_TIMEOUT_S" in header


def test_sdkconfig_refuses_an_unknown_option(sdk: None, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="NOT_A_REAL_OPTION"):
        sdkconfig.generate('CONFIG_IDF_TARGET="esp32s3"\nCONFIG_NOT_A_REAL_OPTION=y\n', harness.IDF,
                           [harness.DSP / "Kconfig"], tmp_path)


def test_every_undeclared_kconfig_name_is_accounted_for(sdk: None, tmp_path: Path) -> None:
    # Names the sdk's Kconfig files use but nothing in it declares evaluate to n; each must be one whose
    # upstream value on the ESP32-S3 is n (sdkconfig.ABSENT_IS_N says which and why).
    assert sdkconfig.undeclared_symbols(harness.IDF, [harness.DSP / "Kconfig"], tmp_path) == sdkconfig.ABSENT_IS_N
