"""`make fuzz` / `make test-fuzz`: fuzz yf_core's protocol decoders and compare them with Python's, for a bounded time.

1. tests/fuzz/fuzz_proto.c under libFuzzer with AddressSanitizer and UndefinedBehaviorSanitizer (clang), or,
   where clang or its libFuzzer runtime is missing, under gcc's sanitizers with tests/fuzz/standalone_main.c
   (the corpus replayed, then random mutations; no coverage guidance). Seeds: tests/fuzz/corpus; what
   libFuzzer learns is kept in build/fuzz/corpus for the next run.
2. Line coverage of yf_proto.c by the corpus (gcc --coverage, gcov), for the record.
3. tests/fuzz/differential.py: C vs Python on generated and mutated inputs.

Any crash, sanitizer report, broken harness check or disagreement fails (exit 1); a failing input is left in
build/fuzz/artifacts/ or build/fuzz/disagreements/ with the command that replays it. The figures go to
build/fuzz/report.json.

    python tests/fuzz/run.py --seconds 30 [--engine auto|libfuzzer|gcc] [--only c|diff]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "tests" / "fuzz"
CORE = ROOT / "firmware" / "components" / "yf_core"
OUT = ROOT / "build" / "fuzz"
SEEDS = FUZZ / "corpus"
GROWN = OUT / "corpus"
ARTIFACTS = OUT / "artifacts"
SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
WARN = ["-std=c99", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror", "-g"]


def core_sources(core: Path = CORE) -> list[str]:
    return [str(p) for p in sorted((core / "src").glob("*.c"))]


def sh(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, text=True, capture_output=True, **kw)


def libfuzzer_cc() -> str | None:
    """A clang that links -fsanitize=fuzzer here (the runtime is a separate package on some systems)."""
    for cc in (os.environ.get("FUZZ_CC"), "clang", "clang-18", "clang-17", "clang-16", "clang-15", "clang-14"):
        if not cc or not shutil.which(cc):
            continue
        OUT.mkdir(parents=True, exist_ok=True)
        probe = OUT / "probe.c"
        probe.write_text("#include <stddef.h>\n#include <stdint.h>\n"
                         "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n")
        if sh([cc, "-fsanitize=fuzzer", str(probe), "-o", str(OUT / "probe")]).returncode == 0:
            return cc
    return None


def build(engine: str, core: Path = CORE, out: Path = OUT) -> Path:
    """The fuzzer binary for ``engine`` ("libfuzzer" or "gcc"); UserError-free: a build failure is a failure."""
    out.mkdir(parents=True, exist_ok=True)
    inc = ["-I", str(core / "include")]
    if engine == "libfuzzer":
        cc = libfuzzer_cc()
        assert cc, "no clang with libFuzzer"
        exe = out / "fuzz_proto_libfuzzer"
        cmd = [cc, *WARN, "-O1", "-fsanitize=fuzzer", *SAN, *inc, *core_sources(core), str(FUZZ / "fuzz_proto.c"),
               "-o", str(exe), "-lm"]
    else:
        cc = os.environ.get("CC") or "gcc"
        exe = out / "fuzz_proto_gcc"
        cmd = [cc, *WARN, "-O1", *SAN, *inc, *core_sources(core), str(FUZZ / "fuzz_proto.c"),
               str(FUZZ / "standalone_main.c"), "-o", str(exe), "-lm"]
    r = sh(cmd)
    if r.returncode != 0:
        raise SystemExit(f"fuzz: building the harness failed:\n{' '.join(cmd)}\n{r.stderr}")
    return exe


def fuzz_c(engine: str, seconds: float, exe: Path | None = None, out: Path = OUT,
           seeds: Path = SEEDS) -> dict[str, Any]:
    """Run the harness; returns its statistics and whether it found anything."""
    exe = exe or build(engine, out=out)
    grown, artifacts = out / "corpus", out / "artifacts"
    grown.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    args = [str(exe), f"-max_total_time={int(seconds)}", f"-dict={FUZZ / 'proto.dict'}",
            f"-artifact_prefix={artifacts}/", "-print_final_stats=1"]
    if engine == "libfuzzer":
        args += ["-timeout=10", "-rss_limit_mb=2048", "-max_len=16384"]
    else:
        args += [f"-seed={int(time.time())}"]
    before = set(artifacts.iterdir())
    t0 = time.monotonic()
    r = sh([*args, str(grown), str(seeds)], timeout=seconds + 120)
    dt = time.monotonic() - t0
    text = r.stdout + r.stderr
    stat = {k: float(v) for k, v in re.findall(r"stat::(\w+):\s+([\d.]+)", text)}
    cov = re.findall(r"cov: (\d+) ft: (\d+)", text)
    found = sorted(str(p) for p in set(artifacts.iterdir()) - before)
    sanitizer = re.search(r"(ERROR: AddressSanitizer|runtime error:|ERROR: libFuzzer|broken promise)[^\n]*", text)
    ok = r.returncode == 0 and not found and not sanitizer
    res = {"engine": engine, "seconds": round(dt, 1), "inputs": int(stat.get("number_of_executed_units", 0)),
           "inputs_per_s": int(stat.get("average_exec_per_sec", 0)), "exit": r.returncode, "artifacts": found,
           "ok": ok, "corpus_files": len(list(grown.iterdir())) + len(list(seeds.iterdir()))}
    if cov:
        res["edges"], res["features"] = int(cov[-1][0]), int(cov[-1][1])
    if not ok:
        res["report"] = (sanitizer.group(0) if sanitizer else text[-2000:])
        res["replay"] = f"{exe} {found[0] if found else '<input>'}"
    return res


def coverage(out: Path = OUT) -> dict[str, Any]:
    """Lines of yf_proto.c the corpus executes (gcc --coverage, gcov), seeds plus what libFuzzer added."""
    cdir = out / "coverage"
    shutil.rmtree(cdir, ignore_errors=True)
    cdir.mkdir(parents=True)
    cc = os.environ.get("CC") or "gcc"
    objs = []
    for src in [*core_sources(), str(FUZZ / "fuzz_proto.c"), str(FUZZ / "standalone_main.c")]:
        obj = cdir / (Path(src).stem + ".o")
        r = sh([cc, *WARN, "-O0", "--coverage", "-I", str(CORE / "include"), "-c", src, "-o", str(obj)])
        if r.returncode != 0:
            return {"error": r.stderr[-500:]}
        objs.append(str(obj))
    exe = cdir / "replay"
    if sh([cc, "--coverage", *objs, "-o", str(exe), "-lm"]).returncode != 0:
        return {"error": "link failed"}
    sh([str(exe), "-max_total_time=0", str(GROWN), str(SEEDS)], cwd=cdir, timeout=600)
    r = sh(["gcov", "-n", "-o", str(cdir), str(CORE / "src" / "yf_proto.c")], cwd=cdir)
    m = re.search(r"File '[^']*yf_proto\.c'\s*\nLines executed:([\d.]+)% of (\d+)", r.stdout)
    if not m:
        return {"error": r.stdout[-500:] + r.stderr[-500:]}
    return {"file": "yf_proto.c", "lines_pct": float(m.group(1)), "lines": int(m.group(2))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", 30)),
                    help="for the C fuzzer and for the differential harness each")
    ap.add_argument("--engine", choices=("auto", "libfuzzer", "gcc"), default="auto")
    ap.add_argument("--only", choices=("c", "diff"), default=None)
    a = ap.parse_args(argv)
    report: dict[str, Any] = {}
    failed = False
    if a.only in (None, "c"):
        engine = a.engine if a.engine != "auto" else ("libfuzzer" if libfuzzer_cc() else "gcc")
        if engine == "gcc" and a.engine == "auto":
            print("fuzz: no clang with libFuzzer here; gcc's sanitizers with random mutations instead "
                  "(no coverage guidance)")
        c = fuzz_c(engine, a.seconds)
        report["c"] = c
        cov = coverage()
        report["coverage"] = cov
        edges = f", {c['edges']} edges" if "edges" in c else ""
        lines = f"; the corpus covers {cov['lines_pct']}% of yf_proto.c's {cov['lines']} lines" \
            if "lines_pct" in cov else ""
        print(f"fuzz ({engine}, ASan+UBSan): {c['inputs']:,} inputs in {c['seconds']} s "
              f"({c['inputs_per_s']:,}/s){edges}{lines}: " + ("no crash" if c["ok"] else "FAILED"))
        if not c["ok"]:
            failed = True
            print(f"fuzz: {c.get('report', '')}\nreplay: {c.get('replay')}", file=sys.stderr)
    if a.only in (None, "diff"):
        sys.path.insert(0, str(FUZZ))
        import differential

        d = differential.run(a.seconds, int(time.time()), [SEEDS, GROWN])
        report["differential"] = d
        print(f"differential C vs Python: {d['inputs']:,} inputs in {d['seconds']} s ({d['inputs_per_s']:,}/s), "
              f"seed {d['seed']}: {d['disagreements']} disagreement(s)")
        failed |= d["disagreements"] > 0
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
