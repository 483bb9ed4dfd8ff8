"""Time to accuracy for robust PCA: dopfast against other solvers on the same data, in one run.

    python -m dopfast bench rpca [--sizes 50 200 1000] [--budget 60] [--threads 1] [--video H W FRAMES] [--out FILE]
    python -m dopfast bench rpca --device cuda [--sizes 10000] [--rank 50] [--budget 60]

On a GPU (``--device cuda``): the default estimator, PCP and the rank-given method on the GPU, same table
(rank 50 unless ``--rank``; the data are made in float64 on the CPU and moved over).

Data: the DOP paper's model (X* = U*U*ᵀ PSD, rank max(5, n/50); 10% of entries corrupted by N(0, 10²)).
For each method, the seconds until ‖X − X*‖_F/‖X*‖_F first drops below 1e-1, 1e-2 and 1e-4 (time spent
measuring the error is excluded), the final error and the total time; "—" means not reached within the
budget. Methods:

- dopfast DOP (r' = n) and (r' = 4r): rpca_dop_solve in chunks, dopfast's step rule, no refinement;
- dopfast default: ``RobustPCA(model="psd")`` end to end (DOP, then the certified refinement);
- dopfast PCP: eq. (8) with X ⪰ 0 by ADMM (``dopfast.rpca.pcp``);
- eager PyTorch DOP: the same iteration as plain torch ops (the natural way to write it);
- tensorly ``robust_pca`` (ALM for PCP, λ = 1/√n), run with growing iteration caps;
- AltProj-class, **given the rank**: a randomized truncated SVD of Y − S alternating with a hard threshold on
  the residual that halves every iteration (the fast nonconvex family; DOP's goal is to come close without
  being told the rank);
- cvxpy (Clarabel) on eq. (8), n ≤ 64 only.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import torch

from .. import RobustPCA, ops
from ..rpca import STEP_FRACTION, relative_error, rpca_problem, step_scale  # noqa: E402
from ..rpca.pcp import pcp
from .common import bench_parser, emit, machine_name, parse, table

TARGETS = (1e-1, 1e-2, 1e-4)


class Trace:
    """Accumulates (compute seconds, error) points; error evaluation is not timed."""

    def __init__(self):
        self.points: list[tuple[float, float]] = []
        self.elapsed = 0.0
        self.final: torch.Tensor | None = None  # the last estimate, where the method keeps one

    def add(self, seconds: float, err: float):
        self.elapsed += seconds
        self.points.append((self.elapsed, err))

    def time_to(self, target: float) -> float | None:
        """Seconds until the error first reached ``target`` (None: never)."""
        return next((s for s, e in self.points if e <= target), None)

    def row(self, name: str, n: int):
        hits = []
        for tgt in TARGETS:
            t = self.time_to(tgt)
            hits.append("—" if t is None else f"{t:.3g}")
        final = self.points[-1][1] if self.points else float("nan")
        return [n, name] + hits + [f"{final:.1e}", f"{self.elapsed:.3g}"]


def _init(y, k, seed=0):
    n = y.shape[0]
    scale = float(step_scale(y[None], math.sqrt(n))[0])
    std = 1e-4 * math.sqrt(float(torch.linalg.matrix_norm(y / scale, ord=2)) / n)
    gen = torch.Generator().manual_seed(seed)
    u0 = std * torch.randn(n, k, generator=gen, dtype=y.dtype)
    g0 = std * torch.randn(n, n, generator=gen, dtype=y.dtype)
    return scale, u0, g0


def dop_trace(x_true, y, k, budget, chunk):
    scale, u, g = _init(y, k)
    yn, h, trace = y / scale, g.clone(), Trace()
    alpha = math.sqrt(y.shape[0])
    while trace.elapsed < budget:
        t0 = time.perf_counter()
        out = ops.rpca_dop_solve(yn, u, g, h, STEP_FRACTION, alpha, chunk)
        u, g, h = out.u, out.g, out.h
        trace.add(time.perf_counter() - t0, relative_error(scale * (u @ u.T), x_true))
        if trace.points[-1][1] <= TARGETS[-1]:
            break
    return trace


def eager_trace(x_true, y, budget, chunk):
    scale, u, g = _init(y, y.shape[0])
    yn, h, trace = y / scale, g.clone(), Trace()
    tau, alpha = STEP_FRACTION, math.sqrt(y.shape[0])
    while trace.elapsed < budget:
        t0 = time.perf_counter()
        for _ in range(chunk):
            r = u @ u.T + g * g - h * h - yn
            g = g - alpha * tau * r * g
            h = h + alpha * tau * r * h
            u = u - tau * (0.5 * (r + r.T)) @ u
        trace.add(time.perf_counter() - t0, relative_error(scale * (u @ u.T), x_true))
    return trace


def pcp_trace(x_true, y, budget, psd=True, tol=1e-9):
    trace, last = Trace(), [time.perf_counter()]

    def cb(it, x, primal, dual):
        _sync(x)
        now = time.perf_counter()
        trace.add(now - last[0], relative_error(x, x_true))
        last[0] = time.perf_counter()
        if trace.elapsed > budget:
            raise StopIteration

    try:
        trace.final = pcp(y, psd=psd, tol=tol, max_iter=100_000, callback=cb).low_rank
    except StopIteration:
        pass
    return trace


def tensorly_trace(x_true, y, budget):
    from tensorly.decomposition import robust_pca

    trace, yn, cap = Trace(), y.numpy(), 10
    lam = 1 / math.sqrt(y.shape[0])
    while True:
        t0 = time.perf_counter()
        low, _ = robust_pca(yn, reg_E=lam, reg_J=0.5, n_iter_max=cap, tol=1e-10, verbose=0)
        seconds = time.perf_counter() - t0
        trace.points.append((seconds, relative_error(torch.from_numpy(np.asarray(low)), x_true)))
        trace.elapsed = seconds  # each run starts from scratch: its own time is the time to that point
        if seconds > budget / 4 or cap >= 5000 or trace.points[-1][1] <= TARGETS[-1]:
            return trace
        cap *= 2


def altproj_trace(x_true, y, r, budget, max_iter=200):
    """Rank-given alternating projections: L = rank-r truncation of Y − S (randomized SVD), S = the residual's
    entries above a threshold that halves each iteration; stops when ‖Y − L − S‖ ≤ 1e-10‖Y‖."""
    trace = Trace()
    s = torch.zeros_like(y)
    zeta = float(y.abs().max())
    y_norm = float(torch.linalg.matrix_norm(y))
    torch.manual_seed(0)  # svd_lowrank draws its sketch from the global generator
    for _ in range(max_iter):
        t0 = time.perf_counter()
        u, sv, v = torch.svd_lowrank(y - s, q=r + 5, niter=2)
        low = (u[:, :r] * sv[:r]) @ v[:, :r].T
        res = y - low
        zeta *= 0.5
        s = torch.where(res.abs() > zeta, res, torch.zeros((), dtype=y.dtype, device=y.device))
        done = float(torch.linalg.matrix_norm(res - s)) <= 1e-10 * y_norm  # (reads back: the GPU has finished)
        trace.add(time.perf_counter() - t0, relative_error(low, x_true))
        if done or trace.elapsed > budget:
            break
    trace.final = low
    return trace


def video_job(shape, budget) -> str:
    """Background/foreground separation of the synthetic video (pixels × frames, ``shape`` = (h, w, frames)):
    seconds, background error and foreground F1 (pixels differing from the background by more than 0.05) for
    the default estimator (rank not given), PCP and the AltProj-class method given rank 1."""
    from ..rpca.data import foreground_f1, synthetic_video

    h, w, frames = shape
    background, video, _ = synthetic_video(h, w, frames)
    y = torch.from_numpy(video.reshape(frames, -1).T.copy())
    bg = torch.from_numpy(np.repeat(background.reshape(-1, 1), frames, axis=1))
    truth = y - bg
    rows = []

    def row(name, seconds, low, note=""):
        err = relative_error(low, bg)
        rows.append([name, f"{seconds:.3g}", f"{err:.1e}", f"{foreground_f1(y - low, truth):.3f}", note])
        print(" | ".join(rows[-1]), flush=True)

    trace, est = timed_fit(bg, y, psd=False)
    row("dopfast default (RobustPCA, rank not given)", trace.elapsed, est.low_rank_,
        f"rank {getattr(est, 'rank_', '?')}, {est.n_iter_} DOP steps, refined {getattr(est, 'refined_', False)}")
    for name, trace in (("dopfast PCP (ADMM), tol 1e-7", pcp_trace(bg, y, budget, psd=False, tol=1e-7)),
                        ("AltProj-class, rank 1 given", altproj_trace(bg, y, 1, budget))):
        if trace.final is None:
            rows.append([name, f">{budget:g}", f"{trace.points[-1][1]:.1e}", "—", "budget reached"])
        else:
            hit = trace.time_to(1e-3)
            row(name, trace.elapsed, trace.final, f"{'—' if hit is None else f'{hit:.3g}'} s to background error 1e-3")
    return (f"### Video {h}×{w}, {frames} frames ({h * w} × {frames}), {machine_name('cpu')}, "
            f"{torch.get_num_threads()} thread(s)\n\n"
            + table(["method", "seconds", "background error", "foreground F1", "note"], rows) + "\n")


def _sync(t: torch.Tensor) -> None:
    if t.is_cuda:
        torch.cuda.synchronize(t.device)


def timed_fit(x_true, y, psd=True, **params) -> tuple[Trace, RobustPCA]:
    """``RobustPCA(**params)`` end to end (its warnings silenced), timed to its return; the trace holds its
    error against ``x_true``."""
    _sync(y)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = RobustPCA(model="psd" if psd else "general", random_state=0, **params).fit(y)
    _sync(y)
    tr = Trace()
    tr.add(time.perf_counter() - t0, relative_error(est.low_rank_, x_true))
    tr.final = est.low_rank_
    return tr, est


def gpu_table(args) -> str:
    """The default, PCP and the rank-given method on the GPU, on the paper's data at each size."""
    rows = []
    for n in args.sizes or [10_000]:
        r = args.rank or 50
        x_true, _, y = rpca_problem(n, r, 0.1, seed=0)
        x_true, y = x_true.cuda(), y.cuda()
        results = {"dopfast default (RobustPCA, rank not given)": timed_fit(x_true, y, tol=1e-4)[0],
                   "dopfast PCP (ADMM, X ⪰ 0)": pcp_trace(x_true, y, args.budget),
                   f"AltProj-class, rank {r} given": altproj_trace(x_true, y, r, args.budget)}
        for name, trace in results.items():
            rows.append(trace.row(name, n))
            print(" | ".join(str(v) for v in rows[-1]), flush=True)
        del x_true, y
        torch.cuda.empty_cache()
    sizes = sorted({row[0] for row in rows})
    return (f"### Time to accuracy on {torch.cuda.get_device_name()}, torch {torch.__version__}, "
            f"budget {args.budget:g} s\n\n"
            + table(["n", "method", "s to 1e-1", "s to 1e-2", "s to 1e-4", "final error", "total s"], rows) + "\n\n"
            + "**Default against the others** (seconds to 1e-4): " + "; ".join(_ratios(rows, n) for n in sizes)
            + ".\n")


def _ratios(rows, n) -> str:
    """The default's time to 1e-4 as a multiple of PCP's and of the rank-given method's, at size n."""
    times = {r[1].split(" (")[0].split(",")[0]: r[4] for r in rows if r[0] == n}
    mine = times.get("dopfast default")
    parts = []
    for name, label in (("dopfast PCP", "PCP"), ("AltProj-class", "AltProj (rank given)")):
        other = times.get(name)
        if mine in (None, "—") or other in (None, "—"):
            parts.append(f"{label} —")
        else:
            parts.append(f"{float(mine) / float(other):.2g}× {label}")
    return f"n = {n}: " + ", ".join(parts)


def _fastest_to_1e4(rows, n) -> str:
    reached = [(float(r[4]), r[1]) for r in rows if r[0] == n and r[4] != "—"]
    if not reached:
        return f"n = {n}: no method reached 1e-4"
    seconds, name = min(reached)
    return f"n = {n}: fastest to 1e-4 is {name} ({seconds:.3g} s)"


def main(argv=None) -> int:
    ap = bench_parser(__doc__, threads=(1,))
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="default: 50 200 1000 (CPU), 10000 (GPU)")
    ap.add_argument("--rank", type=int, default=None, help="default: max(5, n/50) (CPU), 50 (GPU)")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds per method and size")
    ap.add_argument("--video", type=int, nargs=3, metavar=("H", "W", "FRAMES"), default=None,
                    help="also the background/foreground job on the synthetic video, e.g. --video 120 160 200")
    ap.add_argument("--video-only", action="store_true", help="only the video job (with --video)")
    args = parse(ap, argv)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            ap.error("--device cuda: no CUDA device is available")
        if args.video:
            ap.error("--video runs on the CPU; leave out --device cuda")
        text = gpu_table(args)
        print(text)
        emit(args, [text])
        return 0
    torch.set_num_threads(args.threads[0])
    args.sizes = args.sizes or [50, 200, 1000]
    rows = []
    texts = []
    if args.video:
        texts.append(video_job(args.video, args.budget))
    for n in ([] if args.video and args.video_only else args.sizes):
        r = args.rank or max(5, n // 50)
        x_true, _, y = rpca_problem(n, r, 0.1, seed=0)
        chunk = 500 if n <= 200 else 50
        results = {}
        results[f"dopfast DOP r'=n ({n})"] = dop_trace(x_true, y, n, args.budget, chunk)
        results[f"dopfast DOP r'=4r ({4 * r})"] = dop_trace(x_true, y, 4 * r, args.budget, chunk)
        results["dopfast default (RobustPCA, rank not given)"] = timed_fit(x_true, y, tol=1e-4)[0]
        results["dopfast PCP (ADMM, X ⪰ 0)"] = pcp_trace(x_true, y, args.budget)
        results["eager PyTorch DOP"] = eager_trace(x_true, y, args.budget, chunk)
        results["tensorly robust_pca"] = tensorly_trace(x_true, y, args.budget)
        results[f"AltProj-class, rank {r} given"] = altproj_trace(x_true, y, r, args.budget)
        if n <= 64:
            from dopfast.rpca.convex import solve_convex

            t0 = time.perf_counter()
            xc, _, _ = solve_convex(y.numpy(), psd=True)
            tr = Trace()
            tr.add(time.perf_counter() - t0, relative_error(torch.from_numpy(xc), x_true))
            results["cvxpy (Clarabel), eq. (8)"] = tr
        for name, trace in results.items():
            rows.append(trace.row(name, n))
            print(" | ".join(str(v) for v in rows[-1]), flush=True)
    text = (f"### Time to accuracy, {machine_name('cpu')}, {args.threads[0]} thread(s), budget {args.budget:g} s\n\n"
            + table(["n", "method", "s to 1e-1", "s to 1e-2", "s to 1e-4", "final error", "total s"], rows) + "\n\n"
            + "**Verdict**: " + "; ".join(_fastest_to_1e4(rows, n) for n in args.sizes) + ".\n\n"
            + "**Default against the others** (seconds to 1e-4): " + "; ".join(_ratios(rows, n) for n in args.sizes)
            + ".\n")
    if rows:
        texts.insert(0, text)
    print("\n".join(texts))
    emit(args, texts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
