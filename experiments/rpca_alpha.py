"""DOP paper, Figure 2a: recovery error against the learning-rate ratio α (n = 50, r = 5, p = 30%).

    python experiments/rpca_alpha.py [--full]

Methods per α: DOP with the paper's settings (τ = 1e-4, init std 1e-4, h = g, 2×10⁴ steps, r' = n),
DOP with dopfast's step rule and stopping test (``RobustPCA(refine=False)``), and the convex eq. (8) with
λ = 1/α (ADMM). Writes results/rpca_alpha.csv and .png; the best α should sit near √n ≈ 7.1.
"""

from __future__ import annotations

import math
import time
import warnings

import _common
import numpy as np
import torch

from dopfast import RobustPCA
from dopfast.rpca import ConvergenceWarning, dop, relative_error, rpca_problem

N, RANK, P = 50, 5, 0.3


def paper_dop(ys: torch.Tensor, alpha: float, seed: int, steps: int = 20_000):
    """The paper's DOP on ys: (low-rank, sparse) estimates."""
    out = dop.paper_dop(ys, alpha, seed, steps)
    return out.u @ out.u.mT, out.g * out.g - out.h * out.h


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--trials", type=int, default=None)
    args = ap.parse_args()
    csv_path, png_path = _common.outputs(args, "rpca_alpha.csv", "rpca_alpha.png")
    trials = args.trials or (10 if args.full else 2)
    alphas = sorted(set(np.round(np.logspace(0, 2, 15 if args.full else 6), 3).tolist() + [round(math.sqrt(N), 3)]))
    data = [rpca_problem(N, RANK, P, seed=args.seed + t) for t in range(trials)]
    xs = torch.stack([d[0] for d in data])
    ss = torch.stack([d[1] for d in data])
    ys = torch.stack([d[2] for d in data])
    rows = []
    t0 = time.perf_counter()
    for alpha in alphas:
        xp, sp = paper_dop(ys, alpha, args.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            rule = RobustPCA(model="psd", alpha=alpha, refine=False, random_state=args.seed).fit(ys)
            convex = RobustPCA(method="pcp", model="psd", alpha=alpha, tol=1e-6, max_iter=1500).fit(ys)
        errs = {
            "paper_x": [relative_error(xp[i], xs[i]) for i in range(trials)],
            "paper_s": [relative_error(sp[i], ss[i]) for i in range(trials)],
            "rule_x": [relative_error(rule.low_rank_[i], xs[i]) for i in range(trials)],
            "convex_x": [relative_error(convex.low_rank_[i], xs[i]) for i in range(trials)],
        }
        rows.append([alpha] + [float(np.mean(errs[k])) for k in errs])
        print(f"alpha={alpha:8.3f}  " + "  ".join(f"{k}={np.mean(v):.3e}" for k, v in errs.items()), flush=True)
    header = ["alpha", "dop_paper_err_X", "dop_paper_err_S", "dop_rule_err_X", "convex_eq8_err_X"]
    _common.write_csv(csv_path, header, rows)
    best = min(rows, key=lambda r: r[1])
    print(_common.markdown_table(header, rows))
    print(f"best alpha (paper settings) = {best[0]:.3g}  (sqrt(n) = {math.sqrt(N):.3g});  "
          f"{time.perf_counter() - t0:.0f} s")
    plt = _common.pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    a = [r[0] for r in rows]
    for col, label, style in ((1, "DOP, paper settings", "o-"), (3, "DOP, dopfast step rule", "s--"),
                              (4, "convex eq. (8), λ = 1/α", "^:")):
        ax.loglog(a, [r[col] for r in rows], style, label=label)
    ax.axvline(math.sqrt(N), color="gray", lw=0.8)
    ax.text(math.sqrt(N) * 1.05, ax.get_ylim()[0] * 1.5, "√n", color="gray")
    ax.set_xlabel("learning-rate ratio α")
    ax.set_ylabel("‖X̃ − X*‖_F / ‖X*‖_F")
    ax.set_title(f"n = {N}, r = {RANK}, p = {P:.0%}, {trials} trials")
    ax.legend(fontsize=8)
    _common.save_figure(fig, png_path, csv_path)


if __name__ == "__main__":
    main()
