"""model.json: the manifest every step after conversion reads (gen, flash, monitor, validate, bench)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import UserError

SCHEMA = 1


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write to a temporary file beside ``path`` and rename it, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(path: str | Path, manifest: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(manifest, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path, missing: str, unreadable: str) -> Any:
    """Parse a JSON file; a missing or broken file is a UserError: ``missing`` or ``unreadable``
    (which may use ``{exc}``)."""
    try:
        return json.loads(Path(path).read_text())
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
    return m


def load_labels(path: str | Path) -> list[str]:
    """AudioSet class names from yamnet_class_map.csv (index,mid,display_name)."""
    import csv

    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as exc:
        raise UserError(f"cannot read labels {path}: {exc.strerror}; pass --labels yamnet_class_map.csv.") from None
    if not rows or [c.strip() for c in rows[0][:3]] != ["index", "mid", "display_name"]:
        raise UserError(f"{path} is not a YAMNet class map (header index,mid,display_name).")
    return [r[2] for r in rows[1:]]
