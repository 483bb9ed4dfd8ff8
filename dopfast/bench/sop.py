"""The SOP loss step (loss, logits gradient, u/v update) against plain cross entropy and other ways to write it.

    python -m dopfast bench sop [--device cpu|cuda] [--threads 1 2] [--repeats 5] [--out FILE]

For (batch, classes) in (128, 10), (128, 100), (1024, 100), (4096, 1000), with N = 50,000 training samples,
one step = loss forward + backward to the logits (+ the u, v update) for:

- dopfast: ``SOPLoss`` (one fused kernel; backward only scales the stored gradient);
- eager: the plain-autograd loss on gathered rows, backward, then the u, v rows written back;
- compiled: ``torch.compile`` of that eager step;
- authors' style: u, v as dense ``nn.Parameter`` (N × 1, N × K) under ``torch.optim.SGD`` (dense gradients);
- CE: ``F.cross_entropy`` forward + backward (the cost of a step without SOP).

dopfast and CE are timed back to back ``--repeats`` times per case: the table gives the median of each and the
spread (min–max) of the per-repeat ratio, so a machine that is busy for part of the run shows as a wide spread.
"""

from __future__ import annotations

import statistics

import torch
from torch.nn import functional as F

from .. import reference
from ..sop import SOPLoss
from .common import bench_parser, emit, machine_name, parse, show, table, thread_counts, time_us, verdict

N = 50_000


def eager_step(logits, targets, index, u, v, lr_u, lr_v):
    ur = u[index].requires_grad_()
    vr = v[index].requires_grad_()
    loss = reference.sop_loss(logits, targets, ur, vr)
    loss.backward()
    with torch.no_grad():
        u[index] = ur - lr_u * ur.grad
        v[index] = vr - lr_v * vr.grad
    return loss


class AuthorsStyle(torch.nn.Module):
    def __init__(self, n, k, device):
        super().__init__()
        self.u = torch.nn.Parameter(1e-8 * torch.randn(n, 1, device=device))
        self.v = torch.nn.Parameter(1e-8 * torch.randn(n, k, device=device))
        self.opt = torch.optim.SGD([{"params": [self.u], "lr": 1.0}, {"params": [self.v], "lr": 10.0}])

    def step(self, logits, targets, index):
        self.opt.zero_grad()
        loss = reference.sop_loss(logits, targets, self.u[index], self.v[index])
        loss.backward()
        self.opt.step()
        return loss


def bench_case(b, k, device, min_time, repeats):
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(b, k, generator=gen).to(device)
    targets = torch.randint(0, k, (b,), generator=gen).to(device)
    index = torch.randperm(N, generator=gen)[:b].to(device)
    logits = base.clone().requires_grad_()
    crit = SOPLoss(N, k, seed=0).to(device)
    u, v = crit.u.clone(), crit.v.clone()
    compiled = torch.compile(eager_step)
    authors = AuthorsStyle(N, k, device)

    def run(fn):
        def go():
            logits.grad = None
            fn()
        return go

    step = run(lambda: crit(logits, targets, index).backward())
    cross_entropy = run(lambda: F.cross_entropy(logits, targets).backward())
    pairs = [(time_us(step, min_time), time_us(cross_entropy, min_time)) for _ in range(repeats)]
    ratios = [d / c for d, c in pairs]
    t = {
        "dopfast": statistics.median(d for d, _ in pairs),
        "ce": statistics.median(c for _, c in pairs),
        "eager": time_us(run(lambda: eager_step(logits, targets, index, u, v, 1.0, 10.0)), min_time),
        "compiled": time_us(run(lambda: compiled(logits, targets, index, u, v, 1.0, 10.0)), min_time),
        "authors": time_us(run(lambda: authors.step(logits, targets, index)), min_time),
    }
    ce = t["ce"]
    return [f"({b}, {k})", t["dopfast"], t["eager"], t["compiled"], t["authors"], ce, statistics.median(ratios),
            f"{min(ratios):.2f}–{max(ratios):.2f}", t["eager"] / ce, t["compiled"] / ce, t["authors"] / ce]


def main(argv=None) -> int:
    ap = bench_parser(__doc__)
    ap.add_argument("--repeats", type=int, default=5, help="back-to-back dopfast/CE timings per case (>= 1)")
    args = parse(ap, argv)
    if args.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {args.repeats}")
    out = []
    for nt in thread_counts(args):
        torch.set_num_threads(nt)
        rows = [bench_case(b, k, args.device, 0.2 if args.quick else 0.5, args.repeats)
                for b, k in ((128, 10), (128, 100), (1024, 100), (4096, 1000))]
        text = (f"### SOP step, {machine_name(args.device)}, {nt} thread(s), float32, N = {N}\n\n" +
                table(["(B, K)", "dopfast µs", "eager µs", "compiled µs", "authors' style µs", "CE µs",
                       "dopfast / CE (median)", "dopfast / CE (spread)", "eager / CE", "compiled / CE",
                       "authors / CE"], rows) + "\n\n" +
                verdict("SOP step, as a multiple of cross entropy's step", rows,
                        {"CE for dopfast": 6, "CE for eager": 8, "CE for torch.compile": 9}) + "\n")
        show(out, text)
    emit(args, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
