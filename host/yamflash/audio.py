"""Audio in: any file libsndfile can decode, any rate or channel count, out as 16 kHz mono float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import UserError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode, mix down to mono and resample (soxr, high quality) to ``sample_rate``."""
    import soundfile as sf

    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises several types; all mean "cannot decode"
        raise UserError(f"cannot decode audio file {path}: {exc}. Use WAV/FLAC/OGG audio.") from None
    if data.size == 0:
        raise UserError(f"audio file {path} has no samples; remove it or record a longer clip.")
    mono = data.mean(axis=1)
    if rate != sample_rate:
        import soxr

        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


def list_audio(folder: str | Path) -> list[Path]:
    """Audio files below ``folder``, sorted so that seeded draws are reproducible."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; pass a folder of audio files.")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in {folder}; add some or pick another folder.")
    return files
