"""Local torch.distributed process groups for tests and benchmarks: spawn ``world`` processes on this machine,
each joining one group, and tear the group down only when every rank is done with it (a rank that destroys
its gloo context while another still has a connection open aborts at exit)."""

from __future__ import annotations

import contextlib
import os
import socket
import sys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def joined(rank: int, world: int, port: int, backend: str = "gloo"):
    """Join the group as ``rank`` (one intra-op thread: the ranks share the machine's cores)."""
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        yield
    finally:
        dist.barrier()
        dist.destroy_process_group()


def _entry(rank: int, fn, world: int, port: int, args: tuple) -> None:
    fn(rank, world, port, *args)
    # The work is done and the group is gone. Leave without the interpreter's teardown: gloo's and DDP's
    # worker threads can still be joinable when C++ static destructors run, which aborts the process
    # ("terminate called without an active exception") in some runs on a busy machine. An exception above
    # still propagates to spawn as a failure.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def spawn(fn, world: int, *args) -> None:
    """Run ``fn(rank, world, port, *args)`` in ``world`` new processes; raises if any of them fails."""
    import torch.multiprocessing as mp

    mp.spawn(_entry, args=(fn, world, free_port(), args), nprocs=world, join=True)
