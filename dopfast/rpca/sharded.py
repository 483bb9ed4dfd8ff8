"""What :class:`dopfast.RobustPCA` does differently with ``distributed=True``: input checks that every rank
passes or fails together, one initialisation seed for all ranks, and the "auto" model read without the whole
matrix. The DOP driver and the refinement themselves are the one-process code run over :class:`Rows`."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import torch
from torch import Tensor

from .rows import Rows


def collective_checks(convert: Callable, owner: str, settings: str):
    """Run ``convert()`` (the estimator's input checks) on every rank; raise on every rank when any rank's
    input is bad or its ``settings`` (the estimator's parameters) differ from rank 0's, so no rank is left
    waiting in a collective. Returns ``((t, info, *rest), rows)`` where ``t`` is this rank's (1, rows, n) block
    and ``rest`` whatever else ``convert`` returns."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(f"{owner}(distributed=True): call torch.distributed.init_process_group first, in "
                           "every process (e.g. under torchrun)")
    nccl = dist.get_backend() == "nccl"
    error, t = None, None
    try:
        t, info, *rest = convert()
        if info.batched:
            raise ValueError(f"{owner}.fit: distributed=True takes one matrix (this rank's rows), got a batch of "
                             f"shape {tuple(t.shape)}")
        if nccl and not t.is_cuda:
            raise ValueError(f"{owner}.fit: the NCCL backend needs CUDA tensors; pass Y on this rank's GPU or "
                             "device='cuda:N'")
    except Exception as exc:  # noqa: BLE001 - re-raised below, after every rank has heard of it
        error = exc
    if t is not None and (t.is_cuda or not nccl):
        device = t.device
    else:
        device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    flags = torch.tensor([0.0 if error else 1.0, float(zlib.crc32(settings.encode()))], dtype=torch.float64,
                         device=device)
    everyone = [torch.zeros_like(flags) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, flags)
    bad = [r for r, f in enumerate(everyone) if float(f[0]) == 0]
    differ = [r for r, f in enumerate(everyone) if float(f[1]) != float(everyone[0][1])]
    if error is not None:
        raise error
    if bad:
        raise ValueError(f"{owner}.fit: the input on rank(s) {bad} was refused (see the error there)")
    if differ:
        raise ValueError(f"{owner}.fit: the parameters on rank(s) {differ} differ from rank 0's; every rank must "
                         "fit with the same parameters")
    rows = Rows(t.shape[1], t.device, distributed=True)
    cols = rows.gather_scalars(float(t.shape[2]))
    kinds = rows.gather_scalars(float(t.dtype == torch.float64))
    if min(rows.counts) < 1:
        raise ValueError(f"{owner}.fit: every rank needs at least one row; rows per rank: {rows.counts}")
    if len(set(cols)) > 1:
        raise ValueError(f"{owner}.fit: the ranks' blocks have different numbers of columns: {[int(c) for c in cols]}")
    if len(set(kinds)) > 1:
        raise ValueError(f"{owner}.fit: the ranks compute in different dtypes; pass dtype= to make them agree")
    return (t, info, *rest), rows


def same_generator(make: Callable[[], torch.Generator], rows: Rows) -> torch.Generator:
    """The generator ``make()`` gives on rank 0, on every rank (``random_state=None`` differs per process)."""
    gen = make()
    state = rows.agree(gen.get_state().to(rows.device)).cpu()
    gen.set_state(state)
    return gen


def psd_dominant(y: Tensor, rows: Rows, probes: int = 4, iters: int = 300) -> bool:
    """The "auto" model's test without the whole matrix (square ``y``, this rank's rows): symmetric (on random
    probe vectors, ``‖(Y − Yᵀ) Z‖ ≤ 1e-10 ‖Y Z‖``; the one-process test uses the whole ``‖Y − Yᵀ‖_F``) and
    whose largest eigenvalue outweighs the most negative one, read from the Ritz values of a block subspace
    iteration (which converge to the eigenvalues of largest magnitude, both signs of a tie included)."""
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
        ends = (float(ritz[-1]), float(ritz[0]))
        if prev is not None and max(abs(a - b) for a, b in zip(ends, prev)) <= 1e-12 * max(map(abs, ends)):
            break
        prev = ends
        q = rows.agree(torch.linalg.qr(yq).Q)
    return ends[0] >= -ends[1]
