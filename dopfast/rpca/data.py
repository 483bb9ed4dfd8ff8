"""The DOP paper's synthetic robust-PCA data, and the recovery error it is judged by."""

from __future__ import annotations

import numpy as np
import torch


def rpca_problem(n: int, rank: int, corruption: float, sparse_std: float = 10.0, seed: int | None = 0,
                 dtype=torch.float64, m: int | None = None):
    """The DOP paper's robust-PCA data (§4.1): ``X* = U*U*ᵀ`` with ``U*`` n×rank iid N(0, 1), and ``S*`` with
    exactly ``round(corruption·n²)`` entries at uniformly random positions, iid N(0, sparse_std²).

    With ``m`` given, ``X* = U*V*ᵀ`` is m×n (the rectangular case). Returns ``(X*, S*, Y = X* + S*)``.
    """
    if not 0 <= corruption <= 1:
        raise ValueError(f"corruption must be in [0, 1], got {corruption}")
    gen = torch.Generator().manual_seed(seed if seed is not None else int(np.random.SeedSequence().entropy % 2**63))
    us = torch.randn(n if m is None else m, rank, generator=gen, dtype=dtype)
    vs = us if m is None else torch.randn(n, rank, generator=gen, dtype=dtype)
    x = us @ vs.T
    rows, cols = x.shape
    count = int(round(corruption * rows * cols))
    idx = torch.randperm(rows * cols, generator=gen)[:count]
    s = torch.zeros(rows * cols, dtype=dtype)
    s[idx] = sparse_std * torch.randn(count, generator=gen, dtype=dtype)
    s = s.view(rows, cols)
    return x, s, x + s


def relative_error(estimate, truth) -> float:
    """‖estimate − truth‖_F / ‖truth‖_F for arrays or tensors."""
    e = torch.as_tensor(np.asarray(estimate) if not isinstance(estimate, torch.Tensor) else estimate)
    t = torch.as_tensor(np.asarray(truth) if not isinstance(truth, torch.Tensor) else truth).to(e)
    return float(torch.linalg.matrix_norm(e - t) / torch.linalg.matrix_norm(t))


def synthetic_video(height: int, width: int, frames: int, seed: int = 0):
    """A static background (scikit-image's ``camera``, resized) with a bright square, a dark disc and a thin bar
    moving across it: ``(background (h, w), video (frames, h, w), foreground mask (frames, h, w))``. As a
    (pixels × frames) matrix the video is background (rank 1) plus foreground (sparse). ``seed`` is unused (the
    motion is deterministic); it is kept for the callers' uniform signature."""
    from skimage import data, transform

    background = transform.resize(data.camera().astype(np.float64) / 255.0, (height, width), anti_aliasing=True)
    video = np.repeat(background[None], frames, axis=0)
    mask = np.zeros_like(video, dtype=bool)
    yy, xx = np.mgrid[:height, :width]
    side = max(3, height // 6)
    for t in range(frames):
        s = t / max(frames - 1, 1)
        r0, c0 = int(0.15 * height), int(s * (width - side))  # bright square moving right
        sq = (yy >= r0) & (yy < r0 + side) & (xx >= c0) & (xx < c0 + side)
        video[t][sq] = 1.0
        cy, cx = int((0.4 + 0.4 * s) * height), int((0.8 - 0.6 * s) * width)  # dark disc moving down-left
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= (side // 2 + 1) ** 2
        video[t][disc] = 0.0
        bar = (xx >= int(s * (width - 2))) & (xx < int(s * (width - 2)) + 2) & (yy > height // 2)  # thin bar
        video[t][bar] = 0.9
        mask[t] = (sq | disc | bar) & (np.abs(video[t] - background) > 1e-6)
    return background, video, mask


def foreground_f1(sparse, foreground, threshold: float = 0.05) -> float:
    """F1 of the detected foreground ``|sparse| > threshold`` against the true one ``|foreground| > threshold``
    (``foreground`` = video − background; arrays of the same shape)."""
    detected = np.abs(np.asarray(sparse)) > threshold
    truth = np.abs(np.asarray(foreground)) > threshold
    hits = float((detected & truth).sum())
    return 2 * hits / max(float(detected.sum()) + float(truth.sum()), 1.0)
