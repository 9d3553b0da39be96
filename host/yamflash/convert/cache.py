"""A cache of finished conversions, keyed by everything that decides their bytes.

Why: converting YAMNet takes minutes on a laptop, and `make demo`, `make flash` and the test suite convert the
same weights with the same audio again and again. A conversion is reused only when the weights file, the
label file, every calibration/evaluation audio file (path and content), the settings and yamflash's own code
are all the same, so a hit is what a fresh conversion would have written. The cache lives in
``~/.cache/yamflash`` (``$YAMFLASH_CACHE`` or ``$XDG_CACHE_HOME/yamflash`` when set); ``--no-cache`` skips it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .. import manifest
from ..cachedir import cache_root

FILES = ("model.tflite", "model.json")
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}
PACKAGE = Path(__file__).resolve().parents[1]  # yamflash/


def _file_digest(h: Any, path: Path) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)


def _tree_digest(h: Any, folder: Path) -> None:
    """Every audio file under folder: relative path and content, in sorted order."""
    for p in sorted(q for q in folder.rglob("*") if q.is_file() and q.suffix.lower() in AUDIO_SUFFIXES):
        h.update(str(p.relative_to(folder)).encode() + b"\0")
        _file_digest(h, p)


# Code that runs after a model exists (board, flashing, monitoring, the CLI's printing) cannot change what a
# conversion writes; everything else, new modules included, is part of the key.
NOT_CONVERSION = {"board", "cli", "target/build.py", "target/templates", "target/native.py", "plots.py", "progress.py",
                  "model/convert_cache.py", "__main__.py"}


def _excluded(parts: tuple[str, ...]) -> bool:
    return any("/".join(parts[:i]) in NOT_CONVERSION for i in range(1, len(parts) + 1))


def code_digest() -> str:
    """yamflash's own code that decides a conversion's bytes (Python, and any C it builds), by content."""
    h = hashlib.sha256()
    files = (q for q in PACKAGE.rglob("*") if q.is_file() and "__pycache__" not in q.parts
             and not _excluded(q.relative_to(PACKAGE).parts))
    for p in sorted(files):
        h.update(str(p.relative_to(PACKAGE)).encode() + b"\0")
        _file_digest(h, p)
    return h.hexdigest()


def key(weights: str, labels: str | None, calib_dir: str | None, eval_dir: str | None,
        settings: dict[str, Any]) -> str:
    """The cache key of one conversion; reading the inputs costs well under a second for ESC-50-sized folders."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for tag, path in (("weights", weights), ("labels", labels)):
        h.update(tag.encode() + b"\0")
        if path and Path(path).is_file():
            _file_digest(h, Path(path))
    for tag, folder in (("calib", calib_dir), ("eval", eval_dir)):
        h.update(tag.encode() + b"\0")
        if folder and Path(folder).is_dir():
            _tree_digest(h, Path(folder))
        elif folder:  # a single file
            h.update(str(folder).encode())
    h.update(code_digest().encode())
    return h.hexdigest()[:24]


def lookup(k: str) -> Path | None:
    """The cached conversion's folder, when complete."""
    d = cache_root() / f"convert-{k}"
    return d if all((d / f).is_file() for f in FILES) else None


def restore(cached: Path, out_dir: str | Path) -> dict[str, Any]:
    """Copy a cached conversion into out_dir (each file whole or not at all); returns its model.json."""
    out = Path(out_dir)
    for name in FILES:
        manifest.atomic_write(out / name, (cached / name).read_bytes())
    return json.loads((out / "model.json").read_text())


def store(k: str, out_dir: str | Path) -> None:
    """Keep a finished conversion; a cache that cannot be written is skipped, never an error."""
    final = cache_root() / f"convert-{k}"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=final.parent))
    except OSError:
        return
    try:
        for name in FILES:
            shutil.copyfile(Path(out_dir) / name, tmp / name)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
