"""Microbenchmarks of the fused ops against eager PyTorch and torch.compile, measured in the same run.

    python -m dopfast bench ops [--device cpu|cuda] [--threads 1 2] [--quick] [--out FILE]

For residual_step_ it prints time, effective GB/s (28 bytes per float32 element: read x, g, h, y; write r, g, h)
and ratios against: the reference written naturally, the best in-place eager form (preallocated buffers,
no temporaries), and torch.compile of both; the machine's copy/triad bandwidth is measured at each size.
"""

from __future__ import annotations

import torch

from .. import ops, reference
from .common import bandwidth_gbs, bench_parser, emit, machine_name, parse, table, thread_counts, time_us, verdict

STEP = 1e-7  # tiny, so repeated in-place steps keep the data's scale


def _residual_variants(n: int, device: str, dtype):
    gen = torch.Generator().manual_seed(0)
    x, g, h, y = (torch.randn(n, generator=gen, dtype=dtype).to(device) for _ in range(4))
    r, tmp = torch.empty_like(x), torch.empty_like(x)
    natural_c = torch.compile(reference.residual_step_, dynamic=False)
    inplace_c = torch.compile(reference.residual_step_inplace_, dynamic=False)
    return {
        "dopfast": lambda: ops.residual_step_(x, g, h, y, STEP),
        "dopfast_out": lambda: ops.residual_step_out_(x, g, h, y, STEP, r),
        "eager": lambda: reference.residual_step_(x, g, h, y, STEP),
        "eager_inplace": lambda: reference.residual_step_inplace_(x, g, h, y, STEP, r, tmp),
        "compiled": lambda: natural_c(x, g, h, y, STEP),
        "compiled_inplace": lambda: inplace_c(x, g, h, y, STEP, r, tmp),
    }


def bench_residual_step(sizes, device, dtype, min_time):
    rows = []
    for n in sizes:
        t = {name: time_us(fn, min_time) for name, fn in _residual_variants(n, device, dtype).items()}
        bw = bandwidth_gbs(max(1, 7 * n // 3), device, dtype)  # triad over the same bytes as the op (7 arrays)
        nbytes = 7 * n * torch.tensor([], dtype=dtype).element_size()
        best = min(t["dopfast"], t["dopfast_out"])
        rows.append([
            f"{n:.0e}" if n >= 1e5 else str(n), t["dopfast"], t["dopfast_out"], t["eager"], t["eager_inplace"],
            t["compiled"], t["compiled_inplace"], nbytes / best / 1e3, bw["triad"], nbytes / best / 1e3 / bw["triad"],
            t["eager_inplace"] / best, min(t["compiled"], t["compiled_inplace"]) / best, t["eager"] / best,
        ])
    return table(["numel", "ours µs", "ours (out=) µs", "eager µs", "eager in-place µs", "compiled µs",
                  "compiled in-place µs", "ours GB/s", "triad GB/s", "of triad", "× in-place", "× compiled",
                  "× eager"], rows) + "\n\n" + verdict(
        "residual_step_", rows, {"the best in-place eager form": 10, "torch.compile": 11, "of triad bandwidth": 9})


def bench_dop_residual(sizes, device, dtype, min_time):
    rows = []
    for n in sizes:
        gen = torch.Generator().manual_seed(0)
        base = [torch.randn(n, generator=gen, dtype=dtype).to(device) for _ in range(4)]
        x, g, h = (t.clone().requires_grad_() for t in base[:3])
        y = base[3]
        grad = torch.ones_like(y)
        compiled = torch.compile(reference.dop_residual, dynamic=False)

        def run(fn):
            return lambda: torch.autograd.grad(fn(x, g, h, y), (x, g, h), grad)

        t = {k: time_us(run(f), min_time) for k, f in
             (("ours", ops.dop_residual), ("eager", reference.dop_residual), ("compiled", compiled))}
        rows.append([f"{n:.0e}" if n >= 1e5 else str(n), t["ours"], t["eager"], t["compiled"],
                     t["eager"] / t["ours"], t["compiled"] / t["ours"]])
    return table(["numel", "ours fwd+bwd µs", "eager µs", "compiled µs", "× eager", "× compiled"], rows) + "\n\n" + (
        verdict("dop_residual forward + backward", rows, {"eager": 4, "torch.compile": 5}))


def bench_lowrank(device, dtype, min_time):
    rows = []
    for n, k in ((50, 50), (200, 200), (1000, 20)):
        gen = torch.Generator().manual_seed(0)
        u = torch.randn(n, k, generator=gen, dtype=dtype).to(device)
        r = torch.randn(n, n, generator=gen, dtype=dtype).to(device)
        ours = time_us(lambda: ops.lowrank_step_(u, r, STEP), min_time)
        eager = time_us(lambda: reference.lowrank_step_(u, r, STEP), min_time)
        rows.append([f"{n}×{k}", ours, eager, eager / ours, 2 * n * n * k / ours / 1e3])
    return table(["u", "ours µs", "eager µs", "× eager", "ours GFLOP/s"], rows) + "\n\n" + verdict(
        "lowrank_step_", rows, {"eager": 3})


def main(argv=None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parse(parser, argv)
    dtype = getattr(torch, args.dtype)
    min_time = 0.2 if args.quick else 0.5
    sizes = [50 * 50, 10**5, 10**6, 10**7] + ([10**8] if args.device == "cuda" else [])
    if args.quick:  # about a minute on a CPU: one thread, two sizes (every size compiles its own graphs)
        sizes = [10**5, 10**6] if args.device == "cpu" else [10**6, 10**8]
        args.threads = args.threads[:1]
    out = []
    for nt in thread_counts(args):
        torch.set_num_threads(nt)
        out.append(f"### {machine_name(args.device)}, {nt} thread(s), {args.dtype}, torch {torch.__version__}\n")
        out.append("**residual_step_**\n\n" + bench_residual_step(sizes, args.device, dtype, min_time) + "\n")
        out.append("**dop_residual forward + backward**\n\n"
                   + bench_dop_residual(sizes, args.device, dtype, min_time) + "\n")
        out.append("**lowrank_step_**\n\n" + bench_lowrank(args.device, dtype, min_time) + "\n")
        print("\n".join(out[-4:]), flush=True)
    emit(args, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
