"""Command line: ``python -m dopfast demo``."""

from __future__ import annotations

import argparse
import math
import sys
import time


def _demo(args) -> int:
    import torch

    from . import ops

    n, rank, p = args.n, args.rank, args.corruption
    gen = torch.Generator().manual_seed(args.seed)
    us = torch.randn(n, rank, generator=gen, dtype=torch.float64)
    x_true = us @ us.T
    mask = torch.rand(n, n, generator=gen) < p
    s_true = torch.zeros(n, n, dtype=torch.float64)
    s_true[mask] = 10 * torch.randn(int(mask.sum()), generator=gen, dtype=torch.float64)
    y = x_true + s_true
    u0 = 1e-4 * torch.randn(n, n, generator=gen, dtype=torch.float64)
    g0 = 1e-4 * torch.randn(n, n, generator=gen, dtype=torch.float64)
    t0 = time.perf_counter()
    out = ops.rpca_dop_solve(y, u0, g0, g0.clone(), 1e-4, math.sqrt(n), args.iters)
    seconds = time.perf_counter() - t0
    err = float((out.u @ out.u.T - x_true).norm() / x_true.norm())
    print(f"robust PCA by DOP: n={n}, rank={rank}, {p:.0%} gross corruption, {int(out.n_iter)} steps "
          f"in {seconds:.2f} s")
    print(f"relative recovery error ||X - X*||_F / ||X*||_F = {err:.3e}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dopfast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="robust PCA on the DOP paper's synthetic setting")
    demo.add_argument("--n", type=int, default=50)
    demo.add_argument("--rank", type=int, default=5)
    demo.add_argument("--corruption", type=float, default=0.1)
    demo.add_argument("--iters", type=int, default=20_000)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
