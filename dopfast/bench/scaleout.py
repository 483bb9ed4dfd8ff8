"""The row-sharded DOP step (RobustPCA(distributed=True)) and the cost model of docs/scale-out.md.

    python -m dopfast bench scaleout [--device cpu|cuda] [--quick] [--out FILE] [--plot FILE]

Measures, in one run on this machine:
1. the sharded step (one all-reduce per step) on 1 process and on 2 gloo processes, next to the one-process
   whole-loop solver, at a tall U Vᵀ problem and a square U Uᵀ one;
2. gloo all-reduce and all-gather times over message sizes, fitted to ``t = latency + bytes / bandwidth``;
3. the compute side: the one-process sharded step time at several sizes, fitted to
   ``t = 6·m·n·k / F + m·n / E`` (F: GEMM rate, E: elementwise entries per second).
Then prints the cost model: per step and rank, FLOPs, memory bytes and collective bytes, and the time on this
machine (calibrated) and on H100s with NVLink / InfiniBand (figures stated as assumptions in the table).
"""

from __future__ import annotations

import math
import os
import tempfile
import time

import numpy as np
import torch

from .._group import spawn
from .common import bench_parser, emit, machine_name, parse, show, table

# Stated assumptions for the GPU rows (not measured here): H100 SXM.
H100 = dict(flops=50e12, hbm=3.0e12, memory=80e9)  # FP32 GEMM (no TF32) and achieved HBM bandwidth
NETWORKS = {  # all-reduce over the ring: latency per hop (s), bandwidth per GPU (bytes/s)
    "NVLink (one domain)": (10e-6, 350e9),
    "InfiniBand NDR 400": (20e-6, 45e9),
}
# per local entry: the fused residual step 28 B (read x, g, h, y; write g, h, r), x written 4 B, r read by 2 GEMMs 8 B
BYTES_PER_ENTRY = 40
ARRAYS = 5  # y, g, h, x, r per rank (float32)


def _problem(m, n, k, psd, rows, dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(m, n, generator=gen, dtype=dtype)[rows]
    u = 1e-3 * torch.randn(n if psd else m, k, generator=gen, dtype=dtype)
    u = u if psd else u[rows].clone()
    v = None if psd else 1e-3 * torch.randn(n, k, generator=gen, dtype=dtype)
    g = 1e-3 * torch.randn(m, n, generator=gen, dtype=dtype)[rows].clone()
    return y, u, v, g, g.clone()


def _step_seconds(m, n, k, psd, rows_obj, steps):
    from ..rpca.dop import row_steps

    y, u, v, g, h = _problem(m, n, k, psd, rows_obj.rows)
    row_steps(y, u, v, g, h, 1e-3, 1.0, 2, rows_obj)  # warm-up
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        row_steps(y, u, v, g, h, 1e-3, 1.0, steps, rows_obj)
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def _collective_seconds(sizes, reps):
    import torch.distributed as dist

    out = {}
    for numel in sizes:
        x = torch.ones(numel)
        parts = [torch.empty(numel) for _ in range(dist.get_world_size())]
        for name, fn in (("all_reduce", lambda: dist.all_reduce(x)), ("all_gather", lambda: dist.all_gather(parts, x))):
            fn()
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            out[(name, numel)] = (time.perf_counter() - t0) / reps
    return out


def _worker(rank, world, port, cases, sizes, steps, reps, out):
    from .._group import joined
    from ..rpca.rows import Rows

    with joined(rank, world, port):
        result = {"collectives": _collective_seconds(sizes, reps)}
        for m, n, k, psd in cases:
            counts = [m // world + (r < m % world) for r in range(world)]
            rows = Rows(counts[rank], distributed=True)
            result[(m, n, k, psd)] = _step_seconds(m, n, k, psd, rows, steps)
        if rank == 0:
            torch.save(result, out)


def _fused_seconds(m, n, k, psd, steps):
    from .. import ops

    y, u, v, g, h = _problem(m, n, k, psd, slice(0, m))
    y, u, g, h = y[None], u[None], g[None], h[None]
    solve = (lambda: ops.rpca_dop_solve(y, u, g, h, 1e-3, 1.0, steps)) if psd else (
        lambda: ops.rpca_dop_solve_uv(y, u, v[None], g, h, 1e-3, 1.0, steps))
    solve()
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        solve()
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def _fit_line(xs, ys):
    """Least squares ``y = a + b·x`` (non-negative a, b)."""
    a = np.stack([np.ones(len(xs)), np.asarray(xs, float)], 1)
    coef = np.linalg.lstsq(a, np.asarray(ys, float), rcond=None)[0]
    return max(coef[0], 0.0), max(coef[1], 1e-30)


def cost(n, k, world, flops, entries_per_s, latency, bandwidth, m=None):
    """Per step and rank of a row-sharded m × n problem with factor width k on ``world`` devices: FLOPs,
    memory bytes, collective bytes sent, and the compute / communication / total seconds."""
    m = n if m is None else m
    rows = math.ceil(m / world)
    f = 6 * rows * n * k
    mem = BYTES_PER_ENTRY * rows * n
    sent = 2 * (world - 1) / world * 4 * (n * k + 1)  # ring all-reduce, float32
    t_comp = f / flops + rows * n / entries_per_s
    t_comm = 0.0 if world == 1 else 2 * (world - 1) * latency + sent / bandwidth
    return dict(flops=f, mem=mem, sent=sent, comp=t_comp, comm=t_comm, total=t_comp + t_comm,
                memory_per_rank=4 * (ARRAYS * rows * n + 2 * n * k))


def main(argv=None) -> int:
    ap = bench_parser(__doc__, threads=(1,))
    ap.add_argument("--plot", help="also write the cost model's plot (PNG) here")
    args = parse(ap, argv)
    if args.device != "cpu":
        ap.error("the sharded step is measured with gloo on CPU here; the GPU rows are the cost model's")
    quick = args.quick
    torch.set_num_threads(1)
    cases = [(4096, 512, 32, False), (1024, 1024, 32, True)] if quick else [
        (8192, 1024, 50, False), (2048, 2048, 50, True)]
    steps, reps = (5, 5) if quick else (10, 20)
    sizes = [1 << p for p in (range(6, 21, 7) if quick else range(4, 23, 3))]
    texts = [f"Machine: {machine_name('cpu')}, one thread per process, float32, gloo over loopback."]

    # 1. the sharded step on 1 and 2 processes, and the fused one-process solver
    from ..rpca.rows import Rows

    one = {c: _step_seconds(*c, Rows(c[0]), steps) for c in cases}
    fused = {c: _fused_seconds(*c, steps) for c in cases}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "two.pt")
        spawn(_worker, 2, cases, sizes, steps, reps, out)
        two = torch.load(out, weights_only=False)
    rows = [[f"{m}×{n}, k={k}", "U Uᵀ" if psd else "U Vᵀ", round(fused[c] * 1e3, 2), round(one[c] * 1e3, 2),
             round(two[c] * 1e3, 2), round(one[c] / two[c], 2)] for c in cases for (m, n, k, psd) in [c]]
    show(texts, "\n### Sharded DOP step (ms per step)\n\n" + table(
        ["problem", "model", "fused solver, 1 process", "sharded, 1 process", "sharded, 2 gloo processes",
         "speed-up 1→2"], rows))

    # 2. collectives
    coll = two["collectives"]
    fits = {}
    crow = []
    for name in ("all_reduce", "all_gather"):
        xs = [4 * s for s in sizes]
        ys = [coll[(name, s)] for s in sizes]
        lat, inv_bw = _fit_line(xs, ys)
        fits[name] = (lat, 1 / inv_bw)
        crow.append([name, *[f"{coll[(name, s)] * 1e6:.0f}" for s in sizes], f"{lat * 1e6:.0f}",
                     f"{1 / inv_bw / 1e9:.2f}"])
    show(texts, "\n### gloo collectives, 2 processes (µs per call; float32 messages)\n\n" + table(
        ["collective", *[f"{4 * s / 1024:.3g} KiB" for s in sizes], "fitted latency µs", "fitted GB/s"], crow))

    # 3. compute calibration from the one-process sharded step
    calib = [(2048, 256, 16), (2048, 512, 64), (4096, 512, 16), (2048, 1024, 32)] if quick else [
        (4096, 512, 16), (4096, 1024, 64), (8192, 1024, 16), (4096, 2048, 32), (8192, 1024, 100)]
    meas = [(m, n, k, _step_seconds(m, n, k, False, Rows(m), steps)) for m, n, k in calib]
    a = np.array([[6 * m * n * k, m * n] for m, n, k, _ in meas], float)
    inv = np.linalg.lstsq(a, np.array([t for *_, t in meas]), rcond=None)[0]
    flops, entries = 1 / max(inv[0], 1e-30), 1 / max(inv[1], 1e-30)
    pred = a @ inv
    show(texts, "\n### Compute calibration: one-process sharded step, t = 6mnk/F + mn/E\n\n" + table(
        ["m×n, k", "measured ms", "model ms"],
        [[f"{m}×{n}, {k}", round(t * 1e3, 2), round(p * 1e3, 2)] for (m, n, k, t), p in zip(meas, pred)])
        + f"\nF = {flops / 1e9:.1f} GFLOP/s, E = {entries / 1e9:.2f} G entries/s "
          f"({entries * BYTES_PER_ENTRY / 1e9:.0f} GB/s at {BYTES_PER_ENTRY} B per entry).")

    # 4. the cost model
    lat, bw = fits["all_reduce"]
    lat /= 2  # two ring hops at 2 processes
    model_rows = []
    h100_entries = H100["hbm"] / BYTES_PER_ENTRY
    for n in (10_000, 30_000, 100_000):
        for k in (10, 50, 200):
            for world in (1, 8, 64):
                here = cost(n, k, world, flops, entries, lat, bw)
                gpu = {name: cost(n, k, world, H100["flops"], h100_entries, *net) for name, net in NETWORKS.items()}
                g0 = gpu["NVLink (one domain)"] if world <= 8 else gpu["InfiniBand NDR 400"]
                fits_memory = g0["memory_per_rank"] <= H100["memory"]
                model_rows.append([n, k, world, f"{here['flops']:.2e}", f"{here['mem'] / 1e9:.2f}",
                                   f"{here['sent'] / 1e6:.2f}", f"{here['total']:.3g}",
                                   f"{g0['comp'] * 1e3:.3g}" if fits_memory else "out of memory",
                                   f"{g0['comm'] * 1e3:.3g}", f"{g0['memory_per_rank'] / 1e9:.1f}"])
    show(texts, "\n### Cost model per step and rank (square n × n, float32)\n\n" + table(
        ["n", "r'", "ranks", "FLOPs", "memory GB moved", "all-reduce MB sent", "this CPU s (calibrated)",
         "H100 compute ms", "network ms (NVLink ≤ 8, IB > 8)", "GB per rank"], model_rows)
        + f"\nAssumptions (not measured): H100 FP32 GEMM {H100['flops'] / 1e12:.0f} TFLOP/s, HBM "
          f"{H100['hbm'] / 1e12:.1f} TB/s achieved, 80 GB; " + "; ".join(
            f"{k} {lat_ * 1e6:.0f} µs per hop, {bw_ / 1e9:.0f} GB/s" for k, (lat_, bw_) in NETWORKS.items())
        + ". This machine's row uses the fitted F, E and gloo figures above.")

    crossover = []
    for k in (10, 50, 200):
        for name, net in NETWORKS.items():
            over = next((w for w in range(2, 4097) if cost(100_000, k, w, H100["flops"], h100_entries, *net)["comm"]
                         >= cost(100_000, k, w, H100["flops"], h100_entries, *net)["comp"]), None)
            crossover.append([k, name, over or "> 4096"])
    show(texts, "\n### Where communication overtakes compute (n = 10⁵, H100s)\n\n" + table(
        ["r'", "network", "ranks at which network time ≥ compute time"], crossover))
    if args.plot:
        _plot(args.plot, h100_entries)
    emit(args, texts)
    return 0


def _plot(path, h100_entries):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    worlds = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for k, color in zip((10, 50, 200), ("C0", "C1", "C2")):
        net = [NETWORKS["NVLink (one domain)"] if w <= 8 else NETWORKS["InfiniBand NDR 400"] for w in worlds]
        c = [cost(100_000, k, w, H100["flops"], h100_entries, *nw) for w, nw in zip(worlds, net)]
        ax.loglog(worlds, [x["comp"] * 1e3 for x in c], "-o", color=color, label=f"compute, r'={k}")
        ax.loglog(worlds[1:], [x["comm"] * 1e3 for x in c[1:]], "--", color=color, label=f"network, r'={k}")
    ax.axvspan(1, 2.5, color="0.9", label="does not fit in 80 GB")
    ax.set_xlabel("H100s (NVLink up to 8, InfiniBand beyond)")
    ax.set_ylabel("ms per DOP step")
    ax.set_title("Row-sharded DOP step, n = 10⁵ (cost model)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
