"""Markdown tables for the benchmarks' and experiments' reports."""

from __future__ import annotations


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; floats are printed with three significant digits."""
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(out)
