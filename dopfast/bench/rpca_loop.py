"""rpca_dop_solve (whole loop in one C++/CUDA call) against the eager PyTorch loop, per step.

    python -m dopfast bench loop [--device cpu|cuda] [--threads 1 2] [--quick] [--out FILE]

Rows: problem size n (r' = n, the paper's full over-parameterization), batch B; columns: µs per step per
problem for dopfast, the eager loop, torch.compile of the eager step (CPU) or a CUDA graph of it (GPU), the
ratios, and dopfast's rate in GEMM-equivalent GFLOP/s (4·n²·r' per step) next to torch.mm's at that size.
"""

from __future__ import annotations

import math

import torch

from .. import ops
from .common import bench_parser, emit, gemm_gflops, machine_name, parse, show, table, thread_counts, time_us, verdict


def eager_step(u, g, h, y, tau, alpha):
    r = u @ u.mT + g * g - h * h - y
    loss = 0.25 * (r * r).sum((-2, -1))
    g.sub_(alpha * tau * r * g)
    h.add_(alpha * tau * r * h)
    u.sub_(tau * (0.5 * (r + r.mT)) @ u)
    return loss


def problem(n, batch, dtype, device):
    gen = torch.Generator().manual_seed(0)
    shape = (batch, n, n) if batch > 1 else (n, n)
    us = torch.randn(shape[:-1] + (max(1, n // 10),), generator=gen, dtype=dtype)
    y = us @ us.mT + (torch.rand(shape, generator=gen) < 0.1) * 10 * torch.randn(shape, generator=gen, dtype=dtype)
    u0, g0 = (1e-4 * torch.randn(shape, generator=gen, dtype=dtype) for _ in range(2))
    return y.to(device), u0.to(device), g0.to(device)


def bench_case(n, batch, dtype, device, steps, min_time):
    y, u0, g0 = problem(n, batch, dtype, device)
    tau, alpha = 1e-4 * 50 / n, math.sqrt(n)
    ours = time_us(lambda: ops.rpca_dop_solve(y, u0, g0, g0, tau, alpha, steps), min_time) / steps
    u, g, h = u0.clone(), g0.clone(), g0.clone()

    def eager_loop():
        for _ in range(steps):
            eager_step(u, g, h, y, tau, alpha)

    eager = time_us(eager_loop, min_time) / steps
    if device == "cuda":
        static = [u0.clone(), g0.clone(), g0.clone()]
        eager_step(*static, y, tau, alpha)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                eager_step(*static, y, tau, alpha)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            eager_step(*static, y, tau, alpha)

        def graph_loop():
            for _ in range(steps):
                graph.replay()

        other = time_us(graph_loop, min_time) / steps
    else:
        compiled = torch.compile(eager_step)

        def compiled_loop():
            for _ in range(steps):
                compiled(u, g, h, y, tau, alpha)

        other = time_us(compiled_loop, min_time) / steps
    flops = 4 * n * n * n * batch
    return [n, batch, ours / batch, eager / batch, other / batch, eager / ours, other / ours,
            flops / ours / 1e3, gemm_gflops(n, device, dtype)]


def main(argv=None) -> int:
    args = parse(bench_parser(__doc__), argv)
    min_time = 0.3 if args.quick else 1.0
    cases = [(50, 1), (50, 100), (200, 1), (200, 8)]
    if args.device == "cuda":
        cases += [(50, 1000)]
    out = []
    other = "CUDA graph µs" if args.device == "cuda" else "compiled µs"
    for nt in thread_counts(args):
        torch.set_num_threads(nt)
        for dtype in (torch.float64, torch.float32):
            rows = [bench_case(n, b, dtype, args.device, 200 if n <= 50 else 50, min_time) for n, b in cases]
            text = (f"### {machine_name(args.device)}, {nt} thread(s), {str(dtype)[6:]}\n\n" +
                    table(["n", "B", "ours µs/step/problem", "eager µs", other, "× eager", f"× {other[:-3]}",
                           "ours GFLOP/s", "torch.mm GFLOP/s at n"], rows) + "\n\n" +
                    verdict("rpca_dop_solve per step", rows, {"the eager loop": 5, other[:-3]: 6}) + "\n")
            show(out, text)
    emit(args, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
