"""Where yamflash keeps what is expensive to remake (downloads, conversions, host builds of the chip's code):
``$YAMFLASH_CACHE``, else ``$XDG_CACHE_HOME/yamflash``, else ``~/.cache/yamflash``. Every entry is named by a
hash of its inputs, so a stale entry is never used, only left behind."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    if os.environ.get("YAMFLASH_CACHE"):
        return Path(os.environ["YAMFLASH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "yamflash"
