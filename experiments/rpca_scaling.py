"""Time versus size for robust PCA: dopfast's default (rank not given), the pure DOP route, PCP, a rank-given
AltProj-class method and tensorly, on the DOP paper's data, square and tall, in one run.

    python experiments/rpca_scaling.py [--full] [--shapes KIND:N ...] [--budget SECONDS]

Data: rank max(5, n/50), 10% of the entries corrupted by N(0, 10²); square n × n with X* = U*U*ᵀ (the PSD
model, as in the paper) and tall 4n × n with X* = U*V*ᵀ (the general model). For each method: seconds until
‖X − X*‖_F/‖X*‖_F ≤ 1e-4 ("—" when not reached), the final error and the total seconds. The default and the
pure DOP route run to their own stopping test (the latter capped at 3,000 steps, or as many as the budget
allows); PCP, AltProj and tensorly stop at 1e-9 or the budget. Default sizes: square n = 100, 250, 500,
1000, 2000 and tall n = 100, 250, 500; --full adds square 4000 and tall 1000; --shapes picks shapes
(e.g. ``--shapes square:4000 tall:1000``). One thread. Writes
rpca_scaling.csv/.png (--replot CSV redraws the plot of an earlier run).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import _common
import torch

from dopfast.bench.rpca import altproj_trace, pcp_trace, tensorly_trace, timed_fit
from dopfast.rpca import rpca_problem

TARGET = 1e-4


def dop_steps(x_true, y, psd, budget) -> int:
    """As many DOP steps as fit in the budget (timed on 20 steps), at most 3,000."""
    per_step = timed_fit(x_true, y, psd, refine=False, max_iter=20)[0].elapsed / 20
    return max(20, min(3000, int(budget / per_step)))


def _shape(text: str) -> tuple[str, int]:
    kind, _, n = text.partition(":")
    if kind not in ("square", "tall") or not n.isdigit() or int(n) < 10:
        raise argparse.ArgumentTypeError(f"expected square:N or tall:N with N >= 10, got {text!r}")
    return kind, int(n)


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--budget", type=float, default=60.0, help="seconds per method and size (PCP, AltProj, tensorly)")
    ap.add_argument("--replot", type=Path, metavar="CSV", help="only draw the plot of an earlier run's CSV")
    ap.add_argument("--shapes", nargs="+", metavar="KIND:N", type=_shape,
                    help="only these shapes, e.g. square:4000 tall:1000 (instead of the default or --full sizes)")
    args = ap.parse_args()
    if args.replot:
        png = args.replot.with_suffix(".png")
        if png.exists() and not args.overwrite:
            ap.error(f"{png} exists; pass --overwrite to replace it")
        with open(args.replot, newline="") as fh:
            plot(list(csv.reader(fh))[1:], png, args.replot)
        return
    torch.set_num_threads(1)
    csv_path, png_path = _common.outputs(args, "rpca_scaling.csv", "rpca_scaling.png")
    shapes = [("square", n) for n in (100, 250, 500, 1000, 2000)] + [("tall", n) for n in (100, 250, 500)]
    if args.full:
        shapes += [("square", 4000), ("tall", 1000)]
    if args.shapes:
        shapes = args.shapes
    rows = []
    for kind, n in shapes:
        psd, r = kind == "square", max(5, n // 50)
        x_true, _, y = rpca_problem(n, r, 0.1, seed=0, m=None if psd else 4 * n)
        runs = {
            "default (rank not given)": lambda: timed_fit(x_true, y, psd, tol=1e-4)[0],
            "pure DOP (refine=False)": lambda: timed_fit(x_true, y, psd, refine=False, tol=1e-4,
                                                         max_iter=dop_steps(x_true, y, psd, args.budget))[0],
            "PCP (ADMM)": lambda: pcp_trace(x_true, y, args.budget, psd=psd),
            f"AltProj-class, rank {r} given": lambda: altproj_trace(x_true, y, r, args.budget),
            "tensorly robust_pca": lambda: tensorly_trace(x_true, y, args.budget),
        }
        for name, run in runs.items():
            trace = run()
            hit = trace.time_to(TARGET)
            rows.append([kind, f"{y.shape[0]}×{y.shape[1]}", n, name, "—" if hit is None else round(hit, 3),
                         f"{trace.points[-1][1]:.1e}", round(trace.elapsed, 3)])
            print(" | ".join(str(v) for v in rows[-1]), flush=True)
    header = ["shape", "size", "n", "method", "s to 1e-4", "final error", "total s"]
    _common.report(csv_path, header, rows)

    plot(rows, png_path, csv_path)


def plot(rows, png_path, csv_path) -> None:
    """Seconds to 1e-4 against n, one line per method (filled: reached; hollow: total time, not reached)."""
    plt = _common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, kind in zip(axes, ("square", "tall")):
        for label in dict.fromkeys(r[3].split(",")[0] for r in rows):
            pts = [(int(r[2]), float(r[4] if r[4] != "—" else r[6]), r[4] != "—") for r in rows
                   if r[0] == kind and r[3].split(",")[0] == label]
            if not pts:
                continue
            line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", label=label)
            ax.scatter([p[0] for p in pts if p[2]], [p[1] for p in pts if p[2]], color=line.get_color())
            ax.scatter([p[0] for p in pts if not p[2]], [p[1] for p in pts if not p[2]], facecolors="none",
                       edgecolors=line.get_color())
        ax.set(xscale="log", yscale="log", xlabel="n (square n×n; tall 4n×n)", title=kind)
    axes[0].set_ylabel("seconds to 1e-4 (hollow: total time, 1e-4 not reached)")
    axes[1].legend(fontsize=7)
    _common.save_figure(fig, png_path, csv_path, dpi=110)

if __name__ == "__main__":
    main()
