"""SOP paper §3: the linear theory, checked numerically (its Figures 2 and 4).

    python experiments/sop_linear.py [--full]

1. Implicit bias. Gradient descent on ½‖Jθ + u∘u − v∘v − y‖² (lr τ for θ, ατ for u, v; θ = 0, u = v = γ1,
   γ = e⁻⁸) against the convex ``min ½‖θ‖² + λ‖s‖₁ s.t. y = Jθ + s`` (cvxpy), for α ∈ [4, 4000] and
   λ ∈ [1e-4, 1], (N, p, r, k) = (20, 40, 3, 3): the relative distance ρ(α, λ) between the solutions should be
   small along α = −log γ / (2λ). All α values run as one batched torch loop.
2. Exact recovery by the convex program (N = 100, p = 150, λ = 0.1): success (both relative errors < 1e-3)
   over rank r × sparsity k, 20 trials per cell with --full (5 by default).
Writes sop_linear_bias.csv/.png and sop_linear_phase.csv/.png.
"""

from __future__ import annotations

import math
import time

import _common
import numpy as np
import torch

GAMMA = math.exp(-8)


def linear_data(n, p, r, k, seed):
    gen = torch.Generator().manual_seed(seed)
    j = torch.randn(n, r, generator=gen, dtype=torch.float64) @ torch.randn(r, p, generator=gen, dtype=torch.float64)
    s = torch.zeros(n, dtype=torch.float64)
    s[torch.randperm(n, generator=gen)[:k]] = torch.randn(k, generator=gen, dtype=torch.float64)
    theta = torch.randn(p, generator=gen, dtype=torch.float64)
    y = j @ theta + s
    theta_star = torch.linalg.pinv(j) @ (j @ theta)  # the minimum-norm solution of Jθ = Jθ₀
    return j, y, theta_star, s


def gd_batch(j, y, alphas, max_steps=400_000, tol=1e-11):
    """GD for every α at once (rows); per-row step sizes keep both parts stable. Returns θ, s (rows)."""
    a = torch.tensor(alphas, dtype=torch.float64)[:, None]
    lip = float(torch.linalg.matrix_norm(j, ord=2)) ** 2
    tau = torch.minimum(torch.full_like(a, 0.5 / lip), 0.05 / (a * float(y.abs().max())))
    theta = torch.zeros(len(alphas), j.shape[1], dtype=torch.float64)
    u = torch.full((len(alphas), j.shape[0]), GAMMA, dtype=torch.float64)
    v = u.clone()
    y_norm = float(y.norm())
    for step in range(max_steps):
        r = theta @ j.T + u * u - v * v - y
        theta -= tau * (r @ j)
        u -= 2 * a * tau * u * r
        v += 2 * a * tau * v * r
        if step % 1000 == 0 and float(r.norm(dim=1).max()) / y_norm < tol:
            break
    return theta, u * u - v * v, step + 1


def convex_solution(j, y, lam):
    import cvxpy as cp

    theta = cp.Variable(j.shape[1])
    s = cp.Variable(j.shape[0])
    objective = cp.Minimize(0.5 * cp.sum_squares(theta) + lam * cp.norm1(s))
    prob = cp.Problem(objective, [j.numpy() @ theta + s == y.numpy()])
    prob.solve(solver="CLARABEL" if "CLARABEL" in cp.installed_solvers() else None)
    return torch.from_numpy(np.asarray(theta.value)), torch.from_numpy(np.asarray(s.value))


def rel_dist(a, b):
    return float((a - b).norm() / max(float(a.norm()), float(b.norm()), 1e-300))


def bias_experiment(args):
    csv_path, png_path = _common.outputs(args, "sop_linear_bias.csv", "sop_linear_bias.png")
    j, y, _, _ = linear_data(20, 40, 3, 3, args.seed)
    count = 13 if args.full else 7
    alphas = np.logspace(math.log10(4), math.log10(4000), count).tolist()
    lams = np.logspace(-4, 0, count).tolist()
    t0 = time.perf_counter()
    theta_a, s_a, steps = gd_batch(j, y, alphas)
    print(f"GD for {count} values of alpha: {steps} steps in {time.perf_counter() - t0:.1f} s", flush=True)
    convex = [convex_solution(j, y, lam) for lam in lams]
    rows, rho_t, rho_s = [], np.zeros((count, count)), np.zeros((count, count))
    for ia, alpha in enumerate(alphas):
        for il, lam in enumerate(lams):
            rho_t[ia, il] = rel_dist(theta_a[ia], convex[il][0])
            rho_s[ia, il] = rel_dist(s_a[ia], convex[il][1])
            rows.append([alpha, lam, rho_t[ia, il], rho_s[ia, il]])
    _common.write_csv(csv_path, ["alpha", "lambda", "rho_theta", "rho_s"], rows)
    on_curve = [min(range(count), key=lambda il: abs(math.log(lams[il] * 2 * a / 8))) for a in alphas]
    diag = [rho_t[ia, il] for ia, il in enumerate(on_curve)]
    print(f"rho_theta along alpha = -log(gamma)/(2 lambda): median {np.median(diag):.2e}, max {np.max(diag):.2e}; "
          f"over the whole grid: median {np.median(rho_t):.2e}")
    plt = _common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, rho, name in ((axes[0], rho_t, "θ"), (axes[1], rho_s, "s")):
        im = ax.pcolormesh(lams, alphas, np.log10(rho + 1e-16), shading="nearest", cmap="viridis")
        ax.plot(lams, [8 / (2 * lam) for lam in lams], "w-", lw=1.5, label="α = −log γ / (2λ)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(alphas[0], alphas[-1])
        ax.set_xlabel("λ (convex problem)")
        ax.set_ylabel("α (gradient descent)")
        ax.set_title(f"log10 relative distance of {name}")
        fig.colorbar(im, ax=ax)
    axes[0].legend(fontsize=7, loc="lower left")
    _common.save_figure(fig, png_path, csv_path)


def phase_experiment(args):
    csv_path, png_path = _common.outputs(args, "sop_linear_phase.csv", "sop_linear_phase.png")
    trials = 20 if args.full else 5
    grid = [5, 10, 20, 30, 40, 60, 80] if args.full else [5, 20, 40, 80]
    success = np.zeros((len(grid), len(grid)))
    rows = []
    t0 = time.perf_counter()
    for ir, r in enumerate(grid):
        for ik, k in enumerate(grid):
            ok = 0
            for t in range(trials):
                j, y, theta_star, s_star = linear_data(100, 150, r, k, args.seed + 100 * t + 7 * r + k)
                theta, s = convex_solution(j, y, 0.1)
                e_t = float((theta - theta_star).norm() / theta_star.norm())
                e_s = float((s - s_star).norm() / s_star.norm())
                ok += e_t < 1e-3 and e_s < 1e-3
            success[ir, ik] = ok / trials
            rows.append([r, k, ok / trials])
            print(f"r={r} k={k}: success {ok}/{trials}", flush=True)
    _common.write_csv(csv_path, ["rank", "sparsity", "success"], rows)
    print(f"{time.perf_counter() - t0:.0f} s")
    plt = _common.pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.8))
    ax.imshow(success, origin="lower", cmap="gray", vmin=0, vmax=1)
    ax.set_xticks(range(len(grid)))
    ax.set_xticklabels(grid)
    ax.set_yticks(range(len(grid)))
    ax.set_yticklabels(grid)
    ax.set_xlabel("sparsity k")
    ax.set_ylabel("rank r")
    ax.set_title(f"exact recovery by (25), λ = 0.1 ({trials} trials)", fontsize=9)
    _common.save_figure(fig, png_path, csv_path)


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    bias_experiment(args)
    phase_experiment(args)


if __name__ == "__main__":
    main()
