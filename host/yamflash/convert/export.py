"""The one export step every producer of a model ends with (convert, train through convert's write_model, distill):
an INT8 .tflite in, model.tflite + model.json (+ the producer's own files) out.

``prepare`` checks the final model in TFLite Micro (every op has a kernel) and builds the fields every exported
model has: file, I/O, frontend, labels, ops, the host's arena and the chip's (target/chip_arena.py, where
../shared/sdk is). The producer then measures what it wants with ``Export.micro`` (fidelity, clip accuracy) and
``Export.write``s it all at once: both files or neither, so a model.json never describes a model.tflite that is
not there.
"""

from __future__ import annotations

import hashlib
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__, manifest
from ..errors import UserError
from ..frontend import PARAMS
from ..progress import log as default_log


@dataclass
class Export:
    """A model ready to write: the final bytes, TFLite Micro on them, and model.json's common fields."""

    tflite: bytes
    micro: Any  # model.tflm.MicroModel of ``tflite``
    report: dict[str, Any]  # chip.inspect's report (op counts, parameters, MACs, host arena)
    record: dict[str, Any]  # model_record's fields

    def write(self, out: str | Path, fields: dict[str, Any], files: dict[str, bytes | str] | None = None
              ) -> dict[str, Any]:
        """model.tflite + model.json (the common fields, then ``fields``) + ``files`` (name -> content) in
        ``out``, all or nothing; returns model.json's content."""
        m = self.record | fields
        out = Path(out)
        manifest.write_all({out / "model.tflite": self.tflite, out / "model.json": manifest.dumps(m),
                            **{out / name: data for name, data in (files or {}).items()}}, flag="--out")
        return m


def prepare(tflite: bytes, names: list[str], labels_source: str | None, log: Any = default_log) -> Export:
    """The TFLite Micro check and the common manifest fields of the final model bytes; UserError when TFLite
    Micro lacks an op."""
    from ..chip.inspect import inspect
    from ..model.tflm import MicroModel

    with tempfile.TemporaryDirectory() as td:  # inspect reads a file; nothing lands in `out` until the end
        (Path(td) / "model.tflite").write_bytes(tflite)
        report = inspect(Path(td) / "model.tflite")
    if report["tflm_missing_ops"]:
        raise UserError(f"internal: converted model uses ops TFLite Micro lacks: {report['tflm_missing_ops']}")
    micro = MicroModel(tflite)
    return Export(tflite, micro, report, model_record(tflite, report, micro, names, labels_source, log))


def model_record(tflite: bytes, report: dict[str, Any], micro: Any, names: list[str],
                 labels_source: str | None, log: Any = default_log) -> dict[str, Any]:
    """The manifest fields every exported model has (convert, train, distill): file, I/O, frontend, ops, arena."""
    import tflite_micro

    si, zi = micro.input_quant
    so, zo = micro.output_quant
    rec = {
        "schema": manifest.SCHEMA,
        "generator": f"yamflash {__version__}",
        "model": {"file": "model.tflite", "bytes": len(tflite), "sha256": hashlib.sha256(tflite).hexdigest()},
        "input": {"shape": [1, 96, 64], "dtype": "int8", "scale": si, "zero_point": zi, "kind": "log-mel patch"},
        "output": {"shape": [1, len(names)], "dtype": "int8", "scale": so, "zero_point": zo,
                   "activation": "sigmoid"},
        "frontend": PARAMS.to_dict(),
        "labels": names,
        "labels_source": labels_source,
        "ops": sorted(report["op_counts"]),
        "op_counts": report["op_counts"],
        "parameters": report["parameters"],
        "macs_per_patch": report["macs"],
        "arena_bytes": report["arena_bytes"],
        "arena_measured_on": f"host {platform.machine()}, tflite-micro {tflite_micro.__version__}",
    }
    # The chip's arena beside the host's: ESP-NN's scratch buffers, measured where ../shared/sdk is (arena.py).
    from ..target.arena import manifest_arena
    from ..target.chip_arena import measure

    rec["arena"] = manifest_arena(report["arena_bytes"], tflite, measure(rec, tflite, log))
    return rec


def tool_versions() -> dict[str, str]:
    import tensorflow as tf
    import tflite_micro

    return {"tensorflow": tf.__version__, "tflite_micro": tflite_micro.__version__,
            "python": platform.python_version()}
