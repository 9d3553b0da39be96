"""The serial protocol specified once (``board/protocol_spec.json``), and what is made from it.

The spec is JSON, data rather than code, so the C side, the docs and any other host read the same facts:
constants, the command/argument table, event fields and error codes. From it this module writes the firmware's
``yf_proto_spec.h`` (C ``#define``s, the ``yf_cmd_t`` struct and the argument table the C decoder walks) and the
tables of ``docs/protocol.md``; ``board/protocol.py`` builds its codec and ``target/native.py`` its struct mirror
from it, and the detector's limits and defaults used by ``gen``, the virtual board and ``yf_detect`` come from it.
This module sits on the shared floor (the JSON stays with the protocol in ``board/``) because both the board
wing and the target wing (gen, the native binding) read it, and neither may import the other's way round.

``python -m yamflash.protocol_spec --write`` regenerates; without ``--write`` (and in a test) it fails when a
generated file is stale.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

SPEC_FILE = ("board", "protocol_spec.json")  # package data of yamflash.board
HEADER = Path("firmware/components/yf_core/include/yf_proto_spec.h")
DOC = Path("docs/protocol.md")
UINT32_MAX = 0xFFFFFFFF


@dataclass(frozen=True)
class Arg:
    """One command argument: ``type`` is enum, uint32, int, num, bool, b64 or int_array."""

    cmd: str
    name: str
    type: str
    bit: int  # in yf_cmd_t.present: which arguments the command carried
    required: bool
    lo: float
    hi: float
    values: tuple[str, ...] = ()
    item: str = ""
    item_bytes: int = 0
    max_len: int = 0
    default: float | None = None
    doc: str = ""

    @property
    def field(self) -> str:
        """The yf_cmd_t member holding the value (payloads in data/data_len, arrays in classes/n_classes)."""
        return "data" if self.type == "b64" else self.name

    @property
    def count_field(self) -> str:
        """The yf_cmd_t member holding a payload's or array's length (the field itself for scalars)."""
        return "data_len" if self.type == "b64" else f"n_{self.name}" if self.type == "int_array" else self.field

    @property
    def message(self) -> str:
        """The E_ARG message, the same from C and Python."""
        if self.type == "enum":
            return f"{self.name} must be " + " or ".join(f'"{v}"' for v in self.values)
        if self.type in ("uint32", "int"):
            return f"{self.name} must be an integer {int(self.lo)}..{int(self.hi)}"
        if self.type == "num":
            return f"{self.name} must be a number {_num(self.lo)}..{_num(self.hi)}"
        if self.type == "bool":
            return f"{self.name} must be true or false"
        if self.type == "b64":
            count = f"{int(self.lo)}" if self.lo == self.hi else f"{int(self.lo)}..{int(self.hi)}"
            return f"{self.name} must be base64 of {count} {self.item}"
        return f"{self.name} must be an array of at most {self.max_len} integers {int(self.lo)}..{int(self.hi)}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@dataclass(frozen=True)
class Spec:
    raw: dict[str, Any]

    @property
    def version(self) -> int:
        return int(self.raw["version"])

    @property
    def prefix(self) -> str:
        return str(self.raw["prefix"])

    def const(self, name: str) -> int:
        return int(self.raw["constants"][name]["value"])

    def value(self, v: Any) -> Any:
        """A number, or the name of a constant standing for one."""
        return self.const(v) if isinstance(v, str) else v

    @property
    def commands(self) -> tuple[str, ...]:
        return tuple(c["name"] for c in self.raw["commands"])

    def args(self, cmd: str | None = None) -> list[Arg]:
        out = []
        for c in self.raw["commands"]:
            if cmd is not None and c["name"] != cmd:
                continue
            for i, a in enumerate(c["args"]):
                t = a["type"]
                lo, hi = (0, UINT32_MAX) if t == "uint32" else (0, 1) if t in ("bool", "enum") else \
                    (self.value(a["min"]), self.value(a["max"]))
                if t == "enum":
                    hi = len(a["values"]) - 1
                default = a.get("default")
                out.append(Arg(c["name"], a["name"], t, 1 << i, bool(a.get("required")), lo, hi,
                               tuple(a.get("values", ())), a.get("item", ""), int(a.get("item_bytes", 0)),
                               int(self.value(a.get("max_len", 0))),
                               None if default is None else self.value(default), a.get("doc", "")))
        return out

    def arg(self, cmd: str, name: str) -> Arg:
        return next(a for a in self.args(cmd) if a.name == name)

    @property
    def errors(self) -> dict[str, str]:
        return dict(self.raw["errors"])

    @property
    def events(self) -> dict[str, dict[str, str]]:
        """Required fields of each event and their kinds."""
        return {e["t"]: dict(e["fields"]) for e in self.raw["events"]}

    @property
    def optional_fields(self) -> dict[str, dict[str, str]]:
        """Fields an event may lack (added after boards that do not send them) and their kinds when present."""
        return {e["t"]: dict(e.get("optional", {})) for e in self.raw["events"]}

    @property
    def payload_max(self) -> int:
        """Bytes the largest decoded payload needs."""
        return max(int(a.hi) * a.item_bytes for a in self.args() if a.type == "b64")


@cache
def load() -> Spec:
    """The protocol specification shipped in this package."""
    return Spec(json.loads(resources.files("yamflash").joinpath(*SPEC_FILE).read_text(encoding="utf-8")))


def _detector_default(name: str) -> Any:
    return lambda: load().arg("detector", name).default


@dataclass
class DetectorSettings:
    """The detector's settings (yf_detect_config_t) with the spec's defaults; ``problem`` checks its ranges."""

    classes: list[int] = field(default_factory=list)
    threshold: float = field(default_factory=_detector_default("threshold"))
    window: int = field(default_factory=_detector_default("window"))
    min_count: int = field(default_factory=_detector_default("min_count"))
    refractory_ms: int = field(default_factory=_detector_default("refractory_ms"))

    def problem(self, n_labels: int | None = None) -> str | None:
        """The E_ARG message for the first setting out of range (classes below ``n_labels`` when given), else
        None: the rules of the detector command and yf_detect_config_check."""
        s = load()
        for a in s.args("detector"):
            v = getattr(self, a.name)
            if a.type == "int_array":
                ok = isinstance(v, list) and len(v) <= a.max_len and all(
                    isinstance(x, int) and not isinstance(x, bool) and a.lo <= x <= a.hi for x in v)
            elif a.type == "num":
                ok = isinstance(v, (int, float)) and not isinstance(v, bool) and a.lo <= v <= a.hi
            else:
                ok = isinstance(v, int) and not isinstance(v, bool) and a.lo <= v <= a.hi
            if not ok:
                return a.message
        if n_labels is not None and any(c >= n_labels for c in self.classes):
            return f"classes must be indices below the model's {n_labels} labels"
        return None


# ---------------------------------------------------------------- C header


def _c_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _c_num(x: float, kind: str) -> str:
    if kind == "num":
        return f"{float(x)!r}f" if not float(x).is_integer() else f"{int(x)}.0f"
    return f"{int(x)}" + ("u" if x > 0x7FFFFFFF else "")


_FIELD_C = {"enum": "uint32_t {n};", "uint32": "uint32_t {n};", "int": "uint32_t {n};", "num": "float {n};",
            "bool": "bool {n};"}


def _c_const(s: Spec, a: Arg) -> str:
    """The C name of the constant an array argument's max_len refers to (or the number)."""
    ref = next(x.get("max_len") for c in s.raw["commands"] for x in c["args"] if x["name"] == a.name)
    return f"YF_PROTO_{ref}" if isinstance(ref, str) else str(a.max_len)


def c_header(spec: Spec | None = None) -> str:
    """yf_proto_spec.h: the spec as C."""
    s = spec or load()
    L = ["/* yf_proto_spec.h: GENERATED by `python -m yamflash.protocol_spec --write` from",
         " * host/yamflash/board/protocol_spec.json. Do not edit: edit the spec and regenerate (a test fails",
         " * when this file is stale). */",
         "#ifndef YF_PROTO_SPEC_H", "#define YF_PROTO_SPEC_H", "",
         "#include <stdbool.h>", "#include <stddef.h>", "#include <stdint.h>", "",
         f"#define YF_PROTO_VERSION {s.version}",
         f"#define YF_PROTO_PREFIX {_c_str(s.prefix)}",
         f"#define YF_PROTO_PREFIX_LEN {len(s.prefix.encode())}"]
    for name, c in s.raw["constants"].items():
        L.append(f"#define YF_PROTO_{name} {c['value']} /* {c['doc']} */")
    L.append(f"#define YF_PROTO_PAYLOAD_MAX {s.payload_max} /* bytes the largest decoded payload needs */")
    L += ["", "/* Error codes (docs/protocol.md). */"]
    for code in s.errors:
        L.append(f"#define YF_{code} {_c_str(code)}")
    L += ["", "typedef enum {", "    YF_CMD_NONE = 0,"]
    L += [f"    YF_CMD_{n.upper()}," for n in s.commands]
    L += ["} yf_cmd_kind_t;", "", "/* X(KIND, name) for every command, in table order. */",
          "#define YF_PROTO_COMMANDS(X) \\"]
    L += [f"    X({n.upper()}, {_c_str(n)}) \\" for n in s.commands]
    L[-1] = L[-1][:-2]
    L += ["", "/* Argument types the decoder knows. */",
          "typedef enum { YF_ARG_ENUM, YF_ARG_INT, YF_ARG_NUM, YF_ARG_BOOL, YF_ARG_B64, YF_ARG_INT_ARRAY }"
          " yf_arg_type_t;",
          ""]
    for a in s.args():
        if a.type == "enum":
            L.append("typedef enum { " + ", ".join(f"YF_{a.name.upper()}_{v.upper()} = {i}"
                                                      for i, v in enumerate(a.values)) + f" }} yf_{a.name}_t;")
            L.append(f"#define YF_PROTO_{a.name.upper()}_NAMES {{" + ", ".join(_c_str(v) for v in a.values) + "}")
    L += ["", "/* Bits of yf_cmd_t.present, per command, and each argument's range and default. */"]
    for a in s.args():
        key = f"{a.cmd.upper()}_{a.name.upper()}"
        L.append(f"#define YF_ARG_{key} 0x{a.bit:02x}u")
        if a.type in ("int", "num", "int_array"):
            L.append(f"#define YF_PROTO_{key}_MIN {_c_num(a.lo, a.type)}")
            L.append(f"#define YF_PROTO_{key}_MAX {_c_num(a.hi, a.type)}")
        if a.default is not None:
            L.append(f"#define YF_PROTO_{key}_DEFAULT {_c_num(a.default, a.type)}")
    L += ["", "/* A decoded command: the envelope, then one member per argument (present: YF_ARG_* bits). */",
          "typedef struct {", "    uint32_t id;", "    yf_cmd_kind_t kind;",
          "    char name[YF_PROTO_CMD_NAME_MAX]; /* cmd as received (truncated, NUL-terminated): echo it */",
          "    const char *err_msg;              /* static text for UNKNOWN_CMD/ARG replies */",
          "    uint32_t present;                 /* YF_ARG_<CMD>_<ARG> bits of the arguments given */"]
    seen: set[str] = set()
    for a in s.args():
        if a.field in seen:
            continue
        seen.add(a.field)
        if a.type == "b64":
            L += ["    const uint8_t *data; /* decoded payload, in the caller's buffer */", "    size_t data_len;"]
        elif a.type == "int_array":
            L += [f"    uint16_t {a.name}[{_c_const(s, a)}];", f"    uint32_t n_{a.name};"]
        else:
            L.append("    " + _FIELD_C[a.type].format(n=a.name))
    L += ["} yf_cmd_t;", "",
          "/* X(KIND, name, type, bit, required, min, max, item_bytes, max_len, field, count_field, message) per",
          " * argument; count_field holds the length of a payload or array (else it repeats field). */",
          "#define YF_PROTO_ARGS(X) \\"]
    for a in s.args():
        L.append(f"    X({a.cmd.upper()}, {_c_str(a.name)}, YF_ARG_{a.type.upper() if a.type != 'uint32' else 'INT'}, "
                 f"0x{a.bit:02x}u, {int(a.required)}, {_num(a.lo)}, {_num(a.hi)}, {a.item_bytes}, {a.max_len}, "
                 f"{a.field}, {a.count_field}, {_c_str(a.message)}) \\")
    L[-1] = L[-1][:-2]
    L += ["", "#endif", ""]
    return "\n".join(L)


# ---------------------------------------------------------------- docs tables


def _doc_commands(s: Spec) -> str:
    rows = ["| cmd | args | reply fields |", "|---|---|---|"]
    for c in s.raw["commands"]:
        args = []
        for a in s.args(c["name"]):
            args.append(f'`"{a.name}"`' + ("" if a.required else " (optional)") + f": {_arg_doc(a)}")
        text = "; ".join(args) if args else "\u2013"
        if c["doc"]:
            text += f" \u2014 {c['doc']}" if args else f" ({c['doc']})"
        rows.append(f"| `{c['name']}` | {text} | {c['reply']} |")
    return "\n".join(rows)


def _arg_doc(a: Arg) -> str:
    if a.type == "enum":
        return " \\| ".join(f'`"{v}"`' for v in a.values)
    if a.type == "uint32":
        return "uint32"
    if a.type == "bool":
        return "bool"
    if a.type == "b64":
        count = f"{int(a.lo)}" if a.lo == a.hi else f"{int(a.lo)}..{int(a.hi)}"
        return f"base64 of {count} {a.item}"
    default = "" if a.default is None else f", default {_num(a.default)}"
    what = f" ({a.doc})" if a.doc else ""
    if a.type == "int_array":
        return f"[int...], at most {a.max_len}, each {int(a.lo)}..{int(a.hi)}{what}"
    kind = "number" if a.type == "num" else "int"
    return f"{kind} {_num(a.lo)}..{_num(a.hi)}{default}{what}"


def _doc_constants(s: Spec) -> str:
    rows = ["| constant | value | meaning |", "|---|---|---|"]
    rows += [f"| `YF_PROTO_{k}` | {c['value']} | {c['doc']} |" for k, c in s.raw["constants"].items()]
    return "\n".join(rows)


def _doc_errors(s: Spec) -> str:
    return "\n".join(f"- `{k}`: {v}" for k, v in s.errors.items())


def _doc_events(s: Spec) -> str:
    rows = ["| t | fields |", "|---|---|"]
    rows += [f"| `{e['t']}` | {e['doc']} |" for e in s.raw["events"]]
    return "\n".join(rows)


DOC_BLOCKS = {"constants": _doc_constants, "commands": _doc_commands, "errors": _doc_errors, "events": _doc_events}


def render_doc(text: str, spec: Spec | None = None) -> str:
    """docs/protocol.md with every generated block (between its spec markers) rewritten from the spec."""
    s = spec or load()
    for name, fn in DOC_BLOCKS.items():
        pat = re.compile(rf"(<!-- spec:{name} -->\n)(?:.*?\n)?(<!-- /spec:{name} -->)", re.S)
        if not pat.search(text):
            raise ValueError(f"{DOC}: no <!-- spec:{name} --> ... <!-- /spec:{name} --> block")
        body = fn(s)
        text = pat.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


# ---------------------------------------------------------------- write / check


def outputs(root: Path) -> dict[Path, str]:
    """Every generated file under the checkout ``root`` with the content it should have."""
    return {root / HEADER: c_header(), root / DOC: render_doc((root / DOC).read_text(encoding="utf-8"))}


def stale(root: Path) -> list[Path]:
    """Generated files whose content differs from what the spec gives."""
    return [p for p, text in outputs(root).items() if not p.exists() or p.read_text(encoding="utf-8") != text]


def write(root: Path) -> list[Path]:
    """Rewrite the stale generated files; returns them."""
    changed = stale(root)
    for p, text in outputs(root).items():
        if p in changed:
            p.write_text(text, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m yamflash.protocol_spec", description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path.cwd(), help="the yamflash checkout (default: .)")
    ap.add_argument("--write", action="store_true", help="rewrite stale files (default: only check)")
    a = ap.parse_args(argv)
    if a.write:
        for p in write(a.root):
            print(f"wrote {p}")
        return 0
    bad = stale(a.root)
    for p in bad:
        print(f"stale: {p} (run python -m yamflash.protocol_spec --write)", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
