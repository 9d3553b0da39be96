"""Issue 12's reliability figures for the board link, measured on the virtual board (host truth, not chip truth).

1. Malformed input: N malformed lines (random bytes, plain text, broken JSON, commands without an id or with
   wrong arguments, over-long lines) written to a running virtual board. Afterwards it must answer `ping`, its
   `bad_lines` must equal what the C and the Python decoders count on the same bytes, and its memory (VmRSS)
   must stay flat.
2. Reconnects: `yamflash monitor --port sim --log` while the virtual board is killed (SIGKILL) and restarted on
   a new pty R times, then once more behind a by-id style link that is re-pointed to the new pty (a USB board
   re-enumerating under another name). Counts events lost and duplicated in the JSONL (timing events' patch
   numbers per board session) and checks the monitor said "reconnected" and re-asked `info` each time.
3. The JSONL under `kill -9`: the monitor is killed K times while it writes; every line of the log must be
   valid JSON.

    python scripts/reliability.py [--lines 10000] [--restarts 3] [--kills 12] [--json build/reliability.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def make_flash(root: Path) -> Path:
    from simboard import model_dir, sim_manifest
    from yamflash.board import flash as fl

    f = root / "sim" / "flash.bin"
    fl.flash_sim(fl.load_plan(sim_manifest(model_dir(root / "model"))), f)
    return f


def malformed(flash: Path, n: int) -> dict[str, Any]:
    from test_reliability import expected_bad_lines, garbage
    from yamflash.board import ports
    from yamflash.board.client import Board
    from yamflash.board.sim.process import spawn

    payload = garbage(n, seed=12)
    want_py, want_c = expected_bad_lines(payload)
    sim = spawn(flash, stats_period=0.5)
    b = Board(ports.open_serial(sim.pty), name="sim")
    try:
        assert b.ping()
        time.sleep(1.0)
        rss0 = rss_kb(sim.proc.pid)
        t0 = time.monotonic()
        for k in range(0, len(payload), 1 << 16):
            b.write_raw(payload[k : k + (1 << 16)])
        alive = b.ping(timeout=120)
        dt = time.monotonic() - t0
        stats = b.wait_event(lambda e: e.get("t") == "stats", 10, since=b.mark())
        rss1 = rss_kb(sim.proc.pid)
    finally:
        b.close()
        sim.stop()
    return {"lines": n, "bytes": len(payload), "seconds": round(dt, 1), "answers_ping": alive,
            "bad_lines_board": stats["bad_lines"], "bad_lines_python": want_py, "bad_lines_c": want_c,
            "exact": stats["bad_lines"] == want_py == want_c, "rss_kb_before": rss0, "rss_kb_after": rss1}


def _records(path: Path) -> tuple[list[dict[str, Any]], int]:
    recs, broken = [], 0
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                recs.append(json.loads(line))
            except ValueError:
                broken += 1
    return recs, broken


def _wait(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise SystemExit(f"reliability: timed out waiting for {what}")


def reconnects(flash: Path, restarts: int, tmp: Path) -> dict[str, Any]:
    from simboard import write_wav
    from test_reliability import _timing_after_reconnect, check_stream
    from yamflash.board.sim.process import spawn

    wav = write_wav(tmp / "mic.wav", 3.0)
    log = tmp / "reconnect.jsonl"
    link = tmp / "usb-Espressif_USB_JTAG_serial_debug_unit_F4:12-if00"  # stands in for /dev/serial/by-id/...
    boards = [spawn(flash, mic=wav, loop=True, stats_period=0.5)]
    link.symlink_to(boards[0].pty)
    # first the virtual board found through sim.json, then the by-id style link
    mon = subprocess.Popen([sys.executable, "-m", "yamflash", "monitor", "--port", "sim", "--sim-flash", str(flash),
                            "--json", "--no-reset", "--log", str(log)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    n = 0
    try:
        _wait(lambda: _timing_after_reconnect(_records(log)[0], 0), 30, "first events")
        for _ in range(restarts):
            boards.append(spawn(flash, mic=wav, loop=True, stats_period=0.5))
            boards[-2].proc.kill()
            boards[-2].proc.wait(5)
            n += 1
            _wait(lambda k=n: _timing_after_reconnect(_records(log)[0], k), 30, f"reconnect {n}")
    finally:
        mon.send_signal(signal.SIGINT)
        mon.communicate(timeout=20)
    recs, broken = _records(log)
    by_sim = check_stream(recs) | {"broken_lines": broken,
                                   "infos": sum(r["t"] == "reply" and r.get("cmd") == "info" for r in recs)}
    # a board that comes back under another device name, followed by its by-id link
    log2 = tmp / "reenumerate.jsonl"
    os.replace(_relink(link, boards[-1].pty), link)
    mon = subprocess.Popen([sys.executable, "-m", "yamflash", "monitor", "--port", str(link), "--json", "--no-reset",
                            "--log", str(log2)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: _timing_after_reconnect(_records(log2)[0], 0), 30, "events through the link")
        boards.append(spawn(flash, mic=wav, loop=True, stats_period=0.5))
        boards[-2].proc.kill()
        boards[-2].proc.wait(5)
        os.replace(_relink(link, boards[-1].pty), link)  # udev re-points the by-id link
        _wait(lambda: _timing_after_reconnect(_records(log2)[0], 1), 30, "reconnect through the link")
    finally:
        mon.send_signal(signal.SIGINT)
        mon.communicate(timeout=20)
        for b in boards:
            b.stop()
    recs2, broken2 = _records(log2)
    by_link = check_stream(recs2) | {"broken_lines": broken2,
                                     "infos": sum(r["t"] == "reply" and r.get("cmd") == "info" for r in recs2)}
    return {"sim_restarts": restarts, "by_sim_json": by_sim, "by_id_link": by_link,
            "lost": by_sim["lost"] + by_link["lost"], "duplicated": by_sim["duplicated"] + by_link["duplicated"]}


def _relink(link: Path, target: str) -> Path:
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    return tmp


def kills(flash: Path, k: int, tmp: Path) -> dict[str, Any]:
    from simboard import write_wav
    from yamflash.board.sim.process import spawn

    wav = write_wav(tmp / "mic2.wav", 3.0)
    log = tmp / "killed.jsonl"
    sim = spawn(flash, mic=wav, loop=True, fast=True, stats_period=0.2)
    try:
        for i in range(k):
            mon = subprocess.Popen([sys.executable, "-m", "yamflash", "monitor", "--port", "sim", "--sim-flash",
                                    str(flash), "--json", "--no-reset", "--log", str(log)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            before = len(_records(log)[0])
            _wait(lambda b=before: len(_records(log)[0]) > b + 20, 30, f"writes before kill {i + 1}")
            mon.kill()  # SIGKILL while it writes
            mon.wait(5)
    finally:
        sim.stop()
    recs, broken = _records(log)
    return {"kills": k, "records": len(recs), "broken_lines": broken}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=10_000)
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--json", default=str(ROOT / "build" / "reliability.json"))
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        flash = make_flash(tmp)
        r = {"malformed": malformed(flash, a.lines), "reconnects": reconnects(flash, a.restarts, tmp),
             "kill9": kills(flash, a.kills, tmp), "clock": "host (virtual board)"}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(r, indent=2) + "\n")
    m, c, k = r["malformed"], r["reconnects"], r["kill9"]
    print(f"malformed: {m['lines']:,} lines ({m['bytes'] / 1e6:.1f} MB) in {m['seconds']} s: answers ping "
          f"{m['answers_ping']}, bad_lines board {m['bad_lines_board']:,} / C {m['bad_lines_c']:,} / Python "
          f"{m['bad_lines_python']:,}, VmRSS {m['rss_kb_before']:,} -> {m['rss_kb_after']:,} KiB")
    print(f"reconnects: {c['sim_restarts']} restarts via sim.json + 1 re-enumeration via a by-id link: "
          f"{c['lost']} events lost, {c['duplicated']} duplicated; `info` replies "
          f"{c['by_sim_json']['infos'] + c['by_id_link']['infos']} over "
          f"{c['by_sim_json']['sessions'] + c['by_id_link']['sessions']} connections")
    print(f"kill -9: {k['kills']} kills, {k['records']:,} records, {k['broken_lines']} invalid JSONL lines")
    ok = (m["answers_ping"] and m["exact"] and c["lost"] == 0 and c["duplicated"] == 0 and k["broken_lines"] == 0
          and c["by_sim_json"]["infos"] >= c["sim_restarts"] and c["by_id_link"]["infos"] >= 1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
