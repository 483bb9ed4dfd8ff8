"""Command line: ``python -m dopfast demo | sop | dip | bench`` (``--help`` on each); each pipeline adds its own
subcommand (``dopfast/<pipeline>/cli.py``)."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from .dip import cli as dip_cli
    from .rpca import cli as rpca_cli
    from .sop import cli as sop_cli

    parser = argparse.ArgumentParser(prog="dopfast", description=__doc__, allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (rpca_cli, sop_cli, dip_cli):
        module.add_parser(sub)
    from . import bench

    b = sub.add_parser("bench", help="microbenchmarks against eager PyTorch and torch.compile",
                       description=bench.__doc__ + "\n\n" + "\n".join(f"  {k:5s} {v}" for k, v in
                                                                       bench.BENCHMARKS.items()),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("name", choices=list(bench.BENCHMARKS), help="which benchmark")
    b.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's own options (--help after the name)")
    b.set_defaults(run=lambda args: bench.run(args.name, args.options))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
