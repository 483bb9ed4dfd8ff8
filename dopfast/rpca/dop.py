"""The DOP robust-PCA driver: scale-free step rule, chunked whole-loop solver, stopping, divergence checks and
the certified refinement, on a batch ``(B, m, n)`` of problems. :class:`dopfast.RobustPCA` is a thin
scikit-learn shell over :func:`fit_dop`; benchmarks and experiments call it (or :func:`step_scale`) directly.

Step-size rule (``step=None``). Each problem is divided by ``c = max(‖Y‖₂, α·max|Y|)`` (:func:`step_scale`) and run
with ``τ = 0.25`` (so the effective step is ``0.25 / c``; 0.5 / c for the DOP phase of a refined fit), from ``U ~
N(0, σ²)`` and ``g = h = σ`` (every entry) with ``σ = init_scale·√(‖Y/c‖₂ / max(m, n))``. The paper draws g at
random too, but each entry of g and h evolves on its own, multiplied each step by ``1 ∓ ατ r_ij``: a random start
only staggers when the entries' corruptions emerge, and a constant one saves an m × n draw (0.1 s at 19200 × 200).
The two terms of c bound the curvature of the loss in U (≈ 2‖X‖₂ near a solution) and in g, h (≈ 2α|s| for the
α-scaled step), so the rule keeps both steps a fixed fraction below their stability limits. Because the DOP
iteration is exactly scale-equivariant (Y → cY, U → √c U, g → √c g, τ → τ/c), scaling Y by 1000 gives the same
iterates up to that scaling, and the same rule serves n = 50 and n = 2000. On the paper's n = 50 data its effective
τ is about 3e-3, 30× the paper's 1e-4. Every norm is taken after dividing by ``max|Y|``, so data near the
floating-point range's ends neither overflows nor underflows.

Stopping: after every chunk of steps, when the relative residual ``‖X + s − Y‖_F / ‖Y‖_F ≤ tol`` (the
constraint of eq. 8 that DOP satisfies in the limit), or after ``max_iter`` steps. A NaN/Inf loss or a loss
rising above twice its starting value raises ``FloatingPointError`` naming the step that caused it.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .. import ops
from .refine import factored_svd, refine_low_rank, spectral_gap_rank
from .rows import Rows

STEP_FRACTION = 0.25
# With the refinement, DOP only has to make the rank and the support readable: it runs at twice the step (still
# half the stability limit 1/c), and the spectral gap that gives the rank opens in half the steps (n = 1000: 20
# steps instead of 30; n = 2000: 20 instead of 43). Pure DOP (refine=False) keeps STEP_FRACTION.
REFINE_STEP_FRACTION = 0.5
CHUNK = 500
# When the refinement is attempted. Only a certified refit is accepted, so an early attempt costs time, never
# accuracy. The spectrum of X is read after LOOK_FIRST steps and then every max(LOOK_EVERY, steps / LOOK_SLOWER)
# steps (a read is a QR of the thin factor: 5 ms at n = 1000); an attempt is made once the largest ratio between
# consecutive singular values (the gap that gives the rank) reaches CLEAR_GAP at a rank at most half the width
# (STRONG_GAP above half of it, while the width grows), or once the relative residual ||X + s - Y|| / ||Y|| is below
# REFINE_START. After a failed attempt the next one waits until the step count has doubled, unless a larger rank
# reads clearly first (components emerge one after another, the largest first). At n = 1000 (paper data) the gap
# reads 4.7 after 15 steps and 24 after 20; the refit certifies from 20. On the video (19200 x 200) it reads 2,300
# after 15 steps.
LOOK_FIRST = 15
LOOK_EVERY = 5
LOOK_SLOWER = 5
QUICK_SWEEPS = 100  # least-squares sweeps an attempt made during DOP may spend
CLEAR_GAP = 5.0
STRONG_GAP = 50.0
LEFT_INIT = 10.0  # the spectrum has left the initialisation level once sv[0] is this many times sv[-1]
REFINE_START = 0.5
WIDTH_START = 64  # factor width r' when `rank` is not given and min(m, n) is larger; doubled while the rank
# read from the spectral gap of X is more than half of it


@dataclass
class DopFit:
    """What :func:`fit_dop` returns, per problem of the batch (leading dimension B)."""

    low_rank: Tensor  # (B, m, n): refined where the refinement was accepted, else the DOP estimate
    sparse: Tensor  # (B, m, n): y - low_rank when refined, else g∘g − h∘h
    dop_low_rank: Tensor  # (B, m, n): the DOP estimate
    n_iter: np.ndarray  # (B,) steps taken
    converged: np.ndarray  # (B,) relative residual <= tol
    loss_curve: np.ndarray  # (B, steps) ¼‖R‖² in the data's units, NaN after a problem stopped
    step: np.ndarray  # (B,) τ in the data's units
    rank: np.ndarray | None  # (B,) rank read by the refinement (None without refinement)
    refined: np.ndarray | None  # (B,) whether the refinement was accepted


def step_scale(y: Tensor, alpha: float, rows: Rows | None = None) -> Tensor:
    """``c = max(‖Y‖₂, α·max|Y|)`` per problem of ``y`` (B, m, n): the step rule's curvature scale (0 for a
    zero problem). Computed on ``Y / max|Y|``, so it neither overflows nor underflows. ``y`` holds this
    process's rows when ``rows`` is distributed."""
    rows = Rows(y.shape[1], y.device) if rows is None else rows
    return _step_scale(*_peak_and_norm(y, rows), alpha)


def _step_scale(peak: Tensor, unit_norm: Tensor, alpha: float) -> Tensor:
    return peak.double() * torch.clamp_min(unit_norm.double(), alpha)  # (float64: float32 data near 1e38)


class _Scale:
    """Per-problem scale ``c = peak · factor`` (float64) that divides and multiplies data in two steps, each
    within the data's range (``peak`` = max|Y|, ``factor`` ≥ 1 up to ~√(mn); with a given step, ``peak = c``
    and ``factor = 1``): float32 data near its largest value (3e38) would overflow the product."""

    def __init__(self, peak: Tensor, scale: Tensor):
        self.total = scale.double()
        self.peak = torch.where(peak > 0, peak.double(), torch.ones_like(self.total))
        self.factor = self.total / self.peak

    def _pair(self, t: Tensor, i: int | None):
        p, f = (self.peak, self.factor) if i is None else (self.peak[i:i + 1], self.factor[i:i + 1])
        shape = (-1,) + (1,) * (t.dim() - 1) if i is None else (1,) * t.dim()
        return p.to(t.device, t.dtype).view(shape), f.to(t.device, t.dtype).view(shape)

    def divide(self, t: Tensor) -> Tensor:
        p, f = self._pair(t, None)
        return t / p / f

    def times_(self, t: Tensor, i: int | None = None) -> Tensor:
        """``t`` (the batch, or problem ``i``) times the scale, in place."""
        p, f = self._pair(t, i)
        return t.mul_(f).mul_(p)


def _peak_and_norm(y: Tensor, rows: Rows) -> tuple[Tensor, Tensor]:
    """``max|Y|`` and ``‖Y / max|Y|‖₂`` per problem: what the step rule and the initial scale are made of."""
    peak = rows.max(y.abs().amax((-2, -1)))
    safe = torch.where(peak > 0, peak, torch.ones_like(peak))
    return peak, _spectral_norm(y / safe.view(-1, 1, 1), rows)


EXACT_NORM_WORK = 256**3  # up to this m·n·min(m, n), one process takes ‖Y‖₂ from an SVD


def _spectral_norm(y: Tensor, rows: Rows, max_iter: int = 100, tol: float = 1e-5,
                   exact_up_to: int = EXACT_NORM_WORK) -> Tensor:
    """‖Y‖₂ per problem of ``y`` (B, m, n): from an SVD for a small matrix in one process; otherwise by block
    subspace iteration on YᵀY in float32 (16 vectors, Rayleigh-Ritz in float64, until the estimate changes by
    less than ``tol`` relative, or ``max_iter`` iterations), one n × 16 all-reduce per iteration over a process
    group. The step rule only needs a few digits (the estimate is a Ritz value, never above ‖Y‖₂ but for
    float32 rounding): at n = 1000 the SVD takes 0.16 s, the iteration 8 ms; at 19200 × 200 the SVD 80 ms, the
    iteration 17 ms."""
    m, n = rows.total, y.shape[-1]
    if not rows.distributed and m * n * min(m, n) <= exact_up_to:
        return torch.linalg.matrix_norm(y, ord=2)
    out = []
    for yi in y:
        yi = yi.float()
        q = torch.linalg.qr(torch.randn(n, min(n, 16), generator=torch.Generator().manual_seed(0),
                                        dtype=torch.float32)).Q.to(yi.device)
        top = prev = 0.0
        for _ in range(max_iter):
            z = rows.sum(yi.mT @ (yi @ q))  # YᵀY q
            ritz = torch.linalg.eigvalsh(q.double().mT @ z.double())[-1:]  # the top Ritz value of YᵀY
            top = float(rows.agree(ritz)) ** 0.5
            if abs(top - prev) <= tol * top:
                break
            prev = top
            q = rows.agree(torch.linalg.qr(z).Q)
        out.append(top)
    return torch.tensor(out, dtype=y.dtype, device=y.device)


def _check_divergence(chunk_losses, first, active, offset, taus):
    bad = ~torch.isfinite(chunk_losses) | (chunk_losses > 2 * first.view(-1, 1))
    if not bool(bad.any()):
        return
    row, col = (int(i) for i in bad.nonzero()[0])
    problem = int(active[row])
    step = float(taus[row])
    value = float(chunk_losses[row, col])
    what = ("a non-finite loss" if not math.isfinite(value)
            else f"a loss rising to {value:.3g} from {float(first[row]):.3g}")
    where = f" of problem {problem}" if len(active) > 1 or problem else ""
    raise FloatingPointError(
        f"RobustPCA: DOP diverged at step {offset + col}{where} ({what}) with step τ={step:.3g}; "
        f"pass a smaller step, e.g. step={step / 10:.3g}")


TILE = 256  # rows per independently seeded block of the initial draw


def initial_draw(seed: int, problem: int, tag: int, rows: slice, total: int, cols: int, dtype) -> Tensor:
    """Rows ``rows`` of a ``total × cols`` N(0, 1) draw that does not depend on how the rows are split: each
    block of :data:`TILE` rows comes from its own generator, seeded from (seed, problem, tag, block)."""
    start, stop = rows.start or 0, total if rows.stop is None else rows.stop
    parts = []
    for tile in range(start // TILE, -(-stop // TILE)):
        state = np.random.SeedSequence([seed, problem, tag, tile]).generate_state(2, np.uint64)
        gen = torch.Generator().manual_seed(int(state[0]) % 2**63)
        lo = tile * TILE
        block = torch.randn(min(TILE, total - lo), cols, generator=gen, dtype=dtype)
        parts.append(block[max(start - lo, 0): stop - lo])
    return torch.cat(parts) if parts else torch.zeros(0, cols, dtype=dtype)


def fit_dop(y: Tensor, *, psd: bool, alpha: float, step: float | None = None, rank: int | None = None,
            max_iter: int = 50_000, tol: float = 1e-3, init_scale: float = 1e-4, refine: bool = True,
            generator: torch.Generator | None = None, verbose: bool = False, rows: Rows | None = None,
            mask: Tensor | None = None, pin_dtype: bool = False) -> DopFit:
    """DOP on a batch ``y`` (B, m, n) of float32/float64 problems; see the module docstring.

    With a distributed ``rows`` (:class:`dopfast.rpca.rows.Rows`), ``y`` is this rank's rows of every problem
    and so are the returned ``low_rank``/``sparse``; everything else is the same on every rank.

    ``mask`` (bool, like ``y``; true = observed): missing entries add nothing to the loss or the gradients, the
    step rule and the stopping test see ``y`` with zeros there, ``low_rank`` fills them and ``sparse`` is zero
    there; the refinement fits only observed entries.

    With ``refine``, a float64 problem's DOP phase runs in float32 (and its refinement in float64) unless
    ``pin_dtype``; without it, DOP runs in the data's dtype.
    """
    rows = Rows(y.shape[1], y.device) if rows is None else rows
    if mask is not None:
        y = y.masked_fill(~mask, 0)
    b, n = y.shape[0], y.shape[2]
    m = rows.total
    k_max = min(m, n) if rank is None else min(int(rank), min(m, n))
    k = k_max if rank is not None else min(k_max, WIDTH_START)
    peak, unit_norm = _peak_and_norm(y, rows)
    zero = peak == 0
    if step is None:
        # Per-problem scale so that one normalised step serves the whole batch.
        scale, tau = _step_scale(peak, unit_norm, alpha), REFINE_STEP_FRACTION if refine else STEP_FRACTION
    else:
        # The caller's step in the data's units: solve on y / c with step·c, one c for the whole batch.
        # (every problem divided by c in one step: peaks far apart would put c / peak outside the dtype's range)
        c = float(peak.max()) if bool((~zero).any()) else 1.0
        scale, tau = torch.full_like(peak, c, dtype=torch.float64), float(step) * c
    scale = torch.where(zero, torch.ones_like(scale), scale)
    spec = (unit_norm.double() * peak.double() / scale).to(y.dtype)  # ‖yn‖₂, from the norm already taken
    scale = _Scale(peak if step is None else scale, scale)
    yn = scale.divide(y)
    std = init_scale * torch.sqrt(spec / max(m, n)).clamp_min(1e-30)
    std = torch.where(zero, torch.zeros_like(std), std)  # a zero problem's answer is exactly zero
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))

    # The DOP phase runs in float32 when a float64 problem is refined: it only has to make the rank and the
    # support readable, and the refinement works in float64 from y itself (float32 products are 3x faster).
    work = torch.float32 if refine and y.dtype == torch.float64 and not pin_dtype else y.dtype

    def draw(tag, part, total, cols):
        return (torch.stack([initial_draw(seed, i, tag, part, total, cols, y.dtype) for i in range(b)]).to(
            y.device) * std.view(-1, 1, 1)).to(work)

    # U whole for U Uᵀ (every rank needs all of it), by rows for U Vᵀ; V whole; g, h by rows.
    u_rows = slice(0, m) if psd else rows.rows
    u = draw(0, u_rows, m, k)
    v = None if psd else draw(1, slice(0, n), n, k)
    g = std.to(work).view(-1, 1, 1).expand(b, rows.local, n).to(y.device).clone()
    h = g.clone()
    y_norm = torch.stack([torch.tensor(rows.norm(p)) for p in yn]).double() if b else torch.zeros(0)
    yw = yn.to(work)

    def factors(i):  # this rank's rows of the left factor, and the whole right factor, of problem i
        return (u[i][rows.rows], u[i]) if psd else (u[i], v[i])

    chunks = []  # per-chunk (b, steps) loss blocks, NaN for problems already finished
    n_iter = np.zeros(b, dtype=np.int64)
    converged = zero.cpu().numpy().copy()
    active = torch.arange(b)[~zero.cpu()]
    first_loss = torch.full((b,), math.nan, dtype=torch.float64)
    certified: dict[int, object] = {}  # problem -> accepted Refinement (normalised units)
    next_look = np.full(b, LOOK_FIRST, dtype=np.int64)  # step counts at which the spectrum of X is read
    next_try = np.zeros(b, dtype=np.int64)  # ... before which no refinement is attempted at a rank already tried
    tried_rank = np.zeros(b, dtype=np.int64)
    old_width = 0  # the width before the factors last grew
    bar = None
    if verbose and rows.rank == 0:
        from tqdm.auto import tqdm
        bar = tqdm(total=max_iter, desc="RobustPCA(dop)", unit="step")
    try:
        done = 0
        while done < max_iter and active.numel():
            steps = min(CHUNK, max_iter - done)
            if refine or k < k_max:  # end the chunk where the spectrum is due to be read
                steps = max(1, min(steps, int(next_look[active.numpy()].min()) - done))
            if rows.distributed:
                chunk_losses = torch.stack([row_steps(yw[i], u[i], None if psd else v[i], g[i], h[i], tau, alpha,
                                                      steps, rows, _part(mask, i))
                                            for i in active.tolist()])
            else:
                chunk_losses = _fused_steps(yw, u, v, g, h, active, tau, alpha, steps, mask)
            block = torch.full((b, steps), math.nan, dtype=torch.float64)
            block[active] = chunk_losses
            chunks.append(block)
            if done == 0:
                first_loss[active] = chunk_losses[:, 0]
            _check_divergence(chunk_losses, first_loss[active], active, done, tau / scale.total.cpu()[active])
            done += steps
            n_iter[active.numpy()] = done
            rel = (4 * chunk_losses[:, -1]).sqrt() / y_norm[active].clamp_min(1e-300)
            finished = rel <= tol
            narrow = False
            for j, i in enumerate(active.tolist()):
                # DOP runs only as long as the refinement needs: once the rank reads clearly (or the residual
                # is small), try to certify a refit; a certified problem is done.
                if finished[j] or done < next_look[i] or not (refine or k < k_max):
                    continue
                next_look[i] = done + max(LOOK_EVERY, done // LOOK_SLOWER)
                sv = factored_svd(*(f.double() for f in factors(i)), rows)[1]
                rank_read, gap = _gap(sv, k)
                # (the width is judged only once the spectrum has left the initialisation level: a flat spectrum
                # of small random factors reads as a rank near the width)
                narrow = narrow or (2 * rank_read > k and float(sv[0]) >= LEFT_INIT * float(sv[-1]))
                # (a gap at the width the factors had before they last grew is the edge between the grown old
                # columns and the new ones still at the initialisation scale, not a rank)
                # (a rank above half the width reads clearly only from a large gap; the width grows meanwhile)
                clear = (gap >= CLEAR_GAP and (2 * rank_read <= k or gap >= STRONG_GAP)
                         and rank_read != old_width)
                due = done >= next_try[i] or (clear and rank_read > tried_rank[i])  # or a component has emerged
                if not refine or not due or not (clear or rel[j] <= REFINE_START):
                    continue
                next_try[i], tried_rank[i] = 2 * done, rank_read
                attempt = _try_refine(yn[i], *factors(i), psd, k, rows, _part(mask, i), quick=True, alpha=alpha,
                                      width_bound=rank is not None)
                if attempt is not None and attempt.accepted:
                    certified[i] = attempt
                    finished[j] = True
            if k < k_max and narrow:
                # the rank may be close to (or above) the width: add columns at the init scale
                grown = min(2 * k, k_max)
                u = torch.cat([u, draw(16 + 2 * grown, u_rows, m, grown - k)], dim=2)
                v = None if psd else torch.cat([v, draw(17 + 2 * grown, slice(0, n), n, grown - k)], dim=2)
                k, old_width = grown, k
            converged[active[finished].numpy()] = True
            if bar is not None:
                bar.update(steps)
                bar.set_postfix(residual=f"{float(rel.max()):.2e}", running=int((~finished).sum()))
            active = active[~finished]
    finally:
        if bar is not None:
            bar.close()
    del yw
    xn = (torch.stack([a @ c.mT for a, c in map(factors, range(b))]) if b else yn.clone()).to(y.dtype)
    sn = (g * g - h * h).to(y.dtype)
    if mask is not None:
        sn = sn.masked_fill(~mask, 0)
    losses = torch.cat(chunks, dim=1) if chunks else torch.zeros(b, 0, dtype=torch.float64)
    scale.times_(xn)
    fit = DopFit(low_rank=xn, sparse=scale.times_(sn), dop_low_rank=xn, n_iter=n_iter, converged=converged,
                 loss_curve=(losses * scale.total.cpu().view(-1, 1) ** 2).numpy(),
                 step=(tau / scale.total.cpu()).numpy(), rank=None, refined=None)
    if refine:
        _refine(fit, y, yn, factors, scale, psd, k, zero, certified, rows, mask, alpha, rank is not None)
    if fit.low_rank is fit.dop_low_rank:  # nothing refined: the user gets two arrays, not one twice
        fit.low_rank = fit.low_rank.clone()
    return fit


def _gap(sv: Tensor, k: int) -> tuple[int, float]:
    """The rank read from the largest gap in the spectrum ``sv`` of X (within the width k), and that gap: the
    ratio of the last singular value kept to the next (inf when nothing follows)."""
    rank = spectral_gap_rank(sv, k)
    if rank == 0:
        return 0, 0.0
    nxt = float(sv[rank]) if rank < sv.numel() else 0.0
    return rank, float(sv[rank - 1]) / nxt if nxt > 0 else math.inf


def _part(mask: Tensor | None, i: int) -> Tensor | None:
    return None if mask is None else mask[i]


def _fused_steps(yn, u, v, g, h, active, tau, alpha, steps, mask=None) -> Tensor:
    """``steps`` DOP steps of the active problems in one call of the whole-loop solver; their losses."""
    ya, ma = yn[active], None if mask is None else mask[active]
    if v is None:
        sol = ops.rpca_dop_solve(ya, u[active], g[active], h[active], tau, alpha, steps, mask=ma)
    else:
        sol = ops.rpca_dop_solve_uv(ya, u[active], v[active], g[active], h[active], tau, alpha, steps, mask=ma)
        v[active] = sol.v
    u[active], g[active], h[active] = sol.u, sol.g, sol.h
    return sol.losses.to(device="cpu", dtype=torch.float64)


def row_steps(y: Tensor, u: Tensor, v: Tensor | None, g: Tensor, h: Tensor, tau: float, alpha: float,
              steps: int, rows: Rows, mask: Tensor | None = None) -> Tensor:
    """``steps`` DOP steps of one problem whose rows are split over a process group, updating the (views)
    u, v, g, h in place; the losses ¼‖R‖² before each step (NaN after a non-finite one, where it stops).

    One all-reduce per step carries the ``n × k`` factor gradient and the loss: for ``U Vᵀ`` the sum of
    ``R_pᵀ U_p``; for ``U Uᵀ`` (U whole on every rank) ``R_pᵀ U_p`` plus ``R_p U`` in rank p's rows, whose
    sum is ``(Rᵀ + R) U``. The local work is the fused residual step and two products, as in the solver.
    """
    n, k = y.shape[1], u.shape[1]
    x, r = torch.empty_like(y), torch.empty_like(y)
    buf = torch.empty(n * k + 1, dtype=y.dtype, device=y.device)
    grad = buf[: n * k].view(n, k)
    losses = torch.full((steps,), math.nan, dtype=torch.float64)
    mine = u[rows.rows] if v is None else u
    for t in range(steps):
        torch.matmul(mine, (u if v is None else v).mT, out=x)
        buf[-1] = ops.residual_step_out_(x, g, h, y, alpha * tau, r, mask)
        torch.matmul(r.mT, mine, out=grad)
        if v is None:
            grad[rows.rows] += r @ u
        else:
            local = r @ v
        total = rows.sum(buf)
        losses[t] = float(total[-1])
        if v is None:
            u.sub_(total[: n * k].view(n, k), alpha=0.5 * tau)
        else:
            u.sub_(local, alpha=tau)
            v.sub_(total[: n * k].view(n, k), alpha=tau)
        if not math.isfinite(losses[t]):
            break
    # U (and V) are replicated: keep every rank bit-identical
    u.copy_(rows.agree(u)) if v is None else v.copy_(rows.agree(v))
    return losses


@contextlib.contextmanager
def _one_thread(enabled: bool):
    """Intra-op threads off for the refinement of a small problem: its many tiny products and solves gain
    nothing from a second thread and stall badly when another process keeps a core busy (100x measured)."""
    before = torch.get_num_threads()
    if enabled and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _try_refine(y: Tensor, u: Tensor, v: Tensor, psd: bool, k: int, rows: Rows, observed: Tensor | None,
                quick: bool, alpha: float, width_bound: bool):
    """One refinement attempt on one normalised problem; None when the refit itself failed (the DOP estimate
    stands). The certificate's convex objective takes λ = 1/alpha; ``width_bound``: k is the user's rank. A
    quick attempt (during DOP) has a smaller sweep budget (QUICK_SWEEPS per refit, probes apart; a certified
    one takes 15-50): it is retried later anyway."""
    budget = dict(max_sweeps=40, max_total=QUICK_SWEEPS) if quick else {}
    # In float64 whatever the DOP phase ran in; "exact" is judged at the data's own precision (float32 data
    # carries rounding errors of ~1e-7 that no low-rank matrix fits).
    fit_tol = max(1e-9, 64 * torch.finfo(y.dtype).eps)
    try:
        with _one_thread(y.numel() <= 1 << 20):
            r = refine_low_rank(y.double(), u.double(), v.double(), psd, rows, max_rank=k, fit_tol=fit_tol,
                                observed=observed, lam=1 / alpha,
                                width_bound=width_bound, **budget)
    except (torch.linalg.LinAlgError, RuntimeError):
        return None  # e.g. a singular least-squares system
    r.low_rank = r.low_rank.to(y.dtype)
    return r


def _refine(fit: DopFit, y: Tensor, yn: Tensor, factors, scale: _Scale, psd: bool, k: int, zero: Tensor,
            certified: dict, rows: Rows, mask: Tensor | None, alpha: float, width_bound: bool) -> None:
    """The refinement of every problem: certified during DOP, or attempted once more on the final iterate.
    A refined problem's sparse part is ``y`` minus its refit (zero where missing)."""
    b = yn.shape[0]
    fit.rank = np.zeros(b, dtype=np.int64)
    fit.refined = np.zeros(b, dtype=bool)
    lows, sparses = list(fit.low_rank.unbind()), list(fit.sparse.unbind())
    for i in range(b):
        if bool(zero[i]):
            continue
        r = certified.get(i) or _try_refine(yn[i], *factors(i), psd, k, rows, _part(mask, i), quick=False,
                                             alpha=alpha, width_bound=width_bound)
        if r is None:
            continue
        fit.rank[i] = r.rank
        if r.accepted and rows.all(bool(torch.isfinite(torch.stack(torch.aminmax(r.low_rank))).all())):
            lows[i] = scale.times_(r.low_rank, i)
            sparses[i] = y[i] - lows[i] if mask is None else (y[i] - lows[i]).masked_fill_(~mask[i], 0)
            fit.refined[i] = True
    if fit.refined.any():
        fit.low_rank, fit.sparse = torch.stack(lows), torch.stack(sparses)


PAPER_TAU, PAPER_INIT = 1e-4, 1e-4


def paper_dop(y: Tensor, alpha: float, seed: int = 0, steps: int = 20_000) -> ops.RpcaSolution:
    """DOP with the paper's own settings (Fig. 2): ``U, g ~ N(0, 1e-4²)`` with r' = n, ``h = g``, ``τ = 1e-4``,
    a fixed number of steps; ``y`` is (n, n) or a batch (B, n, n). Returns the solver's result."""
    gen = torch.Generator().manual_seed(seed)
    u0 = PAPER_INIT * torch.randn(y.shape, generator=gen, dtype=y.dtype).to(y.device)
    g0 = PAPER_INIT * torch.randn(y.shape, generator=gen, dtype=y.dtype).to(y.device)
    return ops.rpca_dop_solve(y, u0, g0, g0.clone(), PAPER_TAU, alpha, steps)
