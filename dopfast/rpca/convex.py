"""The DOP paper's eq. (8) solved by a general convex solver through cvxpy (small problems only).

``min ‖X‖* + λ‖S‖₁ s.t. X + S = Y`` (and ``X ⪰ 0`` with ``psd=True``). cvxpy turns the nuclear norm into a
semidefinite program whose size grows as (m + n)²: at n = 50 the Clarabel solver takes about 45 s on the
development machine, so sizes above ``MAX_SIZE`` are refused (use the ADMM solver in ``pcp.py`` instead).
"""

from __future__ import annotations

import math

import numpy as np

MAX_SIZE = 64


def solve_convex(y: np.ndarray, lam: float | None = None, psd: bool = False, solver: str | None = None):
    """Returns ``(X, S, status)`` as NumPy arrays. Needs cvxpy (``pip install cvxpy``)."""
    try:
        import cvxpy as cp
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("method='convex' needs cvxpy: pip install cvxpy") from exc
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"solve_convex: y must be a matrix, got shape {y.shape}")
    m, n = y.shape
    if max(m, n) > MAX_SIZE:
        raise ValueError(f"method='convex' (cvxpy) is limited to matrices of at most {MAX_SIZE} rows and columns, "
                         f"got {m}×{n}; use method='pcp' (ADMM, same optimum) or method='dop'")
    if psd and m != n:
        raise ValueError(f"solve_convex: psd=True needs a square y, got shape {y.shape}")
    lam = 1.0 / math.sqrt(max(m, n)) if lam is None else float(lam)
    x = cp.Variable((m, n), PSD=True) if psd else cp.Variable((m, n))
    s = cp.Variable((m, n))
    problem = cp.Problem(cp.Minimize(cp.normNuc(x) + lam * cp.sum(cp.abs(s))), [x + s == y])
    if solver is None:
        solver = "CLARABEL" if "CLARABEL" in cp.installed_solvers() else None
    problem.solve(solver=solver)
    if x.value is None:
        raise RuntimeError(f"the convex solver failed: status {problem.status}")
    return np.asarray(x.value), np.asarray(s.value), problem.status
