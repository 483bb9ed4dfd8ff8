"""``python -m dopfast sop``: train a classifier on noisy labels with SOP or a baseline loss."""

from __future__ import annotations

import argparse

from .. import _validate


def _noise_spec(text: str) -> str:
    from .data import parse_noise

    try:
        parse_noise(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def run(args) -> int:
    from .train import train

    sop_kw = {k: v for k, v in (("lr_u", args.lr_u), ("lr_v", args.lr_v), ("variant", args.variant)) if v is not None}
    res = train(args.dataset, args.noise, args.loss, epochs=args.epochs, lr=args.lr, seed=args.seed,
                device=args.device, verbose=not args.quiet, sop_kw=sop_kw)
    print(f"{args.dataset}, noise {args.noise}, loss {args.loss}: clean test accuracy {res.test_accuracy:.4f} "
          f"after {args.epochs} epochs ({res.seconds:.1f} s)")
    if res.noisy is not None:
        print(f"({int(res.noisy.sum())} of {len(res.noisy)} training labels were corrupted)")
    return 0


def add_parser(sub) -> None:
    from .train import LOSSES

    positive = _validate.arg_type(_validate.real)
    sop = sub.add_parser("sop", help="train a classifier on noisy labels (SOP or a baseline loss)",
                         allow_abbrev=False)
    sop.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    sop.add_argument("--noise", type=_noise_spec, default="sym:0.4", help="none, sym:RATE or asym:RATE")
    sop.add_argument("--loss", choices=LOSSES, default="sop")
    sop.add_argument("--epochs", type=_validate.arg_type(_validate.integer), default=100)
    sop.add_argument("--lr", type=positive, default=0.1, help="network learning rate")
    sop.add_argument("--lr-u", type=positive, default=None, help="SOP: learning rate of u")
    sop.add_argument("--lr-v", type=positive, default=None, help="SOP: learning rate of v")
    sop.add_argument("--variant", choices=["official", "paper"], default=None, help="SOP variant")
    sop.add_argument("--seed", type=_validate.arg_type(_validate.integer, minimum=0), default=0)
    sop.add_argument("--device", type=_validate.arg_type(_validate.device), default=None,
                     help="cpu or cuda (default cpu)")
    sop.add_argument("--quiet", action="store_true", help="no progress bar")
    sop.set_defaults(run=run)
