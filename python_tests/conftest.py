import pytest
import torch

import dopfast
from dopfast.rpca import rpca_problem

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
    """`count` random tensors of `shape`; non-contiguous ones are every other column of a wider tensor."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        if noncontiguous:
            wide = list(shape[:-1]) + [2 * shape[-1] if shape else 2]
            t = torch.randn(wide, generator=gen, dtype=dtype)[..., ::2] if shape else torch.randn((), dtype=dtype)
        else:
            t = torch.randn(shape, generator=gen, dtype=dtype)
        out.append(t.to(device))
    return out


def rpca_instance(n, rank, p, dtype=torch.float64, seed=0, sparse_std=10.0):
    """The paper's synthetic robust-PCA data, (X*, S*, Y) (see dopfast.rpca.rpca_problem)."""
    return rpca_problem(n, rank, p, sparse_std=sparse_std, seed=seed, dtype=dtype)
