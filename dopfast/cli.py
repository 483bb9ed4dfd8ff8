"""Command line: ``python -m dopfast demo | sop | dip`` (``--help`` on each)."""

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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def _noise_spec(text: str) -> str:
    from .data import parse_noise

    try:
        parse_noise(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _sop(args) -> int:
    from .sop_train import train

    sop_kw = {k: v for k, v in (("lr_u", args.lr_u), ("lr_v", args.lr_v), ("variant", args.variant)) if v is not None}
    res = train(args.dataset, args.noise, args.loss, epochs=args.epochs, lr=args.lr, seed=args.seed,
                device=args.device, verbose=not args.quiet, sop_kw=sop_kw)
    print(f"{args.dataset}, noise {args.noise}, loss {args.loss}: clean test accuracy {res.test_accuracy:.4f} "
          f"after {args.epochs} epochs ({res.seconds:.1f} s)")
    if res.noisy is not None:
        print(f"({int(res.noisy.sum())} of {len(res.noisy)} training labels were corrupted)")
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

    from .sop_train import LOSSES

    sop = sub.add_parser("sop", help="train a classifier on noisy labels (SOP or a baseline loss)")
    sop.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    sop.add_argument("--noise", type=_noise_spec, default="sym:0.4", help="none, sym:RATE or asym:RATE")
    sop.add_argument("--loss", choices=LOSSES, default="sop")
    sop.add_argument("--epochs", type=_positive_int, default=100)
    sop.add_argument("--lr", type=_positive_float, default=0.1, help="network learning rate")
    sop.add_argument("--lr-u", type=_positive_float, default=None, help="SOP: learning rate of u")
    sop.add_argument("--lr-v", type=_positive_float, default=None, help="SOP: learning rate of v")
    sop.add_argument("--variant", choices=["official", "paper"], default=None, help="SOP variant")
    sop.add_argument("--seed", type=int, default=0)
    sop.add_argument("--device", default=None, help="cpu or cuda (default cpu)")
    sop.add_argument("--quiet", action="store_true", help="no progress bar")
    sop.set_defaults(run=_sop)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
