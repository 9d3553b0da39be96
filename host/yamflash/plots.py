"""One PNG per validated clip, laid out like YAMNet's own tutorial: waveform, log-mel, class scores over time.

What the board computed is what is drawn (its frontend's patches, its scores), so a person can see at a
glance whether the board hears what the clip holds. matplotlib is an optional extra (``yamflash[plot]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError

TOP_CLASSES = 10
FRAME_S = 0.01  # frame hop
HOP_S = 0.48  # patch hop
PATCH_S = 0.96  # patch length (96 frames)


def patch_sequence(patches_q: np.ndarray, hop: int = 48) -> np.ndarray:
    """Contiguous [frames, 64] spectrogram from overlapping patches: all of the first, then each one's new hop."""
    p = np.asarray(patches_q)
    if not len(p):
        return np.zeros((0, p.shape[-1] if p.ndim == 3 else 64), p.dtype)
    return np.concatenate([p[0]] + [q[-hop:] for q in p[1:]])


def clip_figure(clip: Any, ref: Any, out: str | Path, top: int = TOP_CLASSES) -> Path:
    """Write the clip's PNG (atomically) and return its path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("plots need matplotlib: pip install 'yamflash[plot]' (or drop --plots).") from None
    from .frontend import dequantize
    from .manifest import atomic_write

    si, zi = ref.in_q
    so, zo = ref.out_q
    scores = dequantize(clip.board_pcm_q, so, zo)  # [n, classes]
    spec = dequantize(patch_sequence(clip.board_patches), si, zi)  # [frames, 64]
    order = np.argsort(-scores.mean(0))[:top]
    wave = clip.pcm.astype(np.float32) / 32768.0
    seconds = len(wave) / 16000.0
    fig, ax = plt.subplots(3, 1, figsize=(10, 8), sharex=True, gridspec_kw={"height_ratios": [1, 1.3, 1.6]})
    ax[0].plot(np.arange(len(wave)) / 16000.0, wave, lw=0.5)
    ax[0].set_ylabel("waveform")
    ax[0].set_title(f"{clip.name}: board frontend and scores ({len(scores)} patches)")
    # No lines at patch boundaries: the spectrogram is continuous (each patch adds its new 0.48 s).
    ax[1].imshow(spec.T, aspect="auto", origin="lower", interpolation="nearest",
                 extent=(0, len(spec) * FRAME_S, 0, spec.shape[1]))
    ax[1].set_ylabel("log-mel band\n(board patches)")
    # On the same time axis: patch i covers [i*hop, i*hop + 0.96 s], so its column sits at its centre.
    ax[2].imshow(scores[:, order].T, aspect="auto", interpolation="nearest", cmap="gray_r", vmin=0, vmax=1,
                 extent=(PATCH_S / 2 - HOP_S / 2, PATCH_S / 2 - HOP_S / 2 + len(scores) * HOP_S,
                         len(order) - 0.5, -0.5))
    ax[2].set_yticks(range(len(order)), [ref.labels[int(i)] for i in order])
    ax[2].set_xlabel("time (s); each score column centred on its 0.96 s patch, one every 0.48 s")
    ax[2].set_title(f"top {len(order)} classes by mean score (board, int8)")
    ax[2].set_xlim(0, max(seconds, len(spec) * FRAME_S))
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    out = Path(out)
    atomic_write(out, buf.getvalue())
    return out
