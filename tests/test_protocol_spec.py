"""The protocol specified once (host/yamflash/board/protocol_spec.json): the C header and the docs' tables
generated from it are current, a stale one is caught, and the protocol's limits are written nowhere else."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from yamflash import protocol_spec as spec

ROOT = Path(__file__).resolve().parents[1]


def test_generated_header_and_doc_tables_are_current() -> None:
    assert spec.stale(ROOT) == [], "run: python -m yamflash.protocol_spec --write"


def test_a_stale_header_or_doc_table_is_caught_and_rewritten(tmp_path: Path) -> None:
    for rel in (spec.HEADER, spec.DOC):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    assert spec.main(["--root", str(tmp_path)]) == 0
    header = tmp_path / spec.HEADER
    header.write_text(header.read_text().replace("#define YF_PROTO_BENCH_MAX 1000", "#define YF_PROTO_BENCH_MAX 10000"))
    doc = tmp_path / spec.DOC
    doc.write_text(doc.read_text().replace("int 1..1000, default 10", "int 1..10000, default 10"))
    assert spec.stale(tmp_path) == [header, doc]
    assert spec.main(["--root", str(tmp_path)]) == 1
    assert spec.main(["--root", str(tmp_path), "--write"]) == 0
    assert spec.stale(tmp_path) == [] and "#define YF_PROTO_BENCH_MAX 1000 " in header.read_text()


def test_header_carries_every_command_argument_and_error_of_the_spec() -> None:
    h = (ROOT / spec.HEADER).read_text()
    s = spec.load()
    for name in s.commands:
        assert f'X({name.upper()}, "{name}")' in h
    for a in s.args():
        assert f'X({a.cmd.upper()}, "{a.name}", ' in h and a.message.replace('"', '\\"') in h
    for code in s.errors:
        assert f'#define YF_{code} "{code}"' in h


# Limits (and the old, disagreeing ones) as they would be written by hand. Each may appear only in the spec and
# in what is generated from it: the header and the docs' generated blocks.
HAND_WRITTEN = ("12288", "12287", "86400000", "3600000", "3_600_000", "1..10000", "1..1000", "0..65535", "1..65535",
                "1..4096", "6144 int8")
GENERATED_BLOCK = re.compile(r"<!-- spec:(\w+) -->.*?<!-- /spec:\1 -->", re.S)


def test_protocol_limits_are_written_only_in_the_spec_and_generated_files() -> None:
    skip = {ROOT / spec.HEADER, ROOT / "host" / "yamflash" / Path(*spec.SPEC_FILE)}
    hits = []
    for top in ("host", "firmware", "docs", "scripts", "README.md"):
        for p in [ROOT / top] if (ROOT / top).is_file() else sorted((ROOT / top).rglob("*")):
            if p in skip or "generated" in p.parts or p.suffix not in (".py", ".c", ".h", ".cpp", ".md", ".json"):
                continue
            text = GENERATED_BLOCK.sub("", p.read_text(encoding="utf-8", errors="replace"))
            hits += [f"{p.relative_to(ROOT)}: {lit}" for lit in HAND_WRITTEN if lit in text]
    assert hits == []
