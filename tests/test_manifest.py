"""model.json as one typed, versioned ModelManifest: load/dump round-trips the file as written, the schema is
checked first (older and newer files refused with what to do), then the fields every later step reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from simboard import model_dir
from yamflash.errors import UserError
from yamflash.manifest import SCHEMA, ModelManifest


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    return model_dir(tmp_path / "m") / "model.json"


def _rewrite(path: Path, **changes: object) -> Path:
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))
    return path


def test_round_trip_keeps_the_document(tiny: Path, tmp_path: Path) -> None:
    doc = json.loads(tiny.read_text())
    doc["fidelity"] = {"patches": 3, "note": "kept as written"}  # a field no consumer types
    tiny.write_text(json.dumps(doc))
    m = ModelManifest.load(tiny)
    assert (m.num_classes, m.output.activation, m.input.quant) == (8, "sigmoid", (0.05, 20))
    assert m.model_path == tiny.parent / "model.tflite" and m.read_model()[:8]
    m.dump(tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text()) == doc
    m.labels[1] = "renamed"  # typed fields are what gets written
    assert m.to_dict()["labels"][1] == "renamed"


@pytest.mark.parametrize(("schema", "says"), [
    (None, "no schema number"), (0, "from an older yamflash"), (SCHEMA + 1, "written by a newer yamflash"),
    ("1", "no schema number"),
])
def test_other_schemas_are_refused_with_what_to_do(tiny: Path, schema: object, says: str) -> None:
    with pytest.raises(UserError, match=says) as e:
        ModelManifest.load(_rewrite(tiny, schema=schema))
    assert "yamflash convert" in str(e.value) and "\n" not in str(e.value)


def test_a_wrong_field_is_named(tiny: Path) -> None:
    with pytest.raises(UserError, match="field 'output.scale' must be a positive number"):
        ModelManifest.load(_rewrite(tiny, output={"shape": [1, 8], "dtype": "int8", "scale": 0, "zero_point": 0,
                                                  "activation": "sigmoid"}))


def test_model_file_must_match(tiny: Path) -> None:
    (tiny.parent / "model.tflite").write_bytes(b"TFL3 but another model")
    with pytest.raises(UserError, match="does not match"):
        ModelManifest.load(tiny).read_model()
    (tiny.parent / "model.tflite").unlink()
    with pytest.raises(UserError, match="is missing"):
        ModelManifest.load(tiny).read_model()


def test_what_the_firmware_cannot_run_is_refused(tiny: Path) -> None:
    doc = json.loads(tiny.read_text())
    with pytest.raises(UserError, match="8 outputs"):
        ModelManifest.load(_rewrite(tiny, labels=doc["labels"][:5])).check_firmware()
    with pytest.raises(UserError, match="frontend the firmware core does not implement"):
        ModelManifest.load(_rewrite(tiny, labels=doc["labels"], frontend={**doc["frontend"], "num_mel_bins": 40})) \
            .check_firmware()
