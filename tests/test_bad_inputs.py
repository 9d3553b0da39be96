"""Bad input to every command: one `yamflash: error:` line, no traceback, a non-zero exit, nothing changed.

One table of cases (issue 12: corrupt and truncated models, nonsense model.json, unknown profiles and ports,
busy and vanished ports, non-audio files, read-only and full outputs, device nodes and FIFOs as outputs).
Each case runs the CLI in this process (``yamflash.cli.main``, stdout and stderr captured at the file
descriptors, so a spawned virtual board's output is seen too) under an alarm that turns a hang into a
failure, and checks afterwards that no file under its folder or the shared fixtures changed, no device
node was replaced and no child process (a virtual board) was left running.

Read-only and full file systems are real: small tmpfs mounts when this process may mount (root, as on
this machine); otherwise a chmod-0555 folder stands in for read-only (effective for non-root users) and the
full-disk cases skip, saying so; the staging tests at the end inject ENOSPC instead and run everywhere.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from simboard import model_dir, sim_manifest, tiny_sim, write_wav  # noqa: F401  (tiny_sim is a fixture)

TIMEOUT_S = 60  # per case: a hang is a failure, not a stuck suite


# ---- the table ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    argv: str  # shell-quoted, with {placeholders} filled from the environment below
    needle: str  # must appear in the one error line


def C(name: str, argv: str, needle: str) -> Case:  # noqa: N802  (a table row)
    return Case(name, argv, needle)


CASES = [
    # convert
    C("convert-weights-missing", "convert --weights {t}/nope.h5 --calib-dir {audio} --out {t}/o", "does not exist"),
    C("convert-weights-missing-no-calib", "convert --weights {t}/nope.h5 --out {t}/o", "--weights"),
    C("convert-weights-text", "convert --weights {txt_tflite} --synthetic-calibration --out {t}/o",
      "neither a Keras .h5 nor a .tflite"),
    C("convert-weights-random-h5", "convert --weights {rand_h5} --synthetic-calibration --out {t}/o",
      "neither a Keras .h5 nor a .tflite"),
    C("convert-weights-truncated", "convert --weights {cut_drq} --synthetic-calibration --out {t}/o", "damaged"),
    C("convert-calib-missing", "convert --weights {drq} --calib-dir {t}/nowhere --out {t}/o", "not a folder"),
    C("convert-calib-empty", "convert --weights {drq} --calib-dir {empty} --out {t}/o", "no audio files"),
    C("convert-calib-not-audio", "convert --weights {drq} --calib-dir {junk_dir} --out {t}/o", "cannot decode audio"),
    C("convert-calib-count-zero", "convert --weights {drq} --calib-count 0 --out {t}/o", "--calib-count"),
    C("convert-no-calibration", "convert --weights {drq} --out {t}/o", "--calib-dir"),
    C("convert-labels-not-a-map", "convert --weights {drq} --calib-dir {audio} --labels {junk} --out {t}/o",
      "class map"),
    C("convert-labels-fifo", "convert --weights {drq} --calib-dir {audio} --labels {fifo} --out {t}/o",
      "not a regular file"),
    C("convert-out-dev-full", "convert --weights {drq} --calib-dir {audio} --out {devfull}", "not a folder"),
    C("convert-out-dev-null-child", "convert --weights {drq} --calib-dir {audio} --out {devnull}/x", "not a folder"),
    C("convert-out-read-only", "convert --weights {drq} --calib-dir {audio} --out {ro}/model", "read-only"),
    C("convert-out-full", "convert --weights {drq} --calib-dir {audio} --out {full}/model", "free"),
    C("convert-out-model-is-fifo", "convert --weights {drq} --calib-dir {audio} --out {fifo_dir}", "FIFO"),
    # inspect
    C("inspect-missing", "inspect {t}/nope.tflite", "does not exist"),
    C("inspect-text", "inspect {txt_tflite}", "not a TFLite model"),
    C("inspect-truncated", "inspect {cut_tiny}", "damaged"),
    C("inspect-empty-file", "inspect {empty_file}", "TFLite"),
    C("inspect-folder", "inspect {empty}", "does not exist"),
    # gen
    C("gen-model-missing", "gen --model {t}/nope/model.json --firmware {fw}", "does not exist"),
    C("gen-model-json-not-json", "gen --model {mj_notjson} --firmware {fw}", "not a readable model.json"),
    C("gen-model-json-a-list", "gen --model {mj_list} --firmware {fw}", "schema 1"),
    C("gen-model-json-no-labels", "gen --model {mj_nolabels} --firmware {fw}", "'labels' is missing"),
    C("gen-model-json-arena-string", "gen --model {mj_arena_str} --firmware {fw}", "'arena_bytes' must be"),
    C("gen-model-json-sha-not-hex", "gen --model {mj_sha_bad} --firmware {fw}", "'model.sha256' must be"),
    C("gen-model-json-shape-int", "gen --model {mj_shape_int} --firmware {fw}", "'output.shape' must be"),
    C("gen-model-json-frontend-list", "gen --model {mj_frontend_list} --firmware {fw}", "'frontend' must be"),
    C("gen-model-json-ops-missing", "gen --model {mj_noops} --firmware {fw}", "'ops' is missing"),
    C("gen-model-file-missing", "gen --model {mj_nofile} --firmware {fw}", "is missing"),
    C("gen-model-file-mismatch", "gen --model {mj_mismatch} --firmware {fw}", "does not match"),
    C("gen-unknown-board", "gen --model {mj} --firmware {fw} --board esp32-c3", "esp32-c3"),
    C("gen-unknown-console", "gen --model {mj} --firmware {fw} --console jtag", "--console"),
    C("gen-not-firmware-folder", "gen --model {mj} --firmware {empty}", "not the firmware folder"),
    C("gen-firmware-is-file", "gen --model {mj} --firmware {junk}", "not a folder"),
    C("gen-firmware-read-only", "gen --model {mj2} --firmware {ro_fw} --board sim", "read-only"),
    C("gen-firmware-full", "gen --model {mj2} --firmware {tight_fw} --board sim", "No space left"),
    C("gen-model-json-fifo", "gen --model {fifo} --firmware {fw}", "not a regular file"),
    C("gen-model-json-dev-zero", "gen --model /dev/zero --firmware {fw}", "not a regular file"),
    C("gen-config-missing", "gen --model {mj} --firmware {fw} --config {t}/nope.toml", "does not exist"),
    C("gen-config-fifo", "gen --model {mj} --firmware {fw} --config {fifo}", "not a regular file"),
    C("gen-config-not-toml", "gen --model {mj} --firmware {fw} --config {junk}", "not valid TOML"),
    C("gen-watch-unknown", "gen --model {mj} --firmware {fw} --board sim --watch 'Baby cry'", "no class labelled"),
    C("gen-pin-malformed", "gen --model {mj} --firmware {fw} --pin din", "NAME=GPIO"),
    C("gen-threshold-2", "gen --model {mj} --firmware {fw} --board sim --threshold 2", "threshold"),
    # build
    C("build-not-generated", "build --firmware {fw} --out {t}/out", "gen"),
    C("build-out-dev-full", "build --firmware {gen_fw} --board sim --out {devfull}", "not a folder"),
    C("build-out-read-only", "build --firmware {gen_fw} --board sim --out {ro}/fw", "read-only"),
    C("build-out-full", "build --firmware {gen_fw} --board sim --out {full}/fw", "free"),
    C("build-unknown-tool", "build --firmware {gen_fw} --tool make", "--tool"),
    # flash
    C("flash-manifest-missing", "flash --port sim --manifest {t}/nope.json", "does not exist"),
    C("flash-manifest-not-json", "flash --port sim --manifest {junk}", "not a readable flash manifest"),
    C("flash-manifest-fifo", "flash --port sim --manifest {fifo}", "not a regular file"),
    C("flash-sim-flash-dev-full", "flash --port sim --manifest {sim_man} --sim-flash {devfull}", "character device"),
    C("flash-sim-flash-read-only", "flash --port sim --manifest {sim_man} --sim-flash {ro}/flash.bin", "read-only"),
    C("flash-sim-flash-full", "flash --port sim --manifest {sim_man} --sim-flash {full}/flash.bin", "free"),
    C("flash-sim-flash-folder", "flash --port sim --manifest {sim_man} --sim-flash {empty}", "folder"),
    C("flash-unknown-board", "flash --board nonsense", "does not exist"),
    # monitor
    C("monitor-port-vanished", "monitor --port /dev/ttyYF404 --json --no-reset --duration 3", "does not exist"),
    C("monitor-port-busy", "monitor --port {busy} --json --no-reset --duration 3", "busy"),
    C("monitor-log-dev-full", "monitor --port {busy} --json --log {devfull} --duration 3", "character device"),
    C("monitor-log-fifo", "monitor --port {busy} --json --log {fifo} --duration 3", "FIFO"),
    C("monitor-log-read-only", "monitor --port {busy} --json --log {ro}/ev.jsonl --duration 3", "read-only"),
    C("monitor-sim-log-unwritable", "monitor --port sim --sim-flash {sim_flash} --json --log {ro}/ev.jsonl "
      "--duration 3", "read-only"),
    C("monitor-sim-mic-not-audio", "monitor --port sim --sim-flash {sim_flash} --mic {junk} --json --duration 3",
      "cannot decode audio"),
    C("monitor-mic-without-sim", "monitor --port {busy} --mic {wav} --json --duration 3", "--port sim"),
    C("monitor-sim-no-flash", "monitor --port sim --sim-flash {t}/none.bin --json --duration 3", "no flash"),
    C("monitor-detect-unknown", "monitor --port {busy} --detect Zebra --model-json {mj} --json --duration 3",
      "not a label"),
    C("monitor-detect-bad-model-json", "monitor --port {busy} --detect Dog --model-json {mj_notjson} --json",
      "model.json"),
    C("monitor-reset-seq-bad", "monitor --port {pty} --reset-seq Q9 --json --duration 3", "--reset-seq"),
    # sim
    C("sim-flash-missing", "sim --flash {t}/none.bin", "does not exist"),
    C("sim-mic-missing", "sim --flash {sim_flash} --mic {t}/none.wav", "does not exist"),
    C("sim-mic-not-audio", "sim --flash {sim_flash} --mic {junk}", "cannot decode audio"),
    C("ports-unknown-option", "ports --chip esp32s3", "No such option"),
    C("sim-flash-read-only-folder", "sim --flash {ro_flash}", "read-only"),
    # validate
    C("validate-audio-missing", "validate --port sim --sim-flash {sim_flash} --audio {t}/none.wav", "does not exist"),
    C("validate-bad-gate", "validate --port sim --sim-flash {sim_flash} --audio {wav} --fail-under x=1",
      "SECTION.METRIC"),
    C("validate-out-dev-full", "validate --port sim --sim-flash {sim_flash} --audio {wav} --out {devfull}",
      "character device"),
    C("validate-out-stdout", "validate --port sim --sim-flash {sim_flash} --audio {wav} --out {stdout}",
      "device or a stream"),
    C("validate-out-read-only", "validate --port sim --sim-flash {sim_flash} --audio {wav} --out {ro}/r.json",
      "read-only"),
    C("validate-plots-is-file", "validate --port sim --sim-flash {sim_flash} --audio {wav} --plots {junk}",
      "not a folder"),
    C("validate-no-flash", "validate --port sim --sim-flash {t}/none.bin --audio {wav}", "no flash"),
    C("validate-port-vanished", "validate --port /dev/ttyYF404 --audio {wav}", "does not exist"),
    C("validate-port-busy", "validate --port {busy} --audio {wav}", "busy"),
    C("validate-audio-not-audio", "validate --port sim --sim-flash {live} --model-dir {live_model} --no-float "
      "--audio {junk_wav}", "cannot decode audio"),
    C("validate-nothing-compared", "validate --port sim --sim-flash {live} --model-dir {live_model} --no-float "
      "--audio {short} --out {t}/r.json", "nothing was compared"),
    C("validate-model-dir-missing", "validate --port sim --sim-flash {live} --model-dir {t}/nomodel --no-float "
      "--audio {wav}", "does not exist"),
    # bench
    C("bench-no-board", "bench", "--port"),
    C("bench-out-dev-full", "bench --port sim --sim-flash {sim_flash} --out {devfull}", "character device"),
    C("bench-out-dev-null", "bench --port sim --sim-flash {sim_flash} --out {devnull}", "character device"),
    C("bench-out-read-only", "bench --port sim --sim-flash {sim_flash} --out {ro}/b.json", "read-only"),
    C("bench-out-full", "bench --port sim --sim-flash {sim_flash} --out {full}/b.json", "free"),
    C("bench-out-folder", "bench --port sim --sim-flash {sim_flash} --out {empty}", "folder"),
    C("bench-baseline-missing", "bench --port sim --sim-flash {sim_flash} --baseline {t}/none.json", "does not exist"),
    C("bench-baseline-not-json", "bench --port sim --sim-flash {sim_flash} --baseline {junk}", "not readable JSON"),
    C("bench-baseline-fifo", "bench --board sim --sim-flash {sim_flash} --baseline {fifo}", "not a regular file"),
    C("bench-audio-missing", "bench --port sim --sim-flash {sim_flash} --audio {t}/none.wav", "does not exist"),
    C("bench-estimate-no-model", "bench --estimate --model-dir {t}/nomodel", "does not exist"),
    C("bench-port-busy", "bench --port {busy}", "busy"),
    C("bench-audio-not-audio", "bench --port sim --sim-flash {live} --audio {junk_wav} --seconds 1 --n 1 "
      "--warmup 0", "cannot decode audio"),
    # train / distill
    C("train-weights-missing", "train --weights {t}/nope.h5 --data {audio_classes} --out {t}/o", "does not exist"),
    C("train-no-data", "train --weights {drq} --out {t}/o", "exactly one of"),
    C("train-where-malformed", "train --weights {drq} --csv {junk} --where esc10 --out {t}/o", "COLUMN=VALUE"),
    C("train-out-dev-full", "train --weights {drq} --data {audio_classes} --out {devfull}", "not a folder"),
    C("train-out-read-only", "train --weights {drq} --data {audio_classes} --out {ro}/m", "read-only"),
    C("distill-out-read-only", "distill --weights {drq} --data {audio_classes} --out {ro}/m", "read-only"),
    C("distill-data-empty", "distill --weights {drq} --data {empty} --out {t}/o", "no clips"),
    C("distill-weights-text", "distill --weights {txt_tflite} --data {audio_classes} --out {t}/o",
      "neither a Keras .h5 nor a .tflite"),
    # the command line itself
    C("unknown-command", "flsah", "No such command"),
    C("unknown-option", "gen --colour red", "No such option"),
]


# ---- mounts: a read-only and a full file system -----------------------------------------------------------------
def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                       capture_output=True)
    return r.returncode == 0


def _remount_ro(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True, capture_output=True)


def _fill(where: Path, leave: int) -> None:
    """Fill a tmpfs until only ``leave`` bytes (page-rounded) are free."""
    with open(where / ".filler", "wb") as f:
        while True:
            st = os.statvfs(where)
            free = st.f_bavail * st.f_frsize
            if free <= leave:
                break
            try:
                f.write(b"\0" * min(1 << 20, free - leave))
                f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break


@dataclass
class Mounts:
    ro: Path
    full: Path | None
    tight: Path | None
    how: str


@pytest.fixture(scope="session")
def mounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounts]:
    base = tmp_path_factory.mktemp("mounts")
    ro, full, tight = base / "ro", base / "full", base / "tight"
    mounted: list[Path] = []
    try:
        if os.geteuid() == 0 and _mount_tmpfs(ro, "1m"):
            mounted.append(ro)
            _populate_ro(ro)
            _remount_ro(ro)
            for m, size in ((full, "256k"), (tight, "2m")):
                assert _mount_tmpfs(m, size)
                mounted.append(m)
            _fill(full, 0)
            how = "tmpfs mounts (read-only remount, 256 KiB filled, 2 MiB nearly filled)"
            mt = Mounts(ro, full, tight, how)
        else:  # not root: permission bits do stop this user; no full file system without a mount
            ro.mkdir()
            _populate_ro(ro)
            ro.chmod(0o555)
            mt = Mounts(ro, None, None, "chmod-0555 folder (no mount permission): full-disk cases skipped")
        yield mt
    finally:
        for p in reversed(mounted):
            subprocess.run(["umount", "-l", str(p)], capture_output=True)
        if not mounted and ro.exists():
            ro.chmod(0o755)


def _populate_ro(ro: Path) -> None:
    """What the read-only file system holds before it turns read-only: a generated firmware and a flash file."""
    from yamflash.target import gen

    mdir = model_dir(ro.parent / "ro-model")
    fw = ro / "fw"
    (fw / "main").mkdir(parents=True)
    gen.generate(mdir / "model.json", gen.GenConfig(profile="sim"), fw)
    (ro / "flash.bin").write_bytes(b"\xff" * 4096)  # `sim` refuses before it reads it: sim.json cannot go here


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory, mounts: Mounts) -> dict[str, str | None]:
    """Inputs every case may read (never write): the tiny model, its sim flash, a generated firmware."""
    from yamflash.board import flash as fl
    from yamflash.target import gen

    root = tmp_path_factory.mktemp("shared")
    mdir = model_dir(root / "model")
    man = sim_manifest(mdir)
    flash_file = root / "sim" / "flash.bin"
    fl.flash_sim(fl.load_plan(man), flash_file)
    gen_fw = root / "gen-fw"
    (gen_fw / "main").mkdir(parents=True)
    gen.generate(mdir / "model.json", gen.GenConfig(profile="sim"), gen_fw)
    # a second model (other labels) whose generation differs in every file
    mdir2 = model_dir(root / "model2", classes=12)
    audio = root / "audio"
    audio.mkdir()
    write_wav(audio / "a.wav", 1.5)
    classes = root / "classes"
    for c in ("dog", "rain"):
        (classes / c).mkdir(parents=True)
        for i in range(3):
            write_wav(classes / c / f"{i}.wav", 1.2, seed=10 * len(c) + i)
    tight_fw = None
    if mounts.tight is not None:
        tight_fw = mounts.tight / "fw"
        if not tight_fw.exists():
            (tight_fw / "main").mkdir(parents=True)
            gen.generate(mdir / "model.json", gen.GenConfig(profile="sim"), tight_fw)
            _fill(mounts.tight, 4096)  # room for the up-front check, not for a new generation
    data = Path(os.environ.get("YAMFLASH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    drq = data / "models" / "yamnet_keras_drq_logmel_out.tflite"
    return {
        "model": str(mdir), "mj": str(mdir / "model.json"), "mj2": str(mdir2 / "model.json"),
        "sim_man": str(man), "sim_flash": str(flash_file), "gen_fw": str(gen_fw), "audio": str(audio),
        "audio_classes": str(classes), "wav": str(audio / "a.wav"),
        "ro": str(mounts.ro), "ro_fw": str(mounts.ro / "fw"), "ro_flash": str(mounts.ro / "flash.bin"),
        "full": str(mounts.full) if mounts.full else None, "tight_fw": str(tight_fw) if tight_fw else None,
        "drq": str(drq) if drq.is_file() else None,
    }


# ---- per case: the folder it may not change, and what it refers to --------------------------------------------
def _bad_manifests(t: Path, mdir: Path) -> dict[str, str]:
    good = json.loads((mdir / "model.json").read_text())
    variants = {
        "mj_nolabels": lambda m: m.pop("labels"),
        "mj_arena_str": lambda m: m.update(arena_bytes="big"),
        "mj_sha_bad": lambda m: m["model"].update(sha256="xyz"),
        "mj_shape_int": lambda m: m["output"].update(shape=8),
        "mj_frontend_list": lambda m: m.update(frontend=[1, 2]),
        "mj_noops": lambda m: m.pop("ops"),
        "mj_mismatch": lambda m: m["model"].update(sha256="0" * 64),
    }
    out = {}
    for name, change in variants.items():
        d = t / name
        d.mkdir()
        shutil.copy(mdir / "model.tflite", d / "model.tflite")
        m = json.loads(json.dumps(good))
        change(m)
        (d / "model.json").write_text(json.dumps(m))
        out[name] = str(d / "model.json")
    for name, text in (("mj_notjson", "{not json"), ("mj_list", "[1, 2, 3]")):
        (t / name).mkdir()
        (t / name / "model.json").write_text(text)
        out[name] = str(t / name / "model.json")
    (t / "mj_nofile").mkdir()
    (t / "mj_nofile" / "model.json").write_text(json.dumps(good))
    out["mj_nofile"] = str(t / "mj_nofile" / "model.json")
    return out


@pytest.fixture
def env(tmp_path: Path, shared: dict[str, str | None], monkeypatch: pytest.MonkeyPatch):
    t = tmp_path / "w"
    t.mkdir()
    monkeypatch.chdir(t)
    (t / "junk.txt").write_text("not a model, not audio, not JSON, not TOML = [\n")
    (t / "junk.wav").write_text("RIFF? no: plain text in a .wav file\n")
    (t / "text.tflite").write_text("hello world, not a flatbuffer at all")
    (t / "rand.h5").write_bytes(os.urandom(1000))
    tiny = Path(shared["model"]) / "model.tflite"  # type: ignore[arg-type]
    (t / "cut_tiny.tflite").write_bytes(tiny.read_bytes()[:2000])
    (t / "empty.tflite").write_bytes(b"")
    (t / "empty").mkdir()
    (t / "junk_dir").mkdir()
    for name in ("a.wav", "b.wav"):
        (t / "junk_dir" / name).write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (t / "fw" / "main").mkdir(parents=True)
    os.mkfifo(t / "fifo")
    (t / "fifo_dir").mkdir()
    os.mkfifo(t / "fifo_dir" / "model.json")
    write_wav(t / "short.wav", 0.5)
    # Device nodes of our own (root): a command that replaces one shows up here, without breaking the
    # machine's /dev/full or /dev/null for everyone else (pre-fix code did replace them). Not root: the real
    # ones, which this user cannot replace anyway. /dev/stdout likewise: a link of our own to /proc/self/fd/1.
    nodes = {}
    for name, minor in (("devfull", 7), ("devnull", 3)):
        try:
            os.mknod(t / name, stat.S_IFCHR | 0o666, os.makedev(1, minor))
            nodes[name] = str(t / name)
        except PermissionError:
            nodes[name] = "/dev/" + name[3:]
    (t / "stdout").symlink_to("/proc/self/fd/1")
    e: dict[str, str | None] = dict(shared)
    e.update(t=str(t), junk=str(t / "junk.txt"), junk_wav=str(t / "junk.wav"), txt_tflite=str(t / "text.tflite"),
             rand_h5=str(t / "rand.h5"), cut_tiny=str(t / "cut_tiny.tflite"), empty_file=str(t / "empty.tflite"),
             empty=str(t / "empty"), junk_dir=str(t / "junk_dir"), fw=str(t / "fw"), fifo=str(t / "fifo"),
             fifo_dir=str(t / "fifo_dir"), short=str(t / "short.wav"), stdout=str(t / "stdout"), **nodes)
    e.update(_bad_manifests(t, Path(shared["model"])))  # type: ignore[arg-type]
    if shared["drq"]:
        cut = t / "cut_drq.tflite"
        cut.write_bytes(Path(shared["drq"]).read_bytes()[:200_000])
        e["cut_drq"] = str(cut)
    else:
        e["cut_drq"] = None
    return e


def _snapshot(*roots: str | None) -> dict[str, tuple]:
    """Every entry under the roots: kind, and for files size + sha256 (the mtime may not matter, content does)."""
    out: dict[str, tuple] = {}
    for root in roots:
        if not root or not Path(root).exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                st = p.lstat()
                if stat.S_ISREG(st.st_mode):
                    out[str(p)] = ("file", st.st_size, hashlib.sha256(p.read_bytes()).hexdigest())
                else:
                    out[str(p)] = (stat.S_IFMT(st.st_mode),)
    return out


def _children() -> set[int]:
    me, kids = os.getpid(), set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me and fields[0] != "Z":
                kids.add(int(d.name))
    return kids


class _Hang(Exception):
    pass


def run_cli(argv: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int | None, str, BaseException | None]:
    """(exit code, stderr + stdout, the exception that escaped main or None), with an alarm against hangs."""
    from yamflash.cli import main

    def alarm(*_: object) -> None:
        raise _Hang(f"no answer within {TIMEOUT_S} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(TIMEOUT_S)
    rc: int | None = None
    escaped: BaseException | None = None
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # noqa: BLE001  (anything escaping main is a traceback for the user)
        escaped = exc
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    out = capfd.readouterr()
    return rc, out.err + out.out, escaped


@pytest.fixture
def busy_pty():
    """A pseudo-terminal whose slave another program (this test) holds with an exclusive lock."""
    import serial

    master, slave = os.openpty()
    path = os.ttyname(slave)
    holder = serial.Serial(path, exclusive=True, timeout=0.1)
    yield path
    holder.close()
    os.close(master)
    os.close(slave)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, env: dict[str, str | None], request: pytest.FixtureRequest,
                   capfd: pytest.CaptureFixture[str]) -> None:
    keys = {k for k in env} | {"busy", "pty", "live", "live_model"}
    used = {k for k in keys if "{" + k + "}" in case.argv}
    if "busy" in used or "pty" in used:
        env["busy"] = env["pty"] = request.getfixturevalue("busy_pty")
    if "live" in used or "live_model" in used:
        sim = request.getfixturevalue("tiny_sim")
        env["live"], env["live_model"] = str(sim.flash), str(sim.model_dir)
    missing = sorted(k for k in used if env.get(k) is None)
    if missing:
        why = {"drq": "the shared YAMNet model (../shared/data) is absent",
               "full": "no tmpfs mount permission here, so no full file system",
               "tight_fw": "no tmpfs mount permission here, so no full file system",
               "cut_drq": "the shared YAMNet model (../shared/data) is absent"}
        pytest.skip("; ".join(why.get(k, k) for k in missing))
    argv = [a.format(**env) for a in shlex.split(case.argv)]
    watched = [env["t"], env["ro"], env["full"], env["tight_fw"], env["model"], env["gen_fw"], env["sim_flash"],
               str(Path(env["sim_man"]).parent)]  # type: ignore[arg-type]
    before, kids = _snapshot(*watched), _children()
    capfd.readouterr()
    rc, text, escaped = run_cli(argv, capfd)
    assert escaped is None, f"{type(escaped).__name__} escaped the CLI: {escaped}\n{text}"
    assert "Traceback" not in text, text
    assert rc not in (0, None), f"exit {rc} for bad input\n{text}"
    errors = [ln for ln in text.splitlines() if ln.startswith("yamflash: error:")]
    assert len(errors) == 1, text
    assert case.needle in errors[0], errors[0]
    assert _snapshot(*watched) == before, "files changed"
    for dev in ("/dev/full", "/dev/null"):
        assert stat.S_ISCHR(os.stat(dev).st_mode), f"{dev} is no longer a device"
    left = _children() - kids
    assert not left, f"processes left running: {left}"


def test_the_table_covers_every_command():
    from yamflash.cli import cli

    covered = {c.argv.split()[0] for c in CASES}
    assert set(cli.commands) <= covered, set(cli.commands) - covered
    assert len(CASES) >= 59


# ---- staging: a multi-file output that fails leaves the previous set --------------------------------------------
def _inject_enospc(monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    """The (after+1)-th staged file finds the disk full: ENOSPC from its fsync, as a full tmpfs gives on write."""
    from yamflash import outputs

    real, n = os.fsync, {"i": 0}

    def fsync(fd: int) -> None:
        n["i"] += 1
        if n["i"] > after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(outputs.os, "fsync", fsync)


def test_gen_on_a_full_disk_leaves_the_previous_generation(tmp_path, shared, monkeypatch, capfd):
    fw = tmp_path / "fw"
    shutil.copytree(shared["gen_fw"], fw)  # type: ignore[arg-type]
    before = _snapshot(str(fw))
    _inject_enospc(monkeypatch, after=3)
    rc, text, escaped = run_cli(["gen", "--model", shared["mj2"], "--firmware", str(fw), "--board", "sim"], capfd)
    assert escaped is None and rc == 2, text
    assert "No space left" in text and "Nothing was replaced" in text
    assert _snapshot(str(fw)) == before  # old set whole, no temporary files left behind


def test_build_on_a_full_disk_leaves_the_previous_images(tmp_path, shared, monkeypatch, capfd):
    from yamflash.target import build, gen

    fw = tmp_path / "fw"
    shutil.copytree(shared["gen_fw"], fw)  # type: ignore[arg-type]
    out = tmp_path / "out"
    build.build(fw, out, profile="sim")
    gen.generate(shared["mj2"], gen.GenConfig(profile="sim"), fw)  # type: ignore[arg-type]
    before = _snapshot(str(out))
    _inject_enospc(monkeypatch, after=2)
    rc, text, escaped = run_cli(["build", "--firmware", str(fw), "--out", str(out), "--board", "sim"], capfd)
    assert escaped is None and rc == 2 and "No space left" in text, text
    assert _snapshot(str(out)) == before


def test_a_failed_swap_puts_the_old_files_back(tmp_path, monkeypatch):
    from yamflash import outputs
    from yamflash.errors import UserError

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.write_text("old a")
    b.write_text("old b")
    real, n = os.replace, {"i": 0}

    def replace(src, dst):
        n["i"] += 1
        if n["i"] == 3:  # the third rename fails (EIO): a and b were already swapped in
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(dst))
        real(src, dst)

    monkeypatch.setattr(outputs.os, "replace", replace)
    with pytest.raises(UserError, match="put back"):
        outputs.write_all({a: "new a", b: "new b", c: "new c"})
    monkeypatch.undo()
    assert a.read_text() == "old a" and b.read_text() == "old b" and not c.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_real_full_disk_mid_write(mounts, capfd):
    """Not the up-front check: a file system with a little room left, and an output larger than that."""
    if mounts.tight is None:
        pytest.skip(mounts.how)
    from yamflash import outputs
    from yamflash.errors import UserError

    target = mounts.tight / "big.bin"
    with pytest.raises(UserError, match="No space left"):
        outputs.atomic_write(target, b"x" * (1 << 20))
    assert not target.exists() and not [p for p in mounts.tight.iterdir() if p.name.startswith(".big")]


def test_atomic_write_keeps_mode_and_follows_links(tmp_path):
    from yamflash import outputs

    real = tmp_path / "real.json"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    outputs.atomic_write(link, "new")
    assert link.is_symlink() and real.read_text() == "new" and stat.S_IMODE(real.stat().st_mode) == 0o640
