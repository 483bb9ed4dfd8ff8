"""``python -m dopfast sop``: train a classifier on noisy labels with SOP or a baseline loss."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from .. import _validate


def _noise_spec(text: str) -> str:
    from .data import parse_noise

    try:
        parse_noise(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _read_data(args):
    """``(X, y, X_test, y_test)`` from --data: a .npz (arrays X, y, optionally X_test, y_test) or a .csv with a
    header whose --label-column holds the labels (every other column is a feature)."""
    import numpy as np

    path = Path(args.data)
    if not path.is_file():
        raise SystemExit(f"error: --data {path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                missing = [k for k in ("X", "y") if k not in f]
                if missing:
                    raise SystemExit(f"error: --data {path}: the archive has no array {missing[0]!r} "
                                     f"(it has {sorted(f.files)})")
                test = ("X_test" in f) and ("y_test" in f)
                return f["X"], f["y"], f["X_test"] if test else None, f["y_test"] if test else None
        if suffix == ".csv":
            with open(path, newline="") as fh:
                header = next(csv.reader(fh), None)
            if not header:
                raise SystemExit(f"error: --data {path}: empty file")
            if args.label_column not in header:
                raise SystemExit(f"error: --data {path}: no label column {args.label_column!r} (columns: "
                                 f"{', '.join(header[:12])}{'...' if len(header) > 12 else ''}); name it with "
                                 f"--label-column")
            table = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=np.float64, ndmin=2)
            if table.shape[1] != len(header):
                raise SystemExit(f"error: --data {path}: rows have {table.shape[1]} values for {len(header)} columns")
            col = header.index(args.label_column)
            return np.delete(table, col, axis=1), table[:, col], None, None
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: --data {path} cannot be read: {exc}") from None
    raise SystemExit(f"error: --data {path}: expected a .npz or .csv file")


def _check_new_file(path: str | None, flag: str, overwrite: bool) -> None:
    if path is None:
        return
    p = Path(path)
    if p.exists() and not overwrite:
        raise SystemExit(f"error: {flag} {path} exists; pass --overwrite to replace it")
    if not p.parent.is_dir():
        raise SystemExit(f"error: {flag} {path}: the folder {p.parent} does not exist")


def _write_label_issues(path: str, issues, given) -> None:
    rows = [(int(i), given[i], issues.suggested_labels[i], f"{issues.scores[i]:.6g}", bool(issues.mask[i]))
            for i in issues.indices]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["index", "given_label", "suggested_label", "score", "flagged"])
        writer.writerows(rows)


def run(args) -> int:
    from .train import train

    sop_kw = {k: v for k, v in (("lr_u", args.lr_u), ("lr_v", args.lr_v), ("variant", args.variant)) if v is not None}
    epochs = {} if args.epochs is None else {"epochs": args.epochs}  # training: 100; label issues: 30
    if args.data is None:
        if args.label_issues or args.model != "mlp":
            raise SystemExit("error: --label-issues and --model apply to --data FILE")
        res = train(args.dataset, args.noise, args.loss, lr=args.lr, seed=args.seed, device=args.device,
                    verbose=not args.quiet, sop_kw=sop_kw, **epochs)
        print(f"{args.dataset}, noise {args.noise}, loss {args.loss}: clean test accuracy {res.test_accuracy:.4f} "
              f"after {len(res.history)} epochs ({res.seconds:.1f} s)")
        if res.noisy is not None:
            print(f"({int(res.noisy.sum())} of {len(res.noisy)} training labels were corrupted)")
        return 0
    _check_new_file(args.label_issues, "--label-issues", args.overwrite)
    x, y, x_test, y_test = _read_data(args)
    hidden = () if args.model == "linear" else (256, 256)
    try:
        if args.label_issues:
            from .label_issues import find_label_issues

            if args.loss != "sop":
                raise SystemExit("error: --label-issues needs --loss sop (the scores are SOP's noise variables)")
            issues = find_label_issues(x, y, model=args.model, seed=args.seed, device=args.device,
                                       verbose=not args.quiet, lr=args.lr, sop_kw=sop_kw, **epochs)
            _write_label_issues(args.label_issues, issues, y.astype(int).tolist())
            print(f"{len(y)} samples: estimated noise rate {issues.noise_rate:.3f}, {int(issues.mask.sum())} labels "
                  f"flagged; wrote {args.label_issues}")
            return 0
        res = train(x, y, args.loss, lr=args.lr, seed=args.seed, device=args.device, verbose=not args.quiet,
                    sop_kw=sop_kw, hidden=hidden, X_test=x_test, y_test=y_test, **epochs)
    except (ValueError, TypeError, FloatingPointError) as exc:
        raise SystemExit(f"error: {exc}") from None
    where = "the given test set" if x_test is not None else "a held-out 30% (labels as given)"
    print(f"{args.data}: accuracy {res.test_accuracy:.4f} on {where} after {len(res.history)} epochs "
          f"({res.seconds:.1f} s)")
    return 0


def add_parser(sub) -> None:
    from .train import LOSSES

    positive = _validate.arg_type(_validate.real)
    sop = sub.add_parser("sop", help="train a classifier on noisy labels (SOP or a baseline loss)",
                         allow_abbrev=False)
    sop.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    sop.add_argument("--noise", type=_noise_spec, default="sym:0.4", help="none, sym:RATE or asym:RATE")
    sop.add_argument("--loss", choices=LOSSES, default="sop")
    sop.add_argument("--epochs", type=_validate.arg_type(_validate.integer), default=None,
                     help="training epochs (default 100; 30 with --label-issues)")
    sop.add_argument("--lr", type=positive, default=0.1, help="network learning rate")
    sop.add_argument("--lr-u", type=positive, default=None, help="SOP: learning rate of u")
    sop.add_argument("--lr-v", type=positive, default=None, help="SOP: learning rate of v")
    sop.add_argument("--variant", choices=["official", "paper"], default=None, help="SOP variant")
    sop.add_argument("--seed", type=_validate.arg_type(_validate.integer, minimum=0), default=0)
    sop.add_argument("--device", type=_validate.arg_type(_validate.device), default=None,
                     help="cpu or cuda (default cpu)")
    sop.add_argument("--quiet", action="store_true", help="no progress bar")
    sop.add_argument("--data", default=None, help="your own data: a .npz (X, y[, X_test, y_test]) or a .csv file")
    sop.add_argument("--label-column", default="label", help="the .csv column that holds the labels")
    sop.add_argument("--model", choices=["mlp", "linear"], default="mlp", help="with --data: the classifier")
    sop.add_argument("--label-issues", default=None, metavar="OUT.csv",
                     help="with --data: write the ranked label issues (index, given, suggested label, score)")
    sop.add_argument("--overwrite", action="store_true", help="allow --label-issues to replace a file")
    sop.set_defaults(run=run)
