import os

import pytest
import torch

import dopfast
from dopfast.rpca import rpca_problem

# One intra-op thread: CI's two cores are often shared, and a parallel region inside a small op stalls badly
# when the other core is busy. (Tests of threading set their own counts.)
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")  # the same for the command-line tests' child processes

CUDA_READY = torch.cuda.is_available() and dopfast.has_cuda_kernels()
DEVICES = ["cpu"] + (["cuda"] if CUDA_READY else [])
DTYPES = [torch.float32, torch.float64]
needs_cuda = pytest.mark.skipif(not CUDA_READY, reason="needs a CUDA device and dopfast's CUDA kernels")


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture(params=DTYPES, ids=["f32", "f64"])
def dtype(request):
    return request.param


def make_tensors(count, shape, dtype, device, seed=0, noncontiguous=False):
    """`count` random tensors of `shape` on `device`; non-contiguous ones are every other column of a wider
    tensor made on the device itself (``.to(device)`` of a strided CPU view would be a contiguous copy)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        if noncontiguous and shape:
            wide = list(shape[:-1]) + [2 * shape[-1]]
            t = torch.randn(wide, generator=gen, dtype=dtype).to(device)[..., ::2]
            assert t.numel() <= 1 or not t.is_contiguous() or shape[-1] <= 1
        else:
            t = torch.randn(shape, generator=gen, dtype=dtype).to(device)
        out.append(t)
    return out


def rpca_instance(n, rank, p, dtype=torch.float64, seed=0, sparse_std=10.0):
    """The paper's synthetic robust-PCA data, (X*, S*, Y) (see dopfast.rpca.rpca_problem)."""
    return rpca_problem(n, rank, p, sparse_std=sparse_std, seed=seed, dtype=dtype)
