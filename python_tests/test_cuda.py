"""CUDA kernels against the CPU kernels (parity). Skipped without a GPU and dopfast's CUDA kernels."""

import math

import pytest
import torch
from conftest import make_tensors, needs_cuda, rpca_instance
from torch.testing import assert_close

from dopfast import ops

pytestmark = needs_cuda


@pytest.mark.parametrize("numel", [1, 3, 1000, 1 << 20, (1 << 20) + 7])
@pytest.mark.parametrize("offset", [0, 1])  # offset 1: misaligned storage, scalar path
def test_residual_step_parity(numel, offset, dtype):
    x, g, h, y = (t[offset:] for t in make_tensors(4, (numel + offset,), dtype, "cpu"))
    gc, hc = g.cuda(), h.cuda()
    r, loss = ops.residual_step_(x.cuda(), gc, hc, y.cuda(), 1e-2)
    r_cpu, loss_cpu = ops.residual_step_(x, g, h, y, 1e-2)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else {}
    assert_close(r.cpu(), r_cpu, **tol)
    assert_close(gc.cpu(), g, **tol)
    assert_close(hc.cpu(), h, **tol)
    assert_close(loss.cpu(), loss_cpu, rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=0)


def test_residual_step_loss_is_deterministic():
    x, g, h, y = (t.cuda() for t in make_tensors(4, (5_000_001,), torch.float32, "cpu"))
    a = ops.residual_step_(x, g.clone(), h.clone(), y, 1e-3)[1]
    b = ops.residual_step_(x, g.clone(), h.clone(), y, 1e-3)[1]
    assert a.item() == b.item()


@pytest.mark.parametrize("shape", [(0,), (7,), (3, 65, 33)])
def test_dop_residual_parity_and_grads(shape, dtype):
    tensors = make_tensors(4, shape, dtype, "cpu", noncontiguous=len(shape) > 1)
    cpu = [t.clone().requires_grad_(i < 3) for i, t in enumerate(tensors)]
    gpu = [t.cuda().requires_grad_(i < 3) for i, t in enumerate(tensors)]
    out_c, out_g = ops.dop_residual(*cpu), ops.dop_residual(*gpu)
    assert_close(out_g.cpu(), out_c)
    grad = torch.randn_like(out_c)
    out_c.backward(grad)
    out_g.backward(grad.cuda())
    for a, b in zip(gpu[:3], cpu[:3]):
        assert_close(a.grad.cpu(), b.grad)


def test_lowrank_parity():
    u, v = make_tensors(2, (40, 7), torch.float64, "cpu")
    r, = make_tensors(1, (40, 40), torch.float64, "cpu", seed=1)
    ug, vg = u.cuda(), v.cuda()
    ops.lowrank_step_uv_(ug, vg, r.cuda(), 1e-2)
    ops.lowrank_step_uv_(u, v, r, 1e-2)
    assert_close(ug.cpu(), u)
    assert_close(vg.cpu(), v)


@pytest.mark.parametrize("n,k,batch", [(1, 1, 1), (13, 5, 1), (50, 50, 1), (50, 50, 7), (37, 9, 3), (300, 12, 2)])
def test_rpca_solve_parity(n, k, batch, dtype):
    _, _, y = rpca_instance(n, min(3, n), 0.1, dtype=dtype)
    gen = torch.Generator().manual_seed(2)
    y = torch.stack([y] * batch) + 0.01 * torch.randn(batch, n, n, generator=gen, dtype=dtype)
    u0 = 1e-2 * torch.randn(batch, n, k, generator=gen, dtype=dtype)
    g0 = 1e-2 * torch.randn(batch, n, n, generator=gen, dtype=dtype)
    h0 = 1e-2 * torch.randn(batch, n, n, generator=gen, dtype=dtype)
    args = (1e-4, math.sqrt(n), 200, 1e-6)
    cpu = ops.rpca_dop_solve(y, u0, g0, h0, *args)
    gpu = ops.rpca_dop_solve(y.cuda(), u0.cuda(), g0.cuda(), h0.cuda(), *args)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-11)
    for a, b in zip((gpu.u, gpu.g, gpu.h, gpu.losses), (cpu.u, cpu.g, cpu.h, cpu.losses)):
        assert_close(a.cpu(), b, equal_nan=True, **tol)
    assert torch.equal(gpu.n_iter.cpu(), cpu.n_iter)


@pytest.mark.parametrize("m,n,k", [(9, 5, 5), (40, 23, 7), (260, 250, 6)])
def test_rpca_solve_uv_parity(m, n, k):
    gen = torch.Generator().manual_seed(m)
    y = torch.randn(m, n, generator=gen, dtype=torch.float64)
    u0 = 1e-2 * torch.randn(m, k, generator=gen, dtype=torch.float64)
    v0 = 1e-2 * torch.randn(n, k, generator=gen, dtype=torch.float64)
    g0, h0 = (1e-2 * torch.randn(m, n, generator=gen, dtype=torch.float64) for _ in range(2))
    cpu = ops.rpca_dop_solve_uv(y, u0, v0, g0, h0, 1e-3, 3.0, 50)
    gpu = ops.rpca_dop_solve_uv(*(t.cuda() for t in (y, u0, v0, g0, h0)), 1e-3, 3.0, 50)
    for a, b in zip(gpu, cpu):
        assert_close(a.cpu(), b, rtol=1e-9, atol=1e-11)


def test_paper_setting_on_gpu():
    x_true, _, y = rpca_instance(50, 5, 0.1)
    gen = torch.Generator().manual_seed(1)
    u0, g0 = (1e-4 * torch.randn(50, 50, generator=gen, dtype=torch.float64) for _ in range(2))
    out = ops.rpca_dop_solve(y.cuda(), u0.cuda(), g0.cuda(), g0.cuda(), 1e-4, math.sqrt(50), 20_000)
    u = out.u.cpu()
    assert ((u @ u.T - x_true).norm() / x_true.norm()) < 0.1


def test_compile_on_cuda():
    torch._dynamo.reset()
    x, g, h, y = (t.cuda() for t in make_tensors(4, (64, 64), torch.float32, "cpu"))

    def f(x, g, h, y):
        r, loss = ops.residual_step_(x * 2, g, h, y, 1e-3)
        return r.sum() + loss

    ge, he = g.clone(), h.clone()
    expected = f(x, ge, he, y)
    got = torch.compile(f, fullgraph=True)(x, g, h, y)
    assert_close(got, expected)
    assert_close(g, ge)


@pytest.mark.slow
def test_64bit_indexing():
    # More than 2^31 elements: 5 float32 arrays of 8.6 GB each.
    n = (1 << 31) + 1025
    if torch.cuda.get_device_properties(0).total_memory < 6 * 4 * n:
        pytest.skip("needs about 52 GB of GPU memory")
    x = torch.zeros(n, device="cuda")
    y = torch.zeros(n, device="cuda")
    y[-5:] = torch.arange(5, device="cuda", dtype=torch.float32)
    g = torch.ones(n, device="cuda")
    h = torch.zeros(n, device="cuda")
    r, loss = ops.residual_step_(x, g, h, y, 0.0)
    assert_close(r[-5:].cpu(), 1 - torch.arange(5.0))
    assert_close(r[:3].cpu(), torch.ones(3))
    assert math.isclose(loss.item(), 0.25 * (n - 5 + (1 + 0 + 1 + 4 + 9)), rel_tol=1e-6)
