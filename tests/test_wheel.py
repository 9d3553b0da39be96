"""The installable product: the built wheel, installed (not editable) into a fresh venv outside the checkout,
can `gen`, run the virtual board (which compiles the C core shipped inside the wheel) and the HIL plugin.

The venv sees the project venv's third-party packages through a .pth line, which only adds that folder to
sys.path: its own .pth files (the editable yamflash's among them) are not run, so `yamflash` resolves to the
wheel's copy, and the test checks that it does. Everything runs offline (no index, no build isolation) in a
temporary folder, so a missing template, C file or spec in the wheel fails here, not on a user's machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from simboard import model_dir

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "host", "firmware/components/yf_core")  # what the wheel is built from

HIL_TEST = '''
import json, os
from pathlib import Path

import yamflash


def test_installed_plugin_flashes_and_talks(board):
    assert Path(yamflash.__file__).is_relative_to(Path(os.environ["WHEEL_VENV"]))  # the wheel's, not the checkout's
    info = board.info()
    assert info["model_sha256"] == json.loads(Path(os.environ["MODEL_JSON"]).read_text())["model"]["sha256"]
    assert info["core"] == "yf_core"  # the firmware's C, compiled from the wheel's copy
    assert board.command("ping")["ok"]
'''


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def _build_wheel(tmp: Path, env: dict[str, str]) -> Path:
    """`pip wheel` of a copy of the sources (the checkout gets no build/ or egg-info from it), offline."""
    src = tmp / "src"
    for rel in SOURCES:
        a, b = ROOT / rel, src / rel
        b.parent.mkdir(parents=True, exist_ok=True)
        if a.is_dir():
            shutil.copytree(a, b, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(a, b)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(tmp / "dist"), str(src)], tmp, env)
    (wheel,) = (tmp / "dist").glob("yamflash-*.whl")
    return wheel


def _fresh_venv(tmp: Path, wheel: Path, env: dict[str, str]) -> Path:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env).strip()
    # numpy, click, tflite-micro...: the project venv's, by path only (its .pth files do not run from here)
    Path(purelib, "_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
         tmp, env)
    return venv


def test_wheel_installs_and_runs_gen_sim_and_hil(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "ESPPORT"))}
    env |= {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1",
            # the virtual board compiles yf_core from the wheel's sources, not from a library built earlier
            "YAMFLASH_NATIVE_DIR": str(tmp_path / "native")}
    wheel = _build_wheel(tmp_path, env)
    names = set(zipfile.ZipFile(wheel).namelist())
    # every file the package reads besides its modules (templates, chip_host, the protocol spec, ...) and the C
    # core behind the yf_core link ships, so a new data file without a package-data pattern fails here
    pkg = tmp_path / "src" / "host" / "yamflash"
    core = pkg / "target" / "yf_core"
    data = [p for p in pkg.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    data += [*core.glob("src/*.c"), *core.glob("include/*.h"), core / "sources.mk"]
    assert len(data) > 20
    missing = sorted(str(p.relative_to(pkg.parent)) for p in data if str(p.relative_to(pkg.parent)) not in names)
    assert missing == [], f"not in {wheel.name}: {missing}"

    venv = _fresh_venv(tmp_path, wheel, env)
    env["WHEEL_VENV"] = str(venv)
    py, yf = str(venv / "bin" / "python"), str(venv / "bin" / "yamflash")
    work = tmp_path / "work"  # outside the checkout: nothing can be found through the sources
    (work / "fw" / "main").mkdir(parents=True)
    where = _run([py, "-c", "import yamflash; print(yamflash.__file__)"], work, env).strip()
    assert Path(where).is_relative_to(venv), f"yamflash comes from {where}, not the wheel"

    model = model_dir(tmp_path / "model")  # a tiny model with YAMNet's interface (tests/simboard.py): no TensorFlow
    model_json = model / "model.json"
    out = _run([yf, "gen", "--model", str(model_json), "--board", "sim", "--firmware", "fw"], work, env)
    assert "file(s) written" in out
    params = (work / "fw" / "main" / "generated" / "yf_model_params.h").read_text()
    assert json.loads(model_json.read_text())["model"]["sha256"] in params
    _run([yf, "build", "--board", "sim", "--firmware", "fw", "--out", "out"], work, env)
    _run([yf, "flash", "--board", "sim", "--port", "sim", "--manifest", "out/sim/flash.json",
          "--sim-flash", "sim/flash.bin"], work, env)

    # the virtual board as its own process: its hello on the pty names the flashed model and the C core
    hello = _run([py, "-c", (
        "import json\n"
        "from yamflash.board.sim.process import spawn\n"
        "from yamflash.board import ports\n"
        "from yamflash.board.client import Board\n"
        "p = spawn('sim/flash.bin')\n"
        "try:\n"
        "    b = Board(ports.open_serial(p.pty), name='sim')\n"
        "    print(json.dumps(b.reset(timeout=60)))\n"
        "    b.close()\n"
        "finally:\n"
        "    p.stop()\n")], work, env, timeout=120)
    h = json.loads(hello.strip().splitlines()[-1])
    assert h["model_sha256"] == hashlib.sha256((model / "model.tflite").read_bytes()).hexdigest()
    assert h.get("core") == "yf_core", h
    assert any((tmp_path / "native").rglob("libyf_core.so")), "the C core was not compiled from the wheel"

    # the HIL plugin, registered by the wheel's pytest11 entry point, flashes the build and hands out a board
    (work / "test_hil_installed.py").write_text(HIL_TEST)
    env["MODEL_JSON"] = str(model_json)
    _run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_hil_installed.py", "--port", "sim",
          "--board-manifest", "out/sim/flash.json"], work, env)
