"""Row-sharded robust PCA under torchrun: every process builds its block of rows of the same problem, fits
with RobustPCA(distributed=True), and rank 0 reports the recovery error of the whole matrix.

    torchrun --nproc_per_node 2 experiments/rpca_distributed.py               # gloo, CPU
    torchrun --nproc_per_node 8 experiments/rpca_distributed.py --device cuda --rows 20000 --cols 20000 --width 200

The problem is the DOP paper's data in its rectangular form (X* = U*V*ᵀ, rank r, a fraction of entries
corrupted by N(0, 10²)). Each rank generates only its rows of Y (a block of X* needs its rows of U* and all
of V*; the corruption is drawn per row block), so nothing of size m × n is ever held by one process.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.distributed as dist

from dopfast import RobustPCA


def my_rows(m: int, rank: int, world: int) -> slice:
    base, extra = divmod(m, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def local_problem(m, n, r, corruption, rows: slice, dtype):
    gen = torch.Generator().manual_seed(0)
    us, vs = torch.randn(m, r, generator=gen, dtype=dtype), torch.randn(n, r, generator=gen, dtype=dtype)
    x = us[rows] @ vs.T
    gen = torch.Generator().manual_seed(1 + rows.start)  # corruption: iid per entry, drawn for these rows only
    s = torch.where(torch.rand(x.shape, generator=gen) < corruption,
                    10 * torch.randn(x.shape, generator=gen, dtype=dtype), torch.zeros((), dtype=dtype))
    return x, s, x + s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--cols", type=int, default=1000)
    ap.add_argument("--true-rank", type=int, default=10)
    ap.add_argument("--corruption", type=float, default=0.1)
    ap.add_argument("--width", type=int, default=40, help="factor width r' (RobustPCA's rank=)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = ap.parse_args(argv)
    if args.device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        rows = my_rows(args.rows, rank, world)
        x, _, y = local_problem(args.rows, args.cols, args.true_rank, args.corruption, rows, getattr(torch, args.dtype))
        dev = torch.device(args.device, torch.cuda.current_device()) if args.device == "cuda" else torch.device("cpu")
        start = time.perf_counter()
        est = RobustPCA(rank=args.width, tol=1e-4, random_state=0, distributed=True, verbose=rank == 0)
        est.fit(y.to(dev))
        seconds = time.perf_counter() - start
        err = torch.tensor([float((est.low_rank_.cpu() - x).double().square().sum()), float(x.double().square().sum())],
                           dtype=torch.float64, device=dev)
        dist.all_reduce(err)
        if rank == 0:
            print(f"{world} process(es), {args.rows}×{args.cols}, rank {args.true_rank}, "
                  f"{args.corruption:.0%} corrupted: {est.n_iter_} steps, rank {est.rank_}, certified {est.refined_}, "
                  f"relative error {float((err[0] / err[1]).sqrt()):.2e}, {seconds:.1f} s")
    finally:
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
