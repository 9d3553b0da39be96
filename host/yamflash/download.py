"""Google's yamnet.h5 and class map, fetched once into the user cache with a progress bar and a checksum."""

from __future__ import annotations

import contextlib
import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from .cachedir import cache_root
from .errors import UserError
from .manifest import atomic_write

FILES = {
    "yamnet.h5": "https://storage.googleapis.com/audioset/yamnet.h5",
    "yamnet_class_map.csv": "https://raw.githubusercontent.com/tensorflow/models/master/"
    "research/audioset/yamnet/yamnet_class_map.csv",
}
# sha256 of each file as published. The class map's is the same file as ../shared/data/models/; yamnet.h5's
# was recorded by a public project's download log of the same URL (this machine has no internet to re-check),
# so a mismatch message says how to go on with a copy the user trusts.
SHA256 = {"yamnet_class_map.csv": "cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2",
          "yamnet.h5": "13c3308955bbfaef262f175ac9c40e47b134573a93984f009220dd7cc12a1744"}


def cache_dir() -> Path:
    return cache_root()


def fetch(name: str, timeout: float = 20.0) -> Path:
    dest = cache_dir() / name
    if dest.is_file():
        return dest
    url = FILES[name]
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            h, chunks = hashlib.sha256(), []
            with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                          TransferSpeedColumn(), transient=True) as bar:
                task = bar.add_task(f"downloading {name}", total=total)
                while chunk := resp.read(1 << 16):
                    h.update(chunk)
                    chunks.append(chunk)
                    bar.update(task, advance=len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"cannot download {name} from {url} ({reason}); download it yourself and pass "
                        f"--weights /path/to/yamnet.h5 (with make: WEIGHTS=/path/to/yamnet.h5; "
                        "a YAMNet .tflite also works).") from None
    if name in SHA256 and h.hexdigest() != SHA256[name]:
        raise UserError(f"downloaded {name} has sha256 {h.hexdigest()}, expected {SHA256[name]} (nothing was "
                        f"saved); try again, or download {url} yourself and pass --weights (make: WEIGHTS=).")
    atomic_write(dest, b"".join(chunks))
    return dest


def default_weights() -> Path:
    w = fetch("yamnet.h5")
    with contextlib.suppress(UserError):  # labels are optional; the manifest then names classes by index
        fetch("yamnet_class_map.csv")
    return w
