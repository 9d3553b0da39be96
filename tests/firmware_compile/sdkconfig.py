"""sdkconfig.h from a generated sdkconfig.defaults, the way an ESP-IDF v5.5 build makes it.

ESP-IDF runs kconfgen (PyPI: esp-idf-kconfig) over the root Kconfig, which sources every component's
Kconfig and Kconfig.projbuild; sdkconfig.defaults seeds it, and the sdkconfig.rename files add the
deprecated aliases. ../shared/sdk holds the component Kconfig files but not ESP-IDF's root Kconfig, so
Kconfig.root (beside this file) declares the root-level symbols, each naming its source, and sources the
real component files through the same two environment variables ESP-IDF's kconfig.cmake sets.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT_KCONFIG = HERE / "Kconfig.root"
TARGET = "esp32s3"
IDF_VERSION = "5.5.0"

# Referenced by the sdk's Kconfig files but declared nowhere in it: symbols of other targets and SoCs
# (n on the ESP32-S3) and of components ../shared/sdk leaves out, whose upstream default is n as well
# (esp-idf v5.5: app_trace, bootloader, bt, espcoredump, esp_gdbstub's runtime option, esp_tee, lwip,
# nvs_sec_provider, tinyusb, the old esp32/esp32s2 trace and coredump names). A new name here means the
# sdk gained a reference this gate does not know the value of: check it and add it to the right group.
ABSENT_IS_N = {
    # other chips, their SoC capabilities and ROM features
    "IDF_TARGET_ESP32", "IDF_TARGET_ESP32C2", "IDF_TARGET_ESP32C3", "IDF_TARGET_ESP32C5", "IDF_TARGET_ESP32C6",
    "IDF_TARGET_ESP32C61", "IDF_TARGET_ESP32H2", "IDF_TARGET_ESP32H21", "IDF_TARGET_ESP32H4", "IDF_TARGET_ESP32P4",
    "IDF_TARGET_ESP32S2", "IDF_TARGET_ESP32S31", "ESP32P4_REV_MIN_FULL", "ESP32S2_TRAX", "ESP32_TRAX",
    "ESP_LDO_RESERVE_PSRAM", "ESP_ROM_HAS_HAL_SYSTIMER", "ESP_ROM_HAS_HEAP_TLSF",
    "ESP_ROM_HAS_SUBOPTIMAL_NEWLIB_ON_MISALIGNED_MEMORY", "ESP_SLEEP_SYSTIMER_STALL_WORKAROUND",
    "ESPTOOLPY_FLASHFREQ_16M", "ESPTOOLPY_FLASHFREQ_24M", "ESPTOOLPY_FLASHFREQ_26M", "ESPTOOLPY_FLASHFREQ_30M",
    "ESPTOOLPY_FLASHFREQ_32M", "ESPTOOLPY_FLASHFREQ_48M", "ESPTOOLPY_FLASHFREQ_60M", "ESPTOOLPY_FLASHFREQ_64M",
    "SOC_ASSIST_DEBUG_SUPPORTED", "SOC_CPU_IDRAM_SPLIT_USING_PMP", "SOC_CPU_IN_TOP_DOMAIN", "SOC_DAC_SUPPORTED",
    "SOC_DEBUG_HAVE_OCD_STUB_BINS", "SOC_DMA2D_SUPPORTED", "SOC_DW_GDMA_SUPPORTED", "SOC_ETM_SUPPORTED",
    "SOC_LP_CORE_SUPPORTED", "SOC_MMU_PAGE_SIZE_8KB_SUPPORTED", "SOC_MMU_PAGE_SIZE_CONFIGURABLE",
    "SOC_PAU_SUPPORTED", "SOC_PM_SUPPORT_TOP_PD", "SOC_USB_SERIAL_JTAG_SUPPORT_LIGHT_SLEEP", "XTAL_FREQ_26",
    # components outside ../shared/sdk, default n upstream
    "APPTRACE_ENABLE", "BOOTLOADER_FLASH_DC_AWARE", "BTDM_CTRL_HLI", "ESP32_COREDUMP_ENABLE_TO_FLASH",
    "ESP_COREDUMP_DATA_FORMAT_ELF", "ESP_COREDUMP_ENABLE", "ESP_COREDUMP_ENABLE_TO_FLASH",
    "ESP_SYSTEM_GDBSTUB_RUNTIME", "LWIP_USE_ONLY_LWIP_SELECT", "NVS_SEC_KEY_PROTECT_USING_FLASH_ENC",
    "SECURE_ENABLE_TEE", "TINY_USB",
    # names that only appear in `depends on` of dead options (old spellings, documentation builds)
    "APP_COMPATIBLE_PRE_V3_1_BOOTLOADERS", "COMPILER_OPTIMIZATION_LEVEL_DEBUG", "LOG_MAXIMUM_LEVEL_NONE",
    "__DOXYGEN__",
}


def _kconfig_lists(idf: Path, extra: list[Path], work: Path) -> dict[str, str]:
    """The environment ESP-IDF's kconfig.cmake gives kconfgen: one file sourcing each component Kconfig,
    one sourcing each Kconfig.projbuild (sorted, like its file(GLOB)), and the sdkconfig.rename files."""
    comps = sorted(p for p in (idf / "components").iterdir() if p.is_dir())
    kconfigs = [c / "Kconfig" for c in comps if (c / "Kconfig").is_file()] + [k for k in extra if k.is_file()]
    projbuild = [c / "Kconfig.projbuild" for c in comps if (c / "Kconfig.projbuild").is_file()]
    renames = [r for c in comps for r in (c / "sdkconfig.rename", c / f"sdkconfig.rename.{TARGET}") if r.is_file()]
    work.mkdir(parents=True, exist_ok=True)
    (work / "kconfigs.in").write_text("".join(f'source "{k}"\n' for k in kconfigs))
    (work / "kconfigs_projbuild.in").write_text("".join(f'source "{k}"\n' for k in projbuild))
    return {
        "IDF_PATH": str(idf), "IDF_TARGET": TARGET, "IDF_TOOLCHAIN": "gcc", "IDF_INIT_VERSION": IDF_VERSION,
        "COMPONENT_KCONFIGS_SOURCE_FILE": str(work / "kconfigs.in"),
        "COMPONENT_KCONFIGS_PROJBUILD_SOURCE_FILE": str(work / "kconfigs_projbuild.in"),
        "COMPONENT_SDKCONFIG_RENAMES": " ".join(str(r) for r in renames),
    }


def generate(defaults: str, idf: Path, extra_kconfigs: list[Path], work: Path) -> Path:
    """Run kconfgen on ``defaults`` (sdkconfig.defaults text); returns the folder holding sdkconfig.h and
    sdkconfig. The folder is named by a hash of the defaults, so variants that share them share it."""
    out = work / ("sdkconfig-" + hashlib.sha256(defaults.encode()).hexdigest()[:12])
    if (out / "sdkconfig.h").is_file():
        return out
    env = _kconfig_lists(idf, extra_kconfigs, out)
    (out / "sdkconfig.defaults").write_text(defaults)
    args = [sys.executable, "-m", "kconfgen", "--kconfig", str(ROOT_KCONFIG),
            "--defaults", str(out / "sdkconfig.defaults"), "--config", str(out / "sdkconfig"),
            "--output", "header", str(out / "sdkconfig.h"), "--output", "config", str(out / "sdkconfig")]
    args += [a for k, v in env.items() for a in ("--env", f"{k}={v}")]
    p = subprocess.run(args, capture_output=True, text=True, env=os.environ | env, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"kconfgen failed:\n{p.stdout}\n{p.stderr}")
    # kconfgen warns about every defaults line that names an unknown symbol or is overridden: such a
    # line would be silently dropped by the real build too, so it is an error here.
    bad = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith("warning:")]
    if bad:
        raise RuntimeError("kconfgen warnings on sdkconfig.defaults:\n" + "\n".join(bad))
    return out


def undeclared_symbols(idf: Path, extra_kconfigs: list[Path], work: Path) -> set[str]:
    """Names the Kconfig tree refers to without declaring (numbers excluded)."""
    import kconfiglib

    env = _kconfig_lists(idf, extra_kconfigs, work)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        kconf = kconfiglib.Kconfig(str(ROOT_KCONFIG), warn=False)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    names = {s.name for s in kconf.syms.values() if not s.nodes}
    return {n for n in names if not n.lstrip("-").isdigit() and not n.lower().startswith("0x")}


def read_config(sdkconfig: Path) -> dict[str, str]:
    """CONFIG_ name -> value of a written sdkconfig (unset options left out)."""
    out = {}
    for line in sdkconfig.read_text().splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, v = line.split("=", 1)
            out[k[len("CONFIG_"):]] = v
    return out
