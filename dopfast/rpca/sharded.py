"""What :class:`dopfast.RobustPCA` does differently with ``distributed=True``: input checks that every rank
passes or fails together, one initialisation seed for all ranks, and the "auto" model read without the whole
matrix. The DOP driver and the refinement themselves are the one-process code run over :class:`Rows`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .rows import Rows


def _flag_device() -> torch.device:
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def collective_checks(convert: Callable, owner: str):
    """Run ``convert()`` (the estimator's input checks) on every rank; raise on every rank when any rank's
    input is bad, so no rank is left waiting in a collective. Returns ``((t, info), rows)`` where ``t`` is this
    rank's (1, rows, n) block."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(f"{owner}(distributed=True): call torch.distributed.init_process_group first, in "
                           "every process (e.g. under torchrun)")
    error = None
    try:
        t, info = convert()
        if info.batched:
            raise ValueError(f"{owner}.fit: distributed=True takes one matrix (this rank's rows), got a batch of "
                             f"shape {tuple(t.shape)}")
    except (ValueError, TypeError, RuntimeError) as exc:
        error = exc
    flags = torch.tensor([0.0 if error else 1.0], dtype=torch.float64, device=_flag_device())
    everyone = [torch.zeros_like(flags) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, flags)
    bad = [r for r, f in enumerate(everyone) if float(f) == 0]
    if error is not None:
        raise error
    if bad:
        raise ValueError(f"{owner}.fit: the input on rank(s) {bad} was refused (see the error there)")
    rows = Rows(t.shape[1], t.device, distributed=True)
    cols = rows.gather_scalars(float(t.shape[2]))
    kinds = rows.gather_scalars(float(t.dtype == torch.float64))
    if min(rows.counts) < 1:
        raise ValueError(f"{owner}.fit: every rank needs at least one row; rows per rank: {rows.counts}")
    if len(set(cols)) > 1:
        raise ValueError(f"{owner}.fit: the ranks' blocks have different numbers of columns: {[int(c) for c in cols]}")
    if len(set(kinds)) > 1:
        raise ValueError(f"{owner}.fit: the ranks compute in different dtypes; pass dtype= to make them agree")
    return (t, info), rows


def same_generator(make: Callable[[], torch.Generator], rows: Rows) -> torch.Generator:
    """The generator ``make()`` gives on rank 0, on every rank (``random_state=None`` differs per process)."""
    gen = make()
    state = rows.agree(gen.get_state().to(rows.device)).cpu()
    gen.set_state(state)
    return gen


def psd_dominant(y: Tensor, rows: Rows, probes: int = 4, iters: int = 300) -> bool:
    """The "auto" model's test without the whole matrix (square ``y``, this rank's rows): symmetric (on random
    probe vectors, ``‖(Y − Yᵀ) Z‖ ≤ 1e-10 ‖Y Z‖``) and with a positive eigenvalue of largest magnitude
    (block subspace iteration), i.e. the largest eigenvalue outweighs the most negative one."""
    n = y.shape[1]
    y = y.double() / max(float(rows.max(y.abs().max().reshape(1).double())), 1e-300)
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(n, probes, generator=gen, dtype=torch.float64).to(y.device)
    yz = y @ z
    ytz = rows.sum(y.mT @ z[rows.rows])[rows.rows]
    if rows.norm(yz - ytz) > 1e-10 * rows.norm(yz):
        return False
    q = torch.linalg.qr(torch.randn(n, min(n, 8), generator=gen, dtype=torch.float64).to(y.device)).Q
    prev = None
    for _ in range(iters):
        yq = rows.sum(y.mT @ q[rows.rows])  # Y q, Y symmetric
        ritz = rows.agree(torch.linalg.eigvalsh(q.mT @ yq))
        top = float(ritz[ritz.abs().argmax()])
        if prev is not None and abs(top - prev) <= 1e-12 * abs(top):
            break
        prev = top
        q = rows.agree(torch.linalg.qr(yq).Q)
    return top >= 0
