"""Command lines the tests share with the Makefile (imported by conftest and tests; not a test module)."""

from __future__ import annotations

from pathlib import Path


def convert_args(weights: Path, calib_dir: Path, class_map: Path) -> list[str]:
    """`make convert`'s arguments (Makefile: --calib-dir $(CALIB_DIR) --labels <class map>), so the test suite's
    conversion is the one `make demo` and `make flash` find in the conversion cache."""
    return ["--weights", str(weights), "--calib-dir", str(calib_dir), "--labels", str(class_map)]
