"""model.json: the manifest every step after conversion reads (gen, flash, monitor, validate, bench)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import UserError
from .outputs import atomic_write, write_all  # noqa: F401  (one writer for every command's outputs)

SCHEMA = 1


def dumps(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=False) + "\n"


def write(path: str | Path, manifest: dict[str, Any]) -> None:
    atomic_write(path, dumps(manifest))


def read_json(path: str | Path, missing: str, unreadable: str) -> Any:
    """Parse a JSON file; a missing or broken file is a UserError: ``missing`` or ``unreadable``
    (which may use ``{exc}``)."""
    p = Path(path)
    if p.exists() and not p.is_file():  # a FIFO or /dev/zero would block or never end
        raise UserError(unreadable.replace("{exc}", "not a regular file"))
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise UserError(missing) from None
    except (OSError, ValueError) as exc:
        raise UserError(unreadable.replace("{exc}", str(exc))) from None  # not .format: paths may hold braces


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    m = read_json(path, f"{path} does not exist; run `yamflash convert` first.",
                  f"{path} is not a readable model.json ({{exc}}); run `yamflash convert` again.")
    if not isinstance(m, dict) or m.get("schema") != SCHEMA:
        raise UserError(f"{path} is not a yamflash model.json of schema {SCHEMA}; run `yamflash convert` again.")
    check_fields(m, path)
    return m


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _int_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(_is_int(x) and x > 0 for x in v)


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _sha256(v: Any) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


# The fields every step after `convert` reads (gen, its templates, flash, the virtual board), with their kinds.
# Anything else in model.json is tolerated (newer writers add objects such as "arena"), so only these are checked.
FIELDS: dict[str, tuple[Any, str]] = {
    "model": (lambda v: isinstance(v, dict), "an object"),
    "model.file": (lambda v: isinstance(v, str) and v != "" and "/" not in v and "\\" not in v,
                   "a file name beside model.json"),
    "model.bytes": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "model.sha256": (_sha256, "64 lowercase hex digits"),
    "input": (lambda v: isinstance(v, dict), "an object"),
    "input.shape": (_int_list, "a list of positive integers"),
    "input.dtype": (lambda v: isinstance(v, str), "a string"),
    "input.scale": (lambda v: _is_num(v) and v > 0, "a positive number"),
    "input.zero_point": (_is_int, "an integer"),
    "output": (lambda v: isinstance(v, dict), "an object"),
    "output.shape": (_int_list, "a list of positive integers"),
    "output.dtype": (lambda v: isinstance(v, str), "a string"),
    "output.scale": (lambda v: _is_num(v) and v > 0, "a positive number"),
    "output.zero_point": (_is_int, "an integer"),
    "output.activation": (lambda v: isinstance(v, str), "a string"),
    "frontend": (lambda v: isinstance(v, dict), "an object"),
    "labels": (lambda v: _str_list(v) and bool(v), "a list of strings"),
    "ops": (lambda v: _str_list(v) and bool(v), "a list of operator names"),
    "arena_bytes": (lambda v: _is_int(v) and v > 0, "a positive integer"),
}


def check_fields(m: dict[str, Any], path: str | Path) -> None:
    """UserError naming the first field of ``FIELDS`` that is missing or of the wrong kind."""
    for key, (ok, kind) in FIELDS.items():
        node: Any = m
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise UserError(f"{path}: field {key!r} is missing; run `yamflash convert` again (or fix the file).")
            node = node[part]
        if not ok(node):
            raise UserError(f"{path}: field {key!r} must be {kind}, not {json.dumps(node)[:60]}; "
                            f"run `yamflash convert` again (or fix the file).")


def load_labels(path: str | Path) -> list[str]:
    """AudioSet class names from yamnet_class_map.csv (index,mid,display_name)."""
    import csv

    if Path(path).exists() and not Path(path).is_file():
        raise UserError(f"{path} is not a regular file; pass --labels yamnet_class_map.csv.")
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as exc:
        raise UserError(f"cannot read labels {path}: {exc.strerror}; pass --labels yamnet_class_map.csv.") from None
    if not rows or [c.strip() for c in rows[0][:3]] != ["index", "mid", "display_name"]:
        raise UserError(f"{path} is not a YAMNet class map (header index,mid,display_name).")
    return [r[2] for r in rows[1:]]
