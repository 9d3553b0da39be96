"""The virtual board: the flashed firmware's behaviour on a pseudo-terminal, for CI and for `make demo`."""

from __future__ import annotations

from .device import VirtualBoard
from .process import DEFAULT_FLASH, SimProcess, find_running, spawn

__all__ = ["DEFAULT_FLASH", "SimProcess", "VirtualBoard", "find_running", "spawn"]
