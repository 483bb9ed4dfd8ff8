"""Shared plumbing of the experiment scripts: output folder that is never overwritten silently, CSV, plots."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from dopfast._report import markdown_table

ROOT = Path(__file__).resolve().parent.parent


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="the paper's full size (slow)")
    p.add_argument("--out", type=Path, default=ROOT / "results", help="output folder (default: results/)")
    p.add_argument("--overwrite", action="store_true", help="replace existing result files")
    p.add_argument("--seed", type=int, default=0)
    return p


def outputs(args, *names: str) -> list[Path]:
    """Paths for this run's files; refuses to clobber existing ones unless --overwrite."""
    args.out.mkdir(parents=True, exist_ok=True)
    paths = [args.out / n for n in names]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not args.overwrite:
        sys.exit(f"error: {', '.join(existing)} exist; pass --overwrite to replace them or --out to write elsewhere")
    return paths


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def report(path: Path, header: list[str], rows: list[list]) -> None:
    """Write the rows as CSV and print them as a Markdown table."""
    write_csv(path, header, rows)
    print(markdown_table(header, rows))


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, png_path: Path, *other_paths: Path, dpi: int = 120) -> None:
    """Lay out and write ``fig``, then say which files this run wrote."""
    fig.tight_layout()
    fig.savefig(png_path, dpi=dpi)
    print("wrote " + ", ".join(str(p) for p in (*other_paths, png_path)))
