"""Command line: ``python -m dopfast demo | sop | dip`` (``--help`` on each); each pipeline adds its own
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
