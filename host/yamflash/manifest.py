"""model.json: the manifest every step after conversion reads (gen, flash, monitor, validate, bench, the virtual
board), as one typed, versioned ``ModelManifest``.

The fields those steps rely on are typed attributes, checked on load (the first wrong field is one UserError
line); everything else a writer adds (fidelity, weights, calibration, the chip's arena, training) stays in
``doc`` and is written back unchanged, so the JSON on disk keeps its shape. ``schema`` says which shape:
a file of another schema is refused with what to do, since every model.json is rebuilt by `yamflash convert`
(or train/distill) in seconds from its cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .outputs import atomic_write, write_all  # noqa: F401  (one writer for every command's outputs)

SCHEMA = 1
AGAIN = "run `yamflash convert` again (or train/distill, whichever made it)"


def dumps(manifest: dict[str, Any] | ModelManifest) -> str:
    doc = manifest.to_dict() if isinstance(manifest, ModelManifest) else manifest
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def write(path: str | Path, manifest: dict[str, Any] | ModelManifest) -> None:
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
    """model.json as a checked dict (``ModelManifest.load(path).doc``), for code that reads optional fields."""
    return ModelManifest.load(path).doc


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
                raise UserError(f"{path}: field {key!r} is missing; {AGAIN} (or fix the file).")
            node = node[part]
        if not ok(node):
            raise UserError(f"{path}: field {key!r} must be {kind}, not {json.dumps(node)[:60]}; "
                            f"{AGAIN} (or fix the file).")


def check_schema(m: Any, path: str | Path) -> None:
    """A model.json of this schema, or one line saying why not and what to do."""
    v = m.get("schema") if isinstance(m, dict) else None
    if not _is_int(v):
        what = "no schema number" if isinstance(m, dict) else "not a JSON object"
        raise UserError(f"{path} is not a yamflash model.json of schema {SCHEMA} ({what}); {AGAIN}.")
    if v > SCHEMA:
        raise UserError(f"{path} has model.json schema {v}, written by a newer yamflash than this one (schema "
                        f"{SCHEMA}); upgrade yamflash, or {AGAIN} with this one.")
    if v != SCHEMA:
        raise UserError(f"{path} has model.json schema {v}, from an older yamflash (this one reads schema {SCHEMA}); "
                        f"{AGAIN}.")


@dataclass
class ModelFile:
    """model.json's "model": the .tflite beside it, by name, size and sha256."""

    file: str
    bytes: int
    sha256: str


@dataclass
class TensorInfo:
    """The int8 input or output tensor: shape and quantization (``real = scale * (q - zero_point)``)."""

    shape: list[int]
    dtype: str
    scale: float
    zero_point: int
    activation: str | None = None  # the output's ("sigmoid")

    @property
    def quant(self) -> tuple[float, int]:
        return self.scale, self.zero_point


@dataclass
class ModelManifest:
    """A checked model.json. Typed: what gen, flash, monitor, validate, bench and the virtual board read;
    ``doc``: the whole document as on disk (typed fields are written back into it by ``to_dict``)."""

    model: ModelFile
    input: TensorInfo
    output: TensorInfo
    frontend: dict[str, Any]
    labels: list[str]
    ops: list[str]
    arena_bytes: int  # TFLite Micro on the host (reference kernels); the chip's figure is in ``chip_arena``
    doc: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # where it was loaded from (the model file is beside it)

    @classmethod
    def from_dict(cls, m: Any, path: str | Path = "model.json") -> ModelManifest:
        """Schema and field checks (UserError naming the first problem), then the typed view."""
        check_schema(m, path)
        check_fields(m, path)

        def tensor(t: dict[str, Any]) -> TensorInfo:
            return TensorInfo(list(t["shape"]), t["dtype"], float(t["scale"]), int(t["zero_point"]),
                              t.get("activation"))

        mm = m["model"]
        return cls(ModelFile(mm["file"], mm["bytes"], mm["sha256"]), tensor(m["input"]), tensor(m["output"]),
                   dict(m["frontend"]), list(m["labels"]), list(m["ops"]), int(m["arena_bytes"]), m, Path(path))

    @classmethod
    def load(cls, path: str | Path) -> ModelManifest:
        path = Path(path)
        m = read_json(path, f"{path} does not exist; run `yamflash convert` first.",
                      f"{path} is not a readable model.json ({{exc}}); {AGAIN}.")
        return cls.from_dict(m, path)

    def to_dict(self) -> dict[str, Any]:
        """The document to write: ``doc`` with the typed fields in their places (key order kept)."""
        out = dict(self.doc)
        out.setdefault("schema", SCHEMA)
        out["model"] = {**out.get("model", {}), "file": self.model.file, "bytes": self.model.bytes,
                        "sha256": self.model.sha256}
        for key, t in (("input", self.input), ("output", self.output)):
            extra = {k: v for k, v in (("activation", t.activation),) if v is not None}
            out[key] = {**out.get(key, {}), "shape": list(t.shape), "dtype": t.dtype, "scale": t.scale,
                        "zero_point": t.zero_point, **extra}
        out.update(frontend=dict(self.frontend), labels=list(self.labels), ops=list(self.ops),
                   arena_bytes=self.arena_bytes)
        return out

    def dump(self, path: str | Path) -> None:
        write(path, self)

    @property
    def num_classes(self) -> int:
        return self.output.shape[-1]

    @property
    def model_path(self) -> Path:
        return (self.path.parent if self.path else Path(".")) / self.model.file

    @property
    def chip_arena(self) -> dict[str, Any] | None:
        """"arena": the chip's figures (ESP-NN scratch included) when convert measured them (target/arena.py)."""
        a = self.doc.get("arena")
        return a if isinstance(a, dict) else None

    @property
    def weights_path(self) -> str | None:
        """The weights the model was converted from (validate rebuilds the float model from them)."""
        w = self.doc.get("weights")
        p = w.get("path") if isinstance(w, dict) else None
        return str(p) if p else None

    @property
    def trained(self) -> bool:
        """A head trained by `yamflash train`/`distill` (its float weights are not stored)."""
        return "training" in self.doc

    def read_model(self) -> bytes:
        """The .tflite beside model.json, checked against its size and sha256."""
        where = self.path or "model.json"
        try:
            data = self.model_path.read_bytes()
        except OSError:
            raise UserError(f"{self.model_path} (named by {where}) is missing; {AGAIN}.") from None
        sha = hashlib.sha256(data).hexdigest()
        if sha != self.model.sha256 or len(data) != self.model.bytes:
            raise UserError(f"{self.model_path} does not match {where} (sha256 {sha[:12]}..., {len(data)} bytes); "
                            f"{AGAIN}.")
        return data

    def check_firmware(self) -> None:
        """What the firmware core can run: yamflash's frontend, int8 in and out, one label per output."""
        from .frontend import PARAMS

        where = self.path or "model.json"
        want = PARAMS.to_dict()
        if {k: self.frontend.get(k) for k in want} != want:
            raise UserError(f"{where} describes a frontend the firmware core does not implement ({self.frontend}); "
                            f"convert with yamflash's YAMNet frontend.")
        if self.input.dtype != "int8" or self.output.dtype != "int8":
            raise UserError("the firmware runs int8 models only; run `yamflash convert`.")
        if len(self.labels) != self.num_classes:
            raise UserError(f"{where} has {len(self.labels)} labels for {self.num_classes} outputs.")


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
