"""Boot checks of the virtual board: read its flash file the way the bootloader and firmware read flash.

Partition table at 0x8000 (parsed and MD5-checked), an app partition holding an image, and the model
partition: a small header (magic, version, model length, sha256) followed by the .tflite. A failure is
a BootError whose code and message become the board's `err` event, as the firmware reports it.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...target import partitions

FLASH_SIZE = 16 << 20
APP_DESC_MAGIC = 0xABCD5432


class BootError(Exception):
    def __init__(self, code: str, msg: str):
        super().__init__(f"{code}: {msg}")
        self.code, self.msg = code, msg


@dataclass
class Image:
    """What the firmware knows after boot: its version, the model bytes and what the build said about them."""

    fw: str
    model: bytes
    model_sha256: str
    meta: dict[str, Any] = field(default_factory=dict)
    partitions: list[partitions.Partition] = field(default_factory=list)


def read_app(blob: bytes) -> tuple[str, dict[str, Any]]:
    """(version, settings) of the app partition.

    An ESP-IDF image gives esp_app_desc_t.version; the `sim` build's app is a JSON document standing in
    for the firmware (its version, labels and arena settings, as the generated headers give the chip).
    """
    if blob[:1] == b"\xe9" and len(blob) >= 24 + 8 + 48:
        magic, = struct.unpack_from("<L", blob, 32)
        if magic == APP_DESC_MAGIC:
            return blob[48:80].split(b"\x00")[0].decode("ascii", "replace"), {}
    text = blob.rstrip(b"\xff").rstrip(b"\x00")
    if text.startswith(b"{"):
        try:
            doc = json.loads(text.decode())
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            return str(doc.get("fw") or doc.get("version") or "sim"), doc
    return "sim-" + hashlib.sha256(text).hexdigest()[:12], {}


def parse_model_partition(blob: bytes) -> tuple[bytes, dict[str, Any]]:
    """(model bytes, header fields) of a model partition image; BootError when it is not valid."""
    try:
        return partitions.read_model_image(blob)
    except ValueError as exc:
        raise BootError("E_MODEL", str(exc)) from None


def boot(flash_file: str | Path) -> Image:
    """Validate the flash file as the firmware does at boot; BootError says what is wrong."""
    path = Path(flash_file)
    if not path.is_file():
        raise BootError("E_MODEL", f"flash is empty (no {path}); run `yamflash flash --port sim`")
    with open(path, "rb") as f:
        f.seek(partitions.DEFAULT_TABLE_OFFSET)
        table = f.read(partitions.TABLE_MAX)
        try:
            parts = partitions.from_binary(table)
        except ValueError as exc:
            raise BootError("E_MODEL", f"partition table invalid: {exc}") from None
        if not parts:
            raise BootError("E_MODEL", "no partition table at 0x8000 (flash is blank)")
        size, needed = path.stat().st_size, max(p.end for p in parts)
        if needed > size:
            raise BootError("E_MODEL", f"partition table needs {needed} bytes of flash, the flash has {size}")
        app = next((p for p in parts if p.type == partitions.TYPES["app"]), None)
        model = next((p for p in parts if p.name == "model"), None)
        if app is None or model is None:
            raise BootError("E_MODEL", "partition table lacks an app or a 'model' partition")
        f.seek(app.offset)
        fw, app_meta = read_app(f.read(min(app.size, 1 << 20)))
        f.seek(model.offset)
        blob = f.read(model.size)
    data, meta = parse_model_partition(blob)
    return Image(fw, data, hashlib.sha256(data).hexdigest(), {**app_meta, **meta}, parts)
