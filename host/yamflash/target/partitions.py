"""The firmware's flash layout: partitions.csv, its binary form, SPIFFS sizing and the raw model image.

Offsets are resolved as ESP-IDF's ``components/partition_table/gen_esp32part.py`` does for rows that
leave the offset empty: start after the table (table offset + 0x1000), pad each partition to its type's
alignment (app 0x10000, data 0x1000), place it, continue at its end. The binary table is that tool's
format: 32-byte entries ``<2sBBLL16sL`` (magic AA 50, type, subtype, offset, size, label, flags), an MD5
entry (EB EB, 14 x FF, MD5 of the entries), then FF padding to 0xC00 bytes.
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..errors import UserError

TABLE_SIZE = 0x1000  # the sector the table occupies (gen_esp32part PARTITION_TABLE_SIZE)
TABLE_MAX = 0xC00  # bytes of entries + MD5 + padding (gen_esp32part MAX_PARTITION_LENGTH)
DEFAULT_TABLE_OFFSET = 0x8000  # CONFIG_PARTITION_TABLE_OFFSET's default
ENTRY = struct.Struct("<2sBBLL16sL")
ENTRY_MAGIC = b"\xaa\x50"
MD5_ENTRY = b"\xeb\xeb" + b"\xff" * 14

TYPES = {"app": 0x00, "data": 0x01}
SUBTYPES = {
    0x00: {"factory": 0x00, "test": 0x20},
    0x01: {"ota": 0x00, "phy": 0x01, "nvs": 0x02, "coredump": 0x03, "nvs_keys": 0x04, "efuse": 0x05,
           "undefined": 0x06, "esphttpd": 0x80, "fat": 0x81, "spiffs": 0x82, "littlefs": 0x83},
}
ALIGN = {0x00: 0x10000, 0x01: 0x1000}
FLAGS = {"encrypted": 0, "readonly": 1}

# SPIFFS geometry of ESP-IDF's defaults (CONFIG_SPIFFS_PAGE_SIZE=256, CONFIG_SPIFFS_OBJ_NAME_LEN=32,
# CONFIG_SPIFFS_META_LENGTH=4, 4 KiB erase block), which sdkconfig.defaults states explicitly. PlatformIO's
# mkspiffs has the same compiled in (esp-idf build of mkspiffs 0.2.3: SPIFFS_OBJ_META_LEN=4) and gets -p 256 -b 4096.
SPIFFS_PAGE = 256
SPIFFS_BLOCK = 4096
SPIFFS_NAME_LEN = 32
SPIFFS_META_LEN = 4
SPIFFS_SPARE_BLOCKS = 2  # free blocks left in spiffsgen's compact image for SPIFFS's own bookkeeping
# spiffs_page_ix, spiffs_obj_id and spiffs_span_ix are 16-bit (ESP-IDF's spiffs_config.h); esp_spiffs.c refuses
# to mount a partition whose page count, + 2, exceeds 0xFFFF.
SPIFFS_MAX_PAGES = 0xFFFF - 2

# Raw model partition image (storage = partition): a 64-byte header, then the .tflite, so the firmware
# can esp_partition_mmap() it and hand TFLite Micro a pointer 16-byte aligned.
MODEL_IMAGE_MAGIC = b"YFMODEL\x00"
MODEL_IMAGE_VERSION = 1
MODEL_IMAGE_HEADER = struct.Struct("<8sLLLL32s8x")  # magic, version, header size, model length, flags, sha256
assert MODEL_IMAGE_HEADER.size == 64


@dataclass(frozen=True)
class Partition:
    """One row of partitions.csv; offset None until resolved."""

    name: str
    type: int
    subtype: int
    size: int
    offset: int | None = None
    flags: tuple[str, ...] = ()

    @property
    def end(self) -> int:
        assert self.offset is not None
        return self.offset + self.size


def parse_size(text: str | int) -> int:
    """'0x6000', '24K', '4M', '4MB' or an int, as gen_esp32part reads sizes (K and M are powers of 1024)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(0x[0-9a-fA-F]+|\d+)\s*([kKmM]?)[bB]?\s*", text)
    if not m:
        raise UserError(f"cannot read size {text!r}; write it as 0x6000, 24K or 4M.")
    value = int(m.group(1), 0)
    return value * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]


def align_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def resolve(parts: Iterable[Partition], table_offset: int = DEFAULT_TABLE_OFFSET) -> list[Partition]:
    """Fill in missing offsets as gen_esp32part does; UserError on overlap or misalignment."""
    if table_offset % 0x1000:
        raise UserError(f"partition table offset 0x{table_offset:x} is not a multiple of 0x1000.")
    last_end = table_offset + TABLE_SIZE
    out = []
    for p in parts:
        off = p.offset
        if off is None:
            off = align_up(last_end, ALIGN.get(p.type, 0x1000))
        elif off < last_end:
            raise UserError(f"partition {p.name} at 0x{off:x} overlaps the previous one (ends 0x{last_end:x}).")
        if off % ALIGN.get(p.type, 0x1000):
            raise UserError(f"partition {p.name} offset 0x{off:x} is not aligned to 0x{ALIGN[p.type]:x}.")
        if p.type == TYPES["app"] and p.size % 0x10000:
            raise UserError(f"app partition {p.name} size 0x{p.size:x} is not a multiple of 64 KiB.")
        if p.size % 0x1000:
            raise UserError(f"partition {p.name} size 0x{p.size:x} is not a multiple of 4 KiB.")
        out.append(replace(p, offset=off))
        last_end = off + p.size
    return out


def check_fits(parts: list[Partition], flash_size: int, what: str = "") -> None:
    """UserError with the numbers when the resolved table runs past the flash."""
    end = max(p.end for p in parts)
    if end > flash_size:
        model = next((p for p in parts if p.name == "model"), None)
        detail = f" (model partition {model.size:,} bytes at 0x{model.offset:x})" if model else ""
        raise UserError(f"partitions need {end:,} bytes (0x{end:x}) of flash{detail} but the {what or 'board'} "
                        f"has {flash_size:,} (0x{flash_size:x}); pick a board with more flash, a smaller "
                        f"--app-size, or a smaller model.")


def _type_name(t: int) -> str:
    return next((k for k, v in TYPES.items() if v == t), f"0x{t:02x}")


def _subtype_name(t: int, s: int) -> str:
    return next((k for k, v in SUBTYPES.get(t, {}).items() if v == s), f"0x{s:02x}")


def to_csv(parts: Iterable[Partition], header: str = "") -> str:
    """partitions.csv text; offsets left empty unless set, so ESP-IDF resolves them as we do."""
    lines = [header.rstrip("\n")] if header else []
    lines.append("# Name, Type, SubType, Offset, Size, Flags")
    for p in parts:
        off = "" if p.offset is None else f"0x{p.offset:x}"
        lines.append(f"{p.name}, {_type_name(p.type)}, {_subtype_name(p.type, p.subtype)}, {off}, "
                     f"0x{p.size:x}, {':'.join(p.flags)}")
    return "\n".join(lines) + "\n"


def from_csv(text: str) -> list[Partition]:
    """Rows of a partitions.csv (names or numbers for type and subtype; empty offsets stay None)."""
    parts = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        f = [c.strip() for c in line.split(",")] + [""] * 6
        try:
            ptype = TYPES[f[1]] if f[1] in TYPES else int(f[1], 0)
            sub = SUBTYPES.get(ptype, {}).get(f[2])
            sub = int(f[2], 0) if sub is None else sub
            parts.append(Partition(f[0], ptype, sub, parse_size(f[4]), parse_size(f[3]) if f[3] else None,
                                   tuple(x for x in f[5].split(":") if x)))
        except (ValueError, UserError) as exc:
            raise UserError(f"partitions.csv line {n} ({raw.strip()!r}) is not valid: {exc}; run `yamflash gen`.") \
                from None
    return parts


def to_binary(parts: Iterable[Partition]) -> bytes:
    """The table ESP-IDF writes at CONFIG_PARTITION_TABLE_OFFSET: entries, MD5 entry, FF padding."""
    body = b""
    for p in parts:
        assert p.offset is not None, "resolve() the table first"
        flags = sum(1 << FLAGS[f] for f in p.flags)
        body += ENTRY.pack(ENTRY_MAGIC, p.type, p.subtype, p.offset, p.size, p.name.encode()[:16], flags)
    body += MD5_ENTRY + hashlib.md5(body).digest()
    if len(body) >= TABLE_MAX:
        raise UserError(f"partition table too long ({len(body)} bytes); use fewer partitions.")
    return body + b"\xff" * (TABLE_MAX - len(body))


def from_binary(blob: bytes) -> list[Partition]:
    """Entries of a binary table; ValueError on bad magic, bad MD5 or a missing end marker."""
    md5 = hashlib.md5()
    parts = []
    for pos in range(0, len(blob), ENTRY.size):
        raw = blob[pos : pos + ENTRY.size]
        if raw == b"\xff" * ENTRY.size:
            return parts
        if raw[:2] == MD5_ENTRY[:2]:
            if raw[16:] != md5.digest():
                raise ValueError("partition table MD5 does not match")
            continue
        md5.update(raw)
        magic, t, s, off, size, label, flags = ENTRY.unpack(raw)
        if magic != ENTRY_MAGIC:
            raise ValueError(f"bad entry magic {magic.hex()} at byte {pos}")
        names = tuple(k for k, bit in FLAGS.items() if flags & (1 << bit))
        parts.append(Partition(label.rstrip(b"\x00").decode(), t, s, size, off, names))
    raise ValueError("partition table has no end marker")


def spiffs_live_pages(nbytes: int, name: str = "/model.tflite") -> int:
    """Pages one file of ``nbytes`` occupies in SPIFFS: its data pages plus its object index pages.

    The page layout of SPIFFS (and of ESP-IDF's spiffsgen.py) for the default geometry: a data page carries
    256 - 5 bytes; the file's first index page (with the name and metadata) lists (256 - 49) // 2 data pages,
    each further one (256 - 8) // 2.
    """
    if len(name) >= SPIFFS_NAME_LEN:
        raise UserError(f"SPIFFS file name {name!r} is longer than {SPIFFS_NAME_LEN - 1} characters.")
    data_len = SPIFFS_PAGE - 5
    head_ids = (SPIFFS_PAGE - (8 + 4 + 1 + SPIFFS_NAME_LEN + SPIFFS_META_LEN)) // 2
    more_ids = (SPIFFS_PAGE - 8) // 2
    data_pages = max(1, math.ceil(nbytes / data_len))
    return data_pages + 1 + math.ceil(max(0, data_pages - head_ids) / more_ids)


def _usable_pages_per_block() -> int:
    """Pages of a block that can hold file pages: the rest is the block's object lookup table (1 page)."""
    pages_per_block = SPIFFS_BLOCK // SPIFFS_PAGE
    return pages_per_block - math.ceil(pages_per_block * 2 / SPIFFS_PAGE)


def spiffsgen_blocks(nbytes: int, name: str = "/model.tflite") -> int:
    """The fewest blocks ESP-IDF's spiffsgen.py (the idf.py path) builds the image in: it writes every page
    once, packed, so the live pages fill whole blocks and nothing else is needed."""
    return math.ceil(spiffs_live_pages(nbytes, name) / _usable_pages_per_block())


def mkspiffs_blocks(nbytes: int, name: str = "/model.tflite") -> int:
    """Blocks mkspiffs 0.2.3 (PlatformIO's `pio run -t buildfs`) needs for the file; measured, not derived.

    mkspiffs does not lay pages out: it writes the file through the SPIFFS library one byte at a time. Every
    256-byte flush of SPIFFS's write cache appends to the file and rewrites the file's index header page (its
    size field), leaving the old copy deleted (with room to spare: one deleted page per flush, 15,995 for the
    4,061,480 B model), and garbage collection only cleans blocks once no more than 3 free blocks are left. In
    the smallest partition that works the finished image still carries about one deleted page for every four
    live ones (`mkspiffs -i`: 4,103 deleted beside 16,313 live pages for that model), and SPIFFS never writes
    into its last 2 blocks (spiffs_gc_check counts block_count - 2). Hence: live pages x 5/4, plus one page in
    256 for the slow drift above 5/4 measured on large files, plus SPIFFS's 2 blocks and 1 block of margin.
    Against the minimum found by bisection with the real mkspiffs for 1 B ... 9 MB files this is 1-7 blocks
    over and never under (tests/test_spiffs_image.py rechecks it with mkspiffs built from ../shared/sdk).
    """
    live = spiffs_live_pages(nbytes, name)
    pages = live + math.ceil(live / 4) + math.ceil(live / 256)
    return math.ceil(pages / _usable_pages_per_block()) + 2 + 1


def spiffs_size_for(nbytes: int, name: str = "/model.tflite") -> int:
    """Bytes of a SPIFFS partition that holds one file of ``nbytes`` whichever tool builds the image.

    Both build paths must fit: idf.py's spiffsgen.py (compact: spiffsgen_blocks + SPIFFS_SPARE_BLOCKS) and
    PlatformIO's mkspiffs (about 25 % more: mkspiffs_blocks), so a user's own `pio run -t buildfs` or
    `-t uploadfs` works too. UserError when SPIFFS's 16-bit page index cannot address the partition.
    """
    blocks = max(spiffsgen_blocks(nbytes, name) + SPIFFS_SPARE_BLOCKS, mkspiffs_blocks(nbytes, name))
    size = blocks * SPIFFS_BLOCK
    if size // SPIFFS_PAGE > SPIFFS_MAX_PAGES:
        raise UserError(f"a {nbytes:,}-byte model needs a {size:,}-byte SPIFFS partition, more than SPIFFS with "
                        f"{SPIFFS_PAGE}-byte pages can address (16 MB); use --storage partition.")
    return size


def model_image(model: bytes) -> bytes:
    """Header (magic, version, header size, length, flags, sha256) + model, for a raw model partition."""
    head = MODEL_IMAGE_HEADER.pack(MODEL_IMAGE_MAGIC, MODEL_IMAGE_VERSION, MODEL_IMAGE_HEADER.size, len(model), 0,
                                   hashlib.sha256(model).digest())
    return head + model


def read_model_image(blob: bytes) -> tuple[bytes, dict[str, object]]:
    """(model, header fields) of a raw model partition image; ValueError says what is wrong."""
    if len(blob) < MODEL_IMAGE_HEADER.size:
        raise ValueError("model partition is shorter than its header")
    magic, version, head, length, flags, sha = MODEL_IMAGE_HEADER.unpack_from(blob)
    if magic != MODEL_IMAGE_MAGIC:
        raise ValueError(f"model partition has no model (magic {magic!r}); flash the model image")
    if version != MODEL_IMAGE_VERSION or head != MODEL_IMAGE_HEADER.size:
        raise ValueError(f"model image version {version} (header {head} bytes) is not supported")
    if head + length > len(blob):
        raise ValueError(f"model image says {length} bytes, the partition holds {len(blob) - head}")
    model = bytes(blob[head : head + length])
    if hashlib.sha256(model).digest() != sha:
        raise ValueError("model sha256 does not match the model image header")
    return model, {"version": version, "bytes": length, "sha256": sha.hex(), "flags": flags}
