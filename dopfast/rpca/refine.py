"""Refinement of a DOP robust-PCA estimate: rank from the spectral gap, then a hard-thresholded refit.

Plain DOP gradient descent approaches its limit (the convex solution of eq. 8) sublinearly and, at any finite
initialisation scale and step, stops a little short: errors of 1e-3 to 1e-2 on the paper's n = 50 data after
10⁴–10⁵ steps. Once it has separated the two parts, the estimate carries what exact recovery needs:

1. the rank: the spectrum of X̃ has a clear gap after the true rank (e.g. 22.6 then 1.7e-2 at r = 5);
2. the support of the corruption: corrupted entries have residuals ``|Y − X̃|`` of the corruption's size,
   clean ones of the estimate's error.

The refit keeps the entries judged clean, fits a rank-r̂ matrix ``U Vᵀ`` to them (imputation sweeps of four m × n ×
r̂ products each; exact alternating least squares, where each row of U, then of V, is an r̂ × r̂ least-squares
problem, at small rank or where the sweeps are slow), re-reads the support from the new residuals (clean residuals
fall to ~1e-12, corruptions keep their size) and repeats until the support stops changing (a row or column short of
r̂ + 2 clean entries has its factor row refitted by least absolute deviations first, :func:`_l1_rows`, where only a
few are short). While the support moves, each fit runs only until it changes by less than 3% of the threshold that
re-reads the support; the stable support is then fitted to full precision. For float64 data every sweep runs in
float32: on y while the fit need not go below 1e-4 of max|y|, below that on corrections to the factors around
their float64 residual (:class:`_Fitter`); residuals, thresholds and the certificate are float64. On exactly
recoverable data this reaches the truth to ~1e-13.

It is accepted only with a certificate that the refit gives itself, never by comparison with the DOP iterate
(a lower convex objective than an unconverged iterate certifies nothing):

- the refit is exact on the clean entries (relative residual ≤ ``fit_tol``);
- those entries over-determine the rank-r̂ matrix: every row and column keeps more than r̂ of them, and there
  are more than r̂(m + n − r̂) + max(m, n) (the unknowns plus slack) — for generic data a wrong low-rank
  matrix cannot fit that many entries exactly;
- the support is stable (re-reading it from the refit's residuals gives the same clean set) and consistent
  with the residual: every entry left out of the clean set has a residual at least ``gap`` times the largest
  clean one, so no entry sits on the fence;
- every factor row is pinned down by its clean entries (:func:`_pinned`): a fit above the true rank can add to
  the truth a block whose rows × columns are all flagged, exact on every clean entry and not ruled out by the
  count above;
- it is not beaten on the convex objective ``‖X‖* + λ‖P_Ω(Y − X)‖₁`` (the problem DOP's implicit bias solves)
  by any other point the attempt holds: the DOP iterate, the other ranks' refits and the probes' fits. Every
  ``X`` is feasible (with ``S = Y − X``), so a lower objective anywhere proves that the refit is not the convex
  solution; where the convex program recovers the truth uniquely, nothing has a lower objective than the truth.

This is not a proof of uniqueness. On small matrices with large corruptions (20 × 15, rank 2, 10% of entries
N(0, 10²)) a fit one rank above the truth can absorb a few corruptions into an extra rank-one block, exact on
every clean entry (such a block can be the refit's largest component: the probes below drop it, see
:func:`_without_localized`). Of 312 such fits (sizes 20 × 15 to 60 × 30, ranks 1–4) none is certified wrong
(3 were before the localized-component probe, 16 before the objective check); none in the sweeps at n ≥ 50.

Without a certificate the DOP estimate is kept; :func:`dopfast.rpca.fit_dop` then runs DOP further and tries
again.

Everything works from the factors (``X̃ = U Vᵀ``, U by rows, V whole) and through :class:`Rows`, so the same
code refines a matrix held by one process or split by rows over a process group: the SVD of X̃ is a
tall-skinny QR of U and an SVD of the small ``R Vᵀ``; the medians (of a strided sample of the residuals,
which the sample makes the same however the rows are split) and column order statistics are exact
collective selections; the V half of each least-squares sweep sums per-column normal equations over ranks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .rows import Rows


@dataclass
class Refinement:
    low_rank: Tensor | None  # None only inside _refit's result when it is not accepted
    rank: int
    accepted: bool
    reason: str
    sweeps: int
    factors: tuple[Tensor, Tensor] | None = None  # (rows of U, V whole) with low_rank = U Vᵀ, when accepted
    objective: float = math.inf  # ‖X‖* + λ‖P_Ω(y − X)‖₁ at the attempt's final iterate X (inside _refit's result)


def spectral_gap_rank(singular_values: Tensor, max_rank: int) -> int:
    """The rank at the largest ratio between consecutive singular values (within ``max_rank``)."""
    sv = singular_values[: max_rank + 1]
    sv = sv[sv > sv[0] * 1e-12] if sv.numel() and sv[0] > 0 else sv[:0]
    if sv.numel() <= 1:
        return int(sv.numel())
    ratios = sv[:-1] / sv[1:]
    return int(torch.argmax(ratios)) + 1


def _grams(w: Tensor, other: Tensor) -> Tensor:
    """Per row i of ``w``, ``Σ_j w_ij other_j other_jᵀ`` (r × r): one GEMM against the r(r+1)/2 distinct
    products of other's columns (the Gram matrices are symmetric), then mirrored."""
    r = other.shape[1]
    a, b = torch.triu_indices(r, r, device=other.device)
    upper = _times(w, other[:, a] * other[:, b])
    gram = torch.empty(w.shape[0], r, r, dtype=w.dtype, device=w.device)
    gram[:, a, b] = upper
    gram[:, b, a] = upper
    return gram


def _solve(gram: Tensor, rhs: Tensor) -> Tensor:
    """The rows solving ``gram[i] f_i = rhs[i]`` (tiny ridge for safety); a row with no clean entry at all
    (zero gram) gets a zero factor row."""
    trace = gram.diagonal(dim1=1, dim2=2).sum(-1)
    empty = trace == 0
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    ridge = torch.where(empty, torch.ones_like(trace), _ridge(gram.dtype) * trace)
    f = torch.linalg.solve(gram + ridge[:, None, None] * eye, rhs.unsqueeze(-1)).squeeze(-1)
    return f.masked_fill(empty[:, None], 0)


def _ridge(dtype: torch.dtype) -> float:
    """The ridge relative to a Gram matrix's trace: 1e-13, or 16 ulps where the dtype resolves no less (the
    float32 coarse rounds: a row with only r observed entries has a singular Gram matrix)."""
    return max(1e-13, 16 * torch.finfo(dtype).eps)


def _small_solve(gram: Tensor, rhs: Tensor) -> Tensor:
    """``rhs @ inv(gram)`` for a symmetric r × r ``gram`` (tiny ridge for safety)."""
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    ridge = _ridge(gram.dtype) * gram.diagonal().sum().clamp_min(torch.finfo(gram.dtype).tiny)
    return torch.linalg.solve(gram + ridge * eye, rhs.mT).mT


def _clean_residual(y: Tensor, w: Tensor, u: Tensor, v: Tensor, out: Tensor | None = None) -> Tensor:
    """``w ∘ (y − U Vᵀ)`` in two passes (the GEMM accumulates into a copy of y), into ``out`` when given (a
    fresh m × n temporary costs more than the pass at 10⁶ entries and up: its pages are faulted in anew)."""
    return torch.addmm(y, u, v.mT, alpha=-1, out=out).mul_(w)


def _norm(t: Tensor, rows: Rows) -> float:
    """``rows.norm`` without its float64 copy of a float32 ``t`` (a coarse round's residual, whose entries are
    within float32's range; the CPU sums in float64 anyway): 0.12 ms against 0.47 ms at 10⁶ entries."""
    if t.dtype == torch.float64:
        return rows.norm(t)
    return float(rows.sum(torch.linalg.vector_norm(t).double().square().reshape(1))) ** 0.5


def _times(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` for a wide ``a`` and a thin ``b``, as ``(bᵀ aᵀ)ᵀ``: MKL runs that 2-2.5× faster on one thread
    (1000 × 1000 by 20 columns: 1.0 ms against 2.3 ms)."""
    return (b.mT @ a.mT).mT


IMPUTE_MIN_RANK = 8
LEAST_SQUARES_MAX_RANK = 32  # above it a least-squares sweep costs > 8 imputation sweeps: no handover
SLOW_RATE = 0.5  # an imputation sweep shrinking the change by less than this hands over to least squares


def _fit(y: Tensor, clean: Tensor, u: Tensor, v: Tensor, rows: Rows, max_sweeps: int, tol: float,
         stall_above: float | None = None, scratch: tuple[Tensor, Tensor] | None = None,
         y_norm: float | None = None, base: tuple[Tensor, Tensor] | None = None):
    """The rank-r least-squares fit ``min ‖clean ∘ (U Vᵀ − y)‖`` from (U, V): returns ``(u, v, sweeps,
    stalled)``.

    Imputation sweeps first (each fills the entries outside the clean set from the current fit and takes one
    alternating step on the filled matrix: ``U += E V (VᵀV)⁻¹``, then ``V += Eᵀ U (UᵀU)⁻¹`` with
    ``E = clean ∘ (y − U Vᵀ)``; four m × n × r products, monotone in the objective). With 10% of the entries
    left out each sweep shrinks the error several-fold; where it shrinks it by less than :data:`SLOW_RATE`
    (rows or columns mostly left out), the exact per-row least squares of :func:`_fit_als` (two products of
    m × n × r(r+1)/2 per sweep) take over up to rank :data:`LEAST_SQUARES_MAX_RANK`; below rank
    :data:`IMPUTE_MIN_RANK` they do all the sweeps (as cheap, and fewer). Sweeps end when ``U Vᵀ`` changes
    by less than ``tol`` relative.

    With ``stall_above``, the sweeps also end once the clean entries' relative residual, still above that
    level, has fallen by less than half over the last three sweeps: a rank below the truth settles at the
    size of the components it lacks, while an exact fit keeps falling geometrically.

    ``scratch``: two tensors like ``y`` the fit may overwrite (for the weights and the residual). ``y_norm``:
    what the residual is relative to, in place of the clean entries' norm: a round's fit passes the whole
    matrix's, which saves a pass per round; its crawl test then reads a floor up to ~1.5× lower (corruptions
    included in the norm), which can only make it stop later.

    ``base``: factors (U₀, V₀), with ``y`` the residual ``y₀ − U₀V₀ᵀ`` of the data y₀ (taken in higher precision):
    the fit is then of ``(U₀ + u)(V₀ + v)ᵀ`` to y₀, ``u, v`` are corrections (zero to start) and the corrections
    are returned. Every product is then a correction's size (:func:`_offset`), so a float32 fit keeps float32's
    precision relative to the corrections, not to ``U Vᵀ``. The Gram matrices and the solves then run in float64
    from the float32 factors (a float32 ridge of 2e-6 of the trace would freeze components below it: singular
    values spanning 1e6 stalled at a clean residual of 1e-6). ``y_norm`` is then required where ``stall_above``
    is given."""
    w, e = scratch if scratch is not None else (torch.empty_like(y), torch.empty_like(y))
    w.copy_(clean)
    if y_norm is not None:
        y_clean = y_norm
    else:
        assert base is None or stall_above is None, "a fit on corrections needs y_norm"
        y_clean = max(rows.norm(torch.mul(y, w, out=e)), 1e-300) if stall_above is not None else 1.0
    history: list[float] = []
    if u.shape[1] < IMPUTE_MIN_RANK:
        return _fit_als(y, w, u, v, rows, max_sweeps, tol, stall_above, y_clean, history, e, base)
    exact = y.dtype if base is None else torch.float64  # the r × r algebra (Gram matrices, solves)
    changes: list[float] = []
    whole_v = _whole(v, base, 1)
    for sweeps in range(1, max_sweeps + 1):
        _clean_residual(y, w, *_offset(u, v, base), e)
        state = _stalled(history, _norm(e, rows) / y_clean if stall_above is not None else None, stall_above)
        if state:
            return u, v, sweeps - 1, state == "stalled"
        du = _small_solve(_gram(whole_v, exact), _times(e, whole_v).to(exact)).to(y.dtype)
        u = u + du
        whole_u = _whole(u, base, 0)
        _clean_residual(y, w, *_offset(u, v, base), e)
        gu = rows.sum(_gram(whole_u, exact))
        dv = rows.agree(_small_solve(gu, rows.sum(_times(e.mT, whole_u).to(exact)))).to(y.dtype)
        changes.append(_change(du, whole_v, whole_u, dv, rows))
        v = v + dv
        whole_v = _whole(v, base, 1)
        if changes[-1] < tol:
            return u, v, sweeps, False
        if u.shape[1] <= LEAST_SQUARES_MAX_RANK and len(changes) >= 4 and changes[-1] > SLOW_RATE ** 2 * changes[-3]:
            u, v, more, stalled = _fit_als(y, w, u, v, rows, max_sweeps - sweeps, tol, stall_above, y_clean,
                                           history, e, base)
            return u, v, sweeps + more, stalled
    return u, v, max_sweeps, False


def _gram(f: Tensor, dtype: torch.dtype) -> Tensor:
    """``fᵀ f`` in ``dtype``."""
    f = f.to(dtype)
    return f.mT @ f


def _whole(t: Tensor, base: tuple[Tensor, Tensor] | None, side: int) -> Tensor:
    """The factor (U for ``side`` 0, V for 1) from what a fit iterates on: ``t`` itself, or ``base[side] + t``."""
    return t if base is None else base[side] + t


def _offset(u: Tensor, v: Tensor, base: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
    """Factors (L, R) of the part of the model a fit's ``y`` is compared with: ``U Vᵀ`` without a base; with a
    base (U₀, V₀) and corrections (u, v), ``(U₀ + u)(V₀ + v)ᵀ − U₀V₀ᵀ = u V₀ᵀ + (U₀ + u) vᵀ``: one GEMM of width
    2r, each of whose terms is a correction's size."""
    return (u, v) if base is None else (torch.cat([u, base[0] + u], 1), torch.cat([base[1], v], 1))


STALL_FALL = 0.5  # a probe whose residual falls by less than this factor over three sweeps has stalled
SLOW_SWEEPS = 10  # a fit whose clean residual has not halved in this many sweeps has stopped moving: ...
CRAWL_FLOOR = 1e-10  # ... stalled above this relative residual, settled at its rounding floor below it


def _stalled(history: list[float], residual: float | None, stall_above: float | None) -> str:
    """Record the clean entries' relative residual and say whether the fit should end: ``"stalled"`` when it
    is still above ``stall_above`` and has fallen by less than half over the last three sweeps, or has fallen
    by less than half over the last :data:`SLOW_SWEEPS` above :data:`CRAWL_FLOOR` (a rank above the truth
    creeps along, absorbing corruptions); ``"settled"`` when it has stopped falling below that floor (an exact
    fit at its rounding floor, 1e-12 for an ill-conditioned one); ``""`` to go on."""
    if residual is None:
        return ""
    history.append(residual)
    if len(history) > 3 and history[-1] > stall_above and history[-1] > STALL_FALL * history[-4]:
        return "stalled"
    if len(history) > SLOW_SWEEPS and history[-1] > 0.5 * history[-1 - SLOW_SWEEPS]:
        return "stalled" if history[-1] > CRAWL_FLOOR else "settled"
    return ""


def _fit_als(y: Tensor, w: Tensor, u: Tensor, v: Tensor, rows: Rows, max_sweeps: int, tol: float,
             stall_above: float | None, y_clean: float, history: list[float], out: Tensor | None = None,
             base: tuple[Tensor, Tensor] | None = None):
    """Alternating least squares for :func:`_fit` (weights ``w``, ``base`` as there): U by its (local) rows, V
    from normal equations summed over every rank's rows. ``out``: a tensor like ``y`` it may overwrite.

    On corrections each half-sweep solves for the step from the current residual instead (the same iterate), and
    the Gram matrices and solves run in float64 as in :func:`_fit` (from float64 weights made once per call)."""
    wy = torch.mul(w, y, out=out) if base is None else None
    w_exact = w if base is None else w.double()
    sweeps = 0
    for sweeps in range(1, max_sweeps + 1):  # noqa: B007 - the count is returned
        whole_v = _whole(v, base, 1)
        source = wy if base is None else _clean_residual(y, w, *_offset(u, v, base), out)
        try:
            step = _solve(_grams(w_exact, whole_v.to(w_exact.dtype)), _times(source, whole_v).to(w_exact.dtype))
            u_new, ok = (step if base is None else u + step.to(y.dtype)), True
        except (torch.linalg.LinAlgError, RuntimeError):
            ok = False
        if not rows.all(ok):  # every rank leaves together: no rank is left waiting in the next collective
            raise torch.linalg.LinAlgError("refinement: a least-squares solve failed")
        whole_u = _whole(u_new, base, 0)
        source = wy if base is None else _clean_residual(y, w, *_offset(u_new, v, base), out)
        step = rows.agree(_solve(rows.sum(_grams(w_exact.mT, whole_u.to(w_exact.dtype))),
                                 rows.sum(_times(source.mT, whole_u).to(w_exact.dtype))))
        v_new = step if base is None else v + step.to(y.dtype)
        change = _change(u_new - u, whole_v, whole_u, v_new - v, rows)
        u, v = u_new, v_new
        if change < tol:
            break
        state = _stalled(history, rows.norm(_clean_residual(y, w, *_offset(u, v, base))) / y_clean
                         if stall_above is not None else None, stall_above)
        if state:
            return u, v, sweeps, state == "stalled"
    return u, v, sweeps, False


def _change(du: Tensor, v: Tensor, u_new: Tensor, dv: Tensor, rows: Rows) -> float:
    """How far ``U Vᵀ`` moved in a sweep that changed U by ``du`` (with the old V), then V by ``dv`` (with the
    new U), relative to the new ``U Vᵀ``: ``√(‖ΔU Vᵀ‖² + ‖U ΔVᵀ‖²) / ‖U Vᵀ‖`` (the cross term left out: within
    √2), from r × r products. Each rank's share is summed in one all-reduce, so every rank branches on the same
    number. (In float64: float32 Gram products of data near 1e19 overflow.)"""
    du, v, u_new, dv = du.double(), v.double(), u_new.double(), dv.double()
    gu = u_new.mT @ u_new
    v_new = v + dv
    local = torch.stack([((du.mT @ du) * (v.mT @ v)).sum(), (gu * (dv.mT @ dv)).sum(), (gu * (v_new.mT @ v_new)).sum()])
    moved_u, moved_v, size = rows.sum(local.double()).tolist()
    return math.sqrt(max(moved_u + moved_v, 0.0) / max(size, 1e-300))


def factored_svd(u: Tensor, v: Tensor, rows: Rows) -> tuple[Tensor, Tensor, Tensor]:
    """SVD ``U Vᵀ = L diag(s) Zᵀ`` from the factors (U by rows, V whole): this rank's rows of L, s and Zᵀ."""
    q, r = rows.qr(u)
    w, s, zh = torch.linalg.svd(r @ v.mT, full_matrices=False)
    w, s, zh = rows.agree(w), rows.agree(s), rows.agree(zh)
    return q @ w, s, zh


def _psd_part(u: Tensor, v: Tensor, rows: Rows) -> tuple[Tensor, Tensor]:
    """Factors (rows, whole) of the positive semidefinite part of ``½(U Vᵀ + V Uᵀ)`` for square data, from a
    tall-skinny QR of ``[U, V]``: ``½(U Vᵀ + V Uᵀ) = Q (R J Rᵀ) Qᵀ`` with ``J = ½[[0, I], [I, 0]]``."""
    r = u.shape[1]
    q, rf = rows.qr(torch.cat([u, v[rows.rows]], dim=1))
    eye = torch.eye(r, dtype=u.dtype, device=u.device)
    zero = torch.zeros_like(eye)
    j = 0.5 * torch.cat([torch.cat([zero, eye], 1), torch.cat([eye, zero], 1)], 0)
    lam, w = torch.linalg.eigh(rf @ j @ rf.mT)
    lam, w = rows.agree(lam), rows.agree(w)
    half = q @ (w * lam.clamp_min(0).sqrt())
    return half, rows.gather_rows(half)


def _where(cond: Tensor, a: Tensor | float, b: Tensor | float, out: Tensor) -> Tensor:
    """``torch.where`` into ``out`` (no boolean-indexed copy: 48 ms against 5 ms at 3.8M entries)."""
    full = (lambda t: t if isinstance(t, Tensor) else torch.tensor(t, dtype=out.dtype, device=out.device))
    return torch.where(cond, full(a), full(b), out=out)


def _local_max(t: Tensor, empty: float = 0.0) -> Tensor:
    return (t.max() if t.numel() else torch.tensor(empty, dtype=torch.float64)).reshape(1).double()


def refine_low_rank(y: Tensor, u: Tensor, v: Tensor, psd: bool, rows: Rows | None = None,
                    max_rank: int | None = None, max_outer: int = 12, max_sweeps: int = 200,
                    max_total: int | None = None, fit_tol: float = 1e-9,
                    gap: float = 100.0, observed: Tensor | None = None, lam: float | None = None,
                    width_bound: bool = False) -> Refinement:
    """Refine DOP's low-rank estimate ``U Vᵀ`` of ``y``. See the module docstring.

    ``y`` and ``u`` are this process's rows (all of them without ``rows``), ``v`` is whole. The returned
    ``low_rank`` is this process's rows of the refit (or of ``U Vᵀ`` when no certificate holds). With an
    ``observed`` mask (bool, like ``y``) only observed entries can be clean: the refit, the thresholds and
    the certificate see nothing else, and the refit fills the missing entries.

    The refit is certified at the spectral gap's rank r̂ first (or, failing that, at r̂ − 1: the gap may sit
    one component late); then the ranks below it are probed: a larger rank can also fit the clean entries
    exactly by absorbing a block of the corruption that no clean entry pins down. The probes go downwards from
    r̂ − 1 with a small sweep budget until one fails (a rank below the truth cannot fit exactly and fails fast;
    a matrix of rank r − 1 is also one of rank r, so a rank that fails ends the search). Of the certified
    refits the one with the lowest convex objective ``‖X‖* + λ‖P_Ω(y − X)‖₁`` is returned (the smaller rank
    on a tie), and only if no other point the attempt holds has a lower one (``lam``: λ, by default
    ``1/√max(m, n)``, DOP's default ``1/alpha``).

    ``width_bound``: the factors' width is a bound on the rank (the user's ``rank``), so the truth may fill it
    and no gap after its last component can be read: where the gap's ranks fail, the full width is tried.
    """
    rows = Rows(y.shape[0], y.device) if rows is None else rows
    m, n = rows.total, y.shape[1]
    x_dop = (u, v.mT)  # U Vᵀ, formed only when it is returned
    max_rank = min(m, n) - 1 if max_rank is None else min(max_rank, min(m, n) - 1)
    if max_rank < 1:
        return Refinement(u @ v.mT, 0, False, "matrix too small to refine", 0)
    left, s, zh = factored_svd(u, v, rows)
    top = spectral_gap_rank(s, max_rank)
    if top == 0:
        return Refinement(u @ v.mT, 0, False, "zero low-rank estimate", 0)
    lam = 1 / math.sqrt(max(m, n)) if lam is None else lam
    # The lowest objective of a point that is not a certified refit: the DOP iterate, then every failed attempt's
    # and probe's final fit.
    res_dop = _residual(y, x_dop, observed)  # every attempt from X̃ reads its first clean set from these
    lowest = _objective(res_dop, s, lam, rows, observed)
    certified = []  # accepted refits, by decreasing rank

    def tried(attempt: Refinement) -> bool:
        nonlocal lowest
        if attempt.accepted:
            certified.append(attempt)
        else:
            lowest = min(lowest, attempt.objective)
        return attempt.accepted

    # The gap's rank; then one below it: the gap may sit one component late (a trailing component of an
    # unconverged X̃ that the truth lacks: a rank-(r̂+1) fit is not unique, and in the PSD model its projection
    # need not fit exactly); then, with width_bound, the full width. The first certified one ends the list.
    width = min(s.numel(), max_rank)
    ranks = [top] + [top - 1] * (top > 1) + [width] * (width_bound and width > top)
    sweeps = 0
    for r in ranks:
        attempt = _refit(y, res_dop, left, s, zh, r, psd, rows, max_outer, max_sweeps, fit_tol, gap, observed, lam,
                         max_total=max_total)
        sweeps += attempt.sweeps
        if tried(attempt):
            break
    if not certified:
        return Refinement(u @ v.mT, top, False, attempt.reason, sweeps)
    for r in range(certified[-1].rank - 1, 0, -1):  # downwards: a rank that cannot fit ends the search
        # Each probe starts from the last certified refit truncated to rank r, with the clean set read afresh
        # from that truncation's residuals (the refit's own clean set holds whatever corruptions it absorbed),
        # and gives up as soon as its fit stalls: a rank below the truth stalls at once, at the size of what it
        # lacks. Where that fails and one component is clearly localized (a block of absorbed corruptions, which
        # can be the largest component), the refit less that component is probed too.
        left, s, zh = factored_svd(*certified[-1].factors, rows)
        found = False
        for keep in (torch.arange(r, device=left.device), _without_localized(left, zh, r + 1, rows)):
            if keep is None:
                break
            probe = _refit(y, (left[:, keep] * s[keep], zh[keep]), left[:, keep], s[keep], zh[keep], r, psd, rows,
                           min(max_outer, 3), min(max_sweeps, 30), fit_tol, gap, observed, lam, probe=True)
            sweeps += probe.sweeps
            if tried(probe):
                found = True
                break
        if not found:
            break
    best = certified[0]
    for c in certified[1:]:  # the lowest objective; a tie (within rounding) goes to the smaller rank
        if c.objective <= best.objective * (1 + OBJECTIVE_SLACK):
            best = c
    if best.objective > lowest * (1 + OBJECTIVE_SLACK):
        return Refinement(u @ v.mT, best.rank, False, f"no certificate (another point has a lower convex objective: "
                          f"{lowest:.6g} against the refit's {best.objective:.6g})", sweeps)
    return Refinement(best.low_rank, best.rank, True, best.reason, sweeps)


LOCALIZED = 0.5  # a component is localized when its spread is below this fraction of the median component's


def _without_localized(left: Tensor, zh: Tensor, k: int, rows: Rows) -> Tensor | None:
    """The indices of the first ``k`` components less the most localized one, or None when none is clearly
    localized (or it is the last, which the plain truncation drops already). A component's spread is the
    geometric mean of its singular vectors' participation ratios ``1 / Σ_i x_i⁴`` relative to their lengths (about
    1/3 for a random vector; p/m for one on p of m rows); localized: below :data:`LOCALIZED` times the median."""
    if k < 3:
        return None
    fourth = rows.sum(left[:, :k].pow(4).sum(0))
    spread = ((1 / fourth.clamp_min(1e-300)) / rows.total * (1 / zh[:k].pow(4).sum(1).clamp_min(1e-300)) /
              zh.shape[1]).sqrt()
    worst = int(torch.argmin(spread))
    if worst == k - 1 or float(spread[worst]) >= LOCALIZED * float(spread.median()):
        return None
    return torch.tensor([i for i in range(k) if i != worst], device=left.device)


OBJECTIVE_SLACK = 1e-9  # relative: objectives closer than this are a tie (the refits' errors are ~1e-13)


def _objective(res: Tensor, sv: Tensor, lam: float, rows: Rows, observed: Tensor | None) -> float:
    """The convex objective ``‖X‖* + λ‖P_Ω(y − X)‖₁`` from X's singular values and ``res = |y − X|`` (+inf at
    the missing entries, which count nothing)."""
    l1 = rows.sum((res if observed is None else torch.where(observed, res, 0)).sum(dtype=torch.float64).reshape(1))
    return float(sv.double().sum()) + lam * float(l1)


FIT_BELOW = 3e-2  # a round's fit ends when U Vᵀ changes by less than this fraction of the threshold
FINAL_TOL = 1e-12  # the change in U Vᵀ, relative, at which the final fit ends (errors of ~1e-13 at n = 1000)
SINGLE_ABOVE = 1e-4  # a round whose fit need not go below this (relative to max|y|) runs in float32 on y itself
MIXED = True  # float64 data's fits run in float32 (on y above SINGLE_ABOVE, on corrections below): see _Fitter
CORRECTION_REACH = 1e-5  # a fit on corrections goes at most this far below its base's clean residual (float32
# keeps ~1e-7 of it), then takes a new base
THRESHOLD_FALL = 0.03  # the most the threshold falls in one round (0.1: ~10% slower at n = 1000; 0.01: 2x slower)
SAMPLE = 1 << 16  # entries a residual scale is read from


def _typical(res: Tensor, where: Tensor, rows: Rows) -> float:
    """The median of ``res`` over the entries ``where`` holds, read from a sample: every s-th entry of the
    whole matrix in row-major order, s the smallest step ≥ ⌊entries / SAMPLE⌋ that is coprime to the row
    length (so the sample visits every column once it holds n entries or more). Every entry when the matrix
    has fewer than 2·SAMPLE of them, or when the sample holds fewer than SAMPLE / 16 of ``where``. It sets a
    threshold's scale: the certificate never reads it (10⁶ entries: 1 ms against 14 ms exactly)."""
    n = res.shape[1]
    step = max(1, rows.total * n // SAMPLE)
    while math.gcd(step, n) > 1:
        step += 1
    if step > 1:
        start = (-rows.offset * n) % step  # the same global positions however the rows are split
        picked = res.reshape(-1)[start::step][where.reshape(-1)[start::step]]
        if int(rows.sum(torch.tensor([picked.numel()], device=picked.device))) >= SAMPLE // 16:
            return rows.median(picked)
    return rows.median(res[where])


def _enough_clean(y: Tensor, res: Tensor, clean: Tensor, seen: Tensor, u: Tensor, v: Tensor, need: int,
                  threshold: float, floor: float, rows: Rows) -> tuple[Tensor, Tensor, Tensor]:
    """The clean set with at least ``need`` (r + 2) entries in every row and column, and the factors: with fewer,
    a factor row is undetermined (the certificate still demands an over-determined clean set).

    Where at most one row in :data:`L1_SHARE` is short, the short rows' factor rows are refitted by least absolute
    deviations against V (:func:`_l1_rows`) and their clean entries read afresh from that fit (and ``res``
    updated); then likewise the short columns against U. Then every row and column still short takes its
    ``need`` smallest residuals, only adding entries, so both counts hold at the end. (A row with ``need``
    entries of {res ≤ threshold} already holds its ``need`` smallest: order statistics are taken only where
    some row or column is short.) Every branch that holds a collective is taken by every rank together."""
    short = clean.sum(1, dtype=torch.int32) < need
    count = int(rows.sum(short.sum(dtype=torch.int32).reshape(1)))
    if count and L1_SHARE * count <= rows.total and bool(short.any()):
        try:  # (this rank's rows only: no collective inside)
            f, part = _l1_rows(y[short], v, seen[short], floor, lambda t: t)
            u = u.clone()
            u[short], res[short], clean[short] = f, part, part <= threshold
        except (torch.linalg.LinAlgError, RuntimeError):
            pass  # the current residuals serve
    short = rows.sum(clean.sum(0, dtype=torch.int32)) < need
    count = int(short.sum())
    if count and L1_SHARE * count <= short.numel():
        f, part = _l1_rows(y[:, short].mT, u, seen[:, short].mT, floor, rows.sum)
        v = v.clone()
        v[short], part = rows.agree(f), part.mT
        res[:, short], clean[:, short] = part, part <= threshold
    short = clean.sum(1, dtype=torch.int32) < need
    if bool(short.any()):
        part = res[short]
        clean[short] |= part <= part.kthvalue(need, dim=1, keepdim=True).values
    short = rows.sum(clean.sum(0, dtype=torch.int32)) < need
    if bool(short.any()):
        part = res[:, short]
        clean[:, short] |= part <= rows.column_kth(part, need)
    return clean & seen, u, v


L1_SWEEPS = 10  # reweighting sweeps of a short row's or column's least-absolute-deviations refit
L1_SHARE = 4  # ... made only where at most 1 in L1_SHARE rows (columns) is short


def _l1_rows(y: Tensor, other: Tensor, seen: Tensor, floor: float, total) -> tuple[Tensor, Tensor]:
    """Per row i of ``y`` (k × n), the least-absolute-deviations fit ``f_i = argmin Σ_j |y_ij − f_i·other_j|``
    over the entries ``seen`` holds (iteratively reweighted least squares, weights 1/max(|residual|, floor)),
    and the residuals ``|y − f otherᵀ|`` (+inf where not seen). ``total`` sums the normal equations over what
    other processes hold (a column's other rows).

    A row is short of clean entries when its factor row was fitted to a clean set holding a few corruptions
    (30 entries, rank 3: a handful of N(0, 10²) corruptions carry the fit off, most of the row's residuals then
    exceed the threshold, and the smallest residuals of that fit keep a corruption for good). The ℓ1 fit
    against the other factor ignores a minority of gross errors, so the row's clean set is read afresh."""
    w = seen.to(y.dtype)
    f = res = None
    for _ in range(L1_SWEEPS):
        f = _solve(total(_grams(w, other)), total(_times(w * y, other)))
        res = torch.sub(y, f @ other.mT).abs_()
        w = torch.where(seen, 1 / res.clamp_min(floor), 0)
    return f, res.masked_fill_(~seen, math.inf)


PINNED = 1e-12  # the smallest eigenvalue of a row's or column's Gram matrix, relative to its trace


def _pinned(clean: Tensor, left: Tensor, s: Tensor, zh: Tensor, rows: Rows) -> bool:
    """Whether the clean entries pin down every factor row of ``U Vᵀ`` (given by its SVD ``left, s, zh``, from
    :func:`factored_svd`): for each row the Gram matrix of the right singular vectors over its clean entries, and for
    each column that of the left ones, is nonsingular (smallest eigenvalue above PINNED times the trace:
    ``G − PINNED·tr(G)·I`` has a Cholesky factor, 4x cheaper than the eigenvalues; the balanced factors' Gram
    matrices are congruent to these, singular together). A fit at a rank above the truth can be exact on the clean
    entries by adding to the truth L a block Δ = a bᵀ whose support rows × columns are all flagged: Δ vanishes on
    every clean entry, so the count of clean entries does not rule it out, but in each column of b's support no clean
    row carries a's direction, and that column's Gram matrix is singular.

    The Gram matrices are screened in float32 first: a float32 sum of n terms is within ``n·eps₃₂·tr(G)`` of the
    exact one (in spectral norm, via the Frobenius norm of the PSD sum of the terms' absolute values), so a float32
    Gram matrix whose smallest eigenvalue clears :func:`_screen_margin` times its trace is nonsingular; only the
    rows and columns it does not clear are formed again in float64 (n = 1000, rank 20: 15 ms against 40 ms)."""
    # rank-r factors (the PSD part's have r zero columns more)
    r = int((s > s[0] * 1e-12).sum()) if s.numel() and s[0] > 0 else 0
    u, v = left[:, :r], zh[:r].mT
    w32 = clean.to(torch.float32)
    ok = True
    for by_column in (False, True):  # rows (Gram matrices of V, this rank's), then columns (of U, summed over ranks)
        side, other, terms = (w32.mT, u, rows.total) if by_column else (w32, v, clean.shape[1])
        total = rows.sum if by_column else (lambda t: t)
        margin = _screen_margin(terms)
        unclear = torch.ones(side.shape[0], dtype=torch.bool, device=side.device)
        if margin * r < 0.5:  # (no Gram matrix has its smallest eigenvalue above 1/r of its trace)
            unclear = ~_clears(total(_grams(side, other.float())), margin)
            if by_column:  # every rank takes the same branch below (a Cholesky may differ in its last bit)
                unclear = rows.agree(unclear.to(torch.uint8)).bool()
        if bool(unclear.any()):
            part = clean[:, unclear].mT if by_column else clean[unclear]
            clear = _clears(total(_grams(part.to(other.dtype), other)), PINNED)  # (every rank sums)
            ok = bool(clear.all()) and ok
    return rows.all(ok)


def _screen_margin(terms: int) -> float:
    """The smallest eigenvalue, relative to the trace, that a float32 Gram matrix of ``terms`` terms must clear to
    prove the exact one nonsingular (above :data:`PINNED`): 16 times the worst-case rounding ``terms · eps₃₂``."""
    return 16 * terms * torch.finfo(torch.float32).eps


def _clears(gram: Tensor, level: float) -> Tensor:
    """Per Gram matrix, whether its smallest eigenvalue exceeds ``level`` times its trace (a Cholesky factor of
    ``G − level·tr(G)·I`` exists)."""
    r = gram.shape[-1]
    trace = gram.diagonal(dim1=1, dim2=2).sum(-1).clamp_min(torch.finfo(gram.dtype).tiny)
    shifted = gram - (level * trace)[:, None, None] * torch.eye(r, dtype=gram.dtype, device=gram.device)
    return torch.linalg.cholesky_ex(shifted).info == 0


def _residual(y: Tensor, x: Tensor | tuple[Tensor, Tensor], observed: Tensor | None,
              out: Tensor | None = None) -> Tensor:
    """|y − x| (x a matrix, or factors (U, V) of x = U Vᵀ), and +inf at missing entries (never clean, never the
    smallest of anything); into ``out`` when given."""
    res = (torch.sub(y, x, out=out) if isinstance(x, Tensor) else torch.addmm(y, *x, alpha=-1, out=out)).abs_()
    return res if observed is None else res.masked_fill_(~observed, math.inf)


class _Fitter:
    """The fits of one refit attempt and their working space. In y's dtype; or, for float64 data, in float32, in
    units of max|y| (float32's range then holds every product): on y itself for a fit that need not go below
    :data:`SINGLE_ABOVE` (relative to max|y|), and otherwise on corrections to the current factors around their
    float64 residual (:func:`_fit`'s ``base``): one float64 product per fit, float32 sweeps at about half a float64
    sweep's cost, the same fit to rounding (n = 1000: the final fit's clean residual 1.0e-13 either way). A fit whose
    tolerance lies more than 1/:data:`CORRECTION_REACH` below its start's clean residual runs in stages, each from a
    new base."""

    def __init__(self, y: Tensor, scale: float, rows: Rows):
        self.y, self.rows = y, rows
        self.scratch = (torch.empty_like(y), torch.empty_like(y))  # float64 (y's dtype), also the certificate's
        self.single = MIXED and y.dtype == torch.float64 and 0 < scale < math.inf
        self.unit = scale if self.single else 1.0  # the float32 fits' unit: data and residuals divided by it
        self.root = math.sqrt(self.unit)  # ... and each factor by its square root
        self.y32 = self.residual32 = self.work32 = None

    def __call__(self, clean: Tensor, u: Tensor, v: Tensor, max_sweeps: int, tol: float, stall_above: float | None,
                 y_norm: float | None) -> tuple[Tensor, Tensor, int, bool]:
        if not self.single:
            return _fit(self.y, clean, u, v, self.rows, max_sweeps, tol, stall_above, self.scratch, y_norm)
        if self.work32 is None:
            self.work32 = (torch.empty_like(self.y, dtype=torch.float32), torch.empty_like(self.y, dtype=torch.float32))
        if y_norm is not None:
            y_norm /= self.unit
        if tol >= SINGLE_ABOVE:
            if self.y32 is None:
                self.y32 = torch.div(self.y, self.unit, out=self.scratch[0]).float()
            u, v, sweeps, stalled = _fit(self.y32, clean, (u / self.root).float(), (v / self.root).float(), self.rows,
                                         max_sweeps, tol, stall_above, self.work32, y_norm)
            return u.double() * self.root, v.double() * self.root, sweeps, stalled
        if y_norm is None:
            y_norm = max(self.rows.norm(torch.mul(self.y, clean, out=self.scratch[0])), 1e-300) / self.unit
        if self.residual32 is None:
            self.residual32 = torch.empty_like(self.y, dtype=torch.float32)
        sweeps, stalled, before = 0, False, math.inf
        while sweeps < max_sweeps:  # in stages, each within the corrections' reach from its base
            self.residual32.copy_(torch.addmm(self.y, u, v.mT, alpha=-1, out=self.scratch[0]).div_(self.unit))
            start = _norm(torch.mul(self.residual32, clean, out=self.work32[1]), self.rows) / y_norm
            if start > 0.1 * before:
                break  # the last stage gained less than 10x: the fit is at its floor
            stage_tol = max(tol, CORRECTION_REACH * start)
            base = ((u / self.root).float(), (v / self.root).float())
            du, dv, more, stalled = _fit(self.residual32, clean, torch.zeros_like(base[0]), torch.zeros_like(base[1]),
                                         self.rows, max_sweeps - sweeps, stage_tol, stall_above, self.work32, y_norm,
                                         base)
            u, v = u + du.double() * self.root, v + dv.double() * self.root
            sweeps, before = sweeps + more, start
            if stalled or stage_tol <= tol:
                break
        return u, v, sweeps, stalled


def _refit(y: Tensor, start: Tensor | tuple[Tensor, Tensor], left: Tensor, s: Tensor, zh: Tensor, r: int, psd: bool,
           rows: Rows, max_outer: int, max_sweeps: int, fit_tol: float, gap: float, observed: Tensor | None,
           lam: float, probe: bool = False, max_total: int | None = None) -> Refinement:
    """One certified-refit attempt at rank ``r`` from an estimate X₀ whose SVD is ``left, s, zh``; ``start`` is its
    factors (U, Vᵀ), or the residuals ``|y − X₀|`` (+inf at missing entries) when the caller has them. Without a
    certificate the result's ``low_rank`` is None. The result's ``objective`` is the convex objective (λ = ``lam``)
    of the attempt's final fit, certified or not.

    While the support moves, a fit ends early only when it crawls (:data:`SLOW_SWEEPS`): its clean set may
    still hold corruptions that no rank-r matrix fits, and the next round re-reads it. The final fit, and
    every fit of a ``probe`` (a rank below a certified one, started from its clean set), also stop at a stall
    above ``√fit_tol`` (:func:`_fit`): no certificate then, and a probe gives up at once."""
    stall_above = math.sqrt(fit_tol)
    m, n = rows.total, y.shape[1]
    root = s[:r].sqrt()
    u, v = left[:, :r] * root, zh[:r].mT * root
    seen = torch.ones_like(y, dtype=torch.bool) if observed is None else observed
    y_whole = None if probe else max(rows.norm(y), 1e-300)  # what a round's fit is relative to (probes: their own)
    res = start.clone() if isinstance(start, Tensor) else _residual(y, start, observed, torch.empty_like(y))
    threshold = 5 * _typical(res, seen, rows) / 0.6745
    clean = res <= threshold
    scale = float(rows.max(_local_max(torch.stack(torch.aminmax(y)).abs())))
    fitter = _Fitter(y, scale, rows)  # (its working space serves every round and the certificate)
    scratch = fitter.scratch
    total_sweeps = 0
    stable = False
    need = min(r + 2, m, n)
    budget = max_outer * max_sweeps if max_total is None else max_total  # sweeps for the whole attempt
    for _ in range(max_outer):
        if total_sweeps >= budget:
            break  # out of sweeps before the support held: no certificate
        clean, u, v = _enough_clean(y, res, clean, seen, u, v, need, threshold, 1e-12 * scale, rows)
        # While the support may still move, the fit need only be well below the threshold that re-reads it;
        # once it holds, the fit is finished to full precision below.
        inner_tol = max(FINAL_TOL, FIT_BELOW * threshold / max(scale, 1e-300))
        u, v, sweeps, stalled = fitter(clean, u, v, min(max_sweeps, budget - total_sweeps), inner_tol,
                                       stall_above if probe else math.inf, y_whole)
        total_sweeps += sweeps
        if stalled and probe:  # this rank cannot fit the clean entries: no certificate
            if psd:  # (the objective of a feasible point: X ⪰ 0 in the PSD model)
                u, v = _psd_part(u, v, rows)
            res = _residual(y, (u, v.mT), observed, res)
            return Refinement(None, r, False, "no certificate (the fit stalls: a rank below the truth)", total_sweeps,
                              objective=_objective(res, factored_svd(u, v, rows)[1], lam, rows, observed))
        res = _residual(y, (u, v.mT), observed, res)
        if rows.count(clean) == 0:
            break  # nothing left to fit (e.g. every entry missing): no certificate
        # The threshold follows the clean entries' residual scale down, by at most THRESHOLD_FALL per round, so that a
        # corruption still pulling the fit cannot make many clean entries look corrupted at once.
        previous = threshold
        threshold = max(10 * _typical(res, clean, rows) / 0.6745 + 1e-12 * scale, THRESHOLD_FALL * threshold)
        new_clean = res <= threshold
        stable = rows.all(torch.equal(new_clean, clean))
        if stable:
            break
        if stalled and threshold > 0.5 * previous:
            break  # the fit crawls and the residual scale has stopped falling: a rank below the truth
        clean = new_clean
    if stable:  # the support holds: fit it to full precision (the certificate below reads this fit)
        u, v, sweeps, _ = fitter(clean, u, v, max(1, min(max_sweeps, budget - total_sweeps)), FINAL_TOL,
                                 stall_above, None)
        total_sweeps += sweeps
    if psd:
        u, v = _psd_part(u, v, rows)
    x = u @ v.mT
    res = _residual(y, x, observed, res)
    w = scratch[0].copy_(clean)
    clean_fit = rows.norm(torch.sub(y, x, out=scratch[1]).mul_(w)) / max(rows.norm(torch.mul(y, w, out=scratch[1])),
                                                                         1e-300)
    unknowns = r * (m + n - r)
    count = rows.count(clean)
    fewest_in_row = int(rows.min(clean.sum(1, dtype=torch.int32).min().reshape(1)))
    fewest_in_column = int(rows.sum(clean.sum(0, dtype=torch.int32)).min())
    determined = count > unknowns + max(m, n) and fewest_in_row > r and fewest_in_column > r
    largest_clean = float(rows.max(_local_max(_where(clean, res, 0.0, scratch[1]))))
    smallest_flagged = float(rows.min(-_local_max(_where(clean, math.inf, res, scratch[1]).neg_(), -math.inf)))
    svd = factored_svd(u, v, rows)  # (the objective's singular values and the pinned-rows check's factors)
    objective = _objective(res, svd[1], lam, rows, observed)
    consistent = stable and smallest_flagged >= gap * max(largest_clean, 1e-300)
    pinned = clean_fit <= fit_tol and determined and consistent and _pinned(clean, *svd, rows)
    if pinned:
        return Refinement(x, r, True, "exact fit on an over-determined, stable and separated clean set", total_sweeps,
                          (u, v), objective)
    why = (f"clean-entry residual {clean_fit:.1e}" if clean_fit > fit_tol else
           "clean set not over-determined" if not determined else "support not stable" if not stable else
           f"support not separated (flagged residual {smallest_flagged:.1e} vs clean {largest_clean:.1e})"
           if not consistent else "a factor row not pinned down by its clean entries (a rank above the truth)")
    return Refinement(None, r, False, f"no certificate ({why})", total_sweeps, objective=objective)
