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
