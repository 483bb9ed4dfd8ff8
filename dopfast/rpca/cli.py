"""``python -m dopfast demo``: robust PCA on the DOP paper's synthetic setting (what ``make demo`` runs)."""

from __future__ import annotations

import math
import time

from .. import _validate


def run_demo(args) -> int:
    from .data import relative_error, rpca_problem
    from .dop import paper_dop
    from .estimator import RobustPCA

    n, rank, p = args.n, args.rank, args.corruption
    if rank > n:
        raise SystemExit(f"error: --rank {rank} is larger than --n {n}")
    x_true, _, y = rpca_problem(n, rank, p, seed=args.seed)
    print(f"robust PCA: X* = U U^T (n={n}, rank {rank}) plus {p:.0%} gross corruption N(0, 10^2)")
    t0 = time.perf_counter()
    out = paper_dop(y, math.sqrt(n), seed=args.seed + 1, steps=args.iters)
    seconds = time.perf_counter() - t0
    err = relative_error(out.u @ out.u.T, x_true)
    print(f"  DOP, the paper's settings (tau=1e-4, alpha=sqrt(n), {int(out.n_iter)} steps, one fused op): "
          f"relative error {err:.2e} in {seconds:.2f} s")
    t0 = time.perf_counter()
    est = RobustPCA(model="psd", random_state=args.seed).fit(y)
    seconds = time.perf_counter() - t0
    print(f"  dopfast.RobustPCA (scale-free step, {est.n_iter_} steps, certified refinement, rank {est.rank_} found): "
          f"relative error {relative_error(est.low_rank_, x_true):.2e} in {seconds:.2f} s")
    print(f"relative recovery error ||X - X*||_F / ||X*||_F = {relative_error(est.low_rank_, x_true):.3e}")
    return 0


def add_parser(sub) -> None:
    demo = sub.add_parser("demo", help="robust PCA on the DOP paper's synthetic setting")
    demo.add_argument("--n", type=_validate.arg_type(_validate.integer), default=50)
    demo.add_argument("--rank", type=_validate.arg_type(_validate.integer), default=5)
    demo.add_argument("--corruption", type=_validate.arg_type(_validate.real, inclusive=True, maximum=1.0),
                      default=0.1)
    demo.add_argument("--iters", type=_validate.arg_type(_validate.integer, minimum=0), default=20_000)
    demo.add_argument("--seed", type=_validate.arg_type(_validate.integer, minimum=0), default=0)
    demo.set_defaults(run=run_demo)
