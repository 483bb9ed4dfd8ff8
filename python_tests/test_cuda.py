"""CUDA kernels against the CPU kernels (parity). Skipped without a GPU and dopfast's CUDA kernels."""

import math
import subprocess
import sys
import textwrap

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
    # The GPU copies are sliced on the device, so offset 1 really is misaligned there (.cuda() would realign).
    xc, gc, hc, yc = (t.cuda()[offset:] for t in make_tensors(4, (numel + offset,), dtype, "cpu"))
    assert offset == 0 or gc.data_ptr() % 16 != 0
    r, loss = ops.residual_step_(xc, gc, hc, yc, 1e-2)
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


@pytest.mark.parametrize("paper", [False, True], ids=["official", "paper"])
@pytest.mark.parametrize("logits_dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("state_dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("b,k", [(0, 10), (5, 2), (13, 10), (64, 37), (9, 1000)])
@pytest.mark.parametrize("lr", [0.0, 0.7])
def test_sop_parity(paper, logits_dtype, state_dtype, b, k, lr):
    gen = torch.Generator().manual_seed(b * 7 + k)
    n = 2 * b + 3
    z = (3 * torch.randn(b, k, generator=gen)).to(logits_dtype)
    t = torch.randint(0, k, (b,), generator=gen)
    idx = torch.randperm(n, generator=gen)[:b]
    u = 0.5 * torch.randn(n, k if paper else 1, generator=gen, dtype=state_dtype)
    v = 0.5 * torch.randn(n, k, generator=gen, dtype=state_dtype)
    ug, vg = u.cuda(), v.cuda()
    loss_g, grad_g = ops.sop_loss_step_(z.cuda(), t.cuda(), idx.cuda(), ug, vg, lr, 3 * lr, paper)
    loss_c, grad_c = ops.sop_loss_step_(z, t, idx, u, v, lr, 3 * lr, paper)
    low = logits_dtype in (torch.float16, torch.bfloat16)
    tol = dict(rtol=2e-2, atol=2e-3) if low else dict(rtol=1e-5, atol=1e-6)
    assert loss_g.dtype == loss_c.dtype and grad_g.dtype == grad_c.dtype == logits_dtype
    assert_close(loss_g.cpu(), loss_c, equal_nan=True, **tol)
    assert_close(grad_g.cpu().float(), grad_c.float(), **tol)
    assert_close(ug.cpu(), u, **tol)
    assert_close(vg.cpu(), v, **tol)


def test_sop_index_contract_on_cuda():
    z = torch.randn(4, 3, device="cuda")
    u, v = torch.zeros(10, 1, device="cuda"), torch.zeros(10, 3, device="cuda")
    t = torch.tensor([0, 1, 2, 0], device="cuda")
    with pytest.raises(RuntimeError, match="index must be unique within a batch"):
        ops.sop_loss_step_(z, t, torch.tensor([1, 2, 1, 3], device="cuda"), u, v, 1.0, 1.0)
    with pytest.raises(RuntimeError, match=r"index must be sample indices in \[0, 10\), got 10"):
        ops.sop_loss_step_(z, t, torch.tensor([1, 2, 10, 3], device="cuda"), u, v, 1.0, 1.0)
    with pytest.raises(RuntimeError, match=r"targets must be class indices in \[0, 3\), got 5"):
        ops.sop_loss_step_(z, torch.tensor([0, 5, 2, 0], device="cuda"), torch.arange(4, device="cuda"), u, v, 1, 1)
    torch.cuda.synchronize()  # the context is still usable


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n", [30, 300])  # one-block kernel, fused loop (300: beyond any GPU's shared memory)
def test_batch_stops_per_problem_like_the_cpu(dtype, n):
    batch = 4
    gen = torch.Generator().manual_seed(n)
    ys = []
    for b in range(batch):  # problems that converge at different steps
        _, _, y = rpca_instance(n, 2, 0.05 * b, dtype=dtype, seed=b)
        ys.append(y / torch.linalg.matrix_norm(y, ord=2))
    y = torch.stack(ys)
    u0 = 0.1 * torch.randn(batch, n, 4, generator=gen, dtype=dtype)
    g0 = 0.01 * torch.randn(batch, n, n, generator=gen, dtype=dtype)
    args = (0.2, math.sqrt(n), 3000, 1e-5)
    cpu = ops.rpca_dop_solve(y, u0, g0, g0.clone(), *args)
    gpu = ops.rpca_dop_solve(y.cuda(), u0.cuda(), g0.cuda(), g0.cuda(), *args)
    if dtype == torch.float64:
        assert torch.equal(gpu.n_iter.cpu(), cpu.n_iter)
    else:  # float32 sums run in different orders: the stopping step may differ by one
        assert (gpu.n_iter.cpu() - cpu.n_iter).abs().max() <= 1
    assert len(set(cpu.n_iter.tolist())) > 1  # the problems did stop at different steps
    tol = dict(rtol=1e-3, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-8, atol=1e-10)
    for b in range(batch):
        if int(gpu.n_iter[b]) == int(cpu.n_iter[b]):
            assert_close(gpu.u[b].cpu(), cpu.u[b], **tol)


@pytest.mark.parametrize("n", [10, 300])
def test_divergence_keeps_the_same_state_as_the_cpu(n):
    y = torch.full((n, n), -1.5e19, dtype=torch.float32)
    u0 = torch.full((n, 2), 0.5)
    g0 = torch.full((n, n), 0.1)
    cpu = ops.rpca_dop_solve(y, u0, g0, g0.clone(), 1e-3, 1.0, 5, 1e-6)
    gpu = ops.rpca_dop_solve(y.cuda(), u0.cuda(), g0.cuda(), g0.cuda(), 1e-3, 1.0, 5, 1e-6)
    assert int(gpu.n_iter) == int(cpu.n_iter) == 1
    for a, b in zip((gpu.u, gpu.g, gpu.h, gpu.losses), (cpu.u, cpu.g, cpu.h, cpu.losses)):
        assert_close(a.cpu(), b, equal_nan=True)


@pytest.mark.parametrize("dtype,n", [(torch.float32, 64), (torch.float64, 45), (torch.float32, 63),
                                     (torch.float64, 46)])
def test_shared_memory_boundary_in_a_fresh_process(dtype, n):
    # Requests just above 48 KiB (less the kernel's static shared memory) used to fail to launch.
    code = textwrap.dedent(f"""
        import torch, dopfast
        from dopfast import ops
        dt = {dtype}
        gen = torch.Generator().manual_seed(0)
        y = torch.randn({n}, {n}, generator=gen, dtype=dt)
        u0, g0 = (0.1 * torch.randn({n}, {n}, generator=gen, dtype=dt) for _ in range(2))
        c = ops.rpca_dop_solve(y, u0, g0, g0.clone(), 1e-3, 2.0, 20)
        g = ops.rpca_dop_solve(y.cuda(), u0.cuda(), g0.cuda(), g0.cuda(), 1e-3, 2.0, 20)
        torch.testing.assert_close(g.u.cpu(), c.u, rtol=1e-4, atol=1e-6)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_non_default_stream_and_second_device():
    x, g, h, y = make_tensors(4, (1000,), torch.float32, "cuda")
    side = torch.cuda.Stream()
    g_ref, h_ref = g.clone(), h.clone()
    r_ref, loss_ref = ops.residual_step_(x, g_ref, h_ref, y, 1e-2)
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        r, loss = ops.residual_step_(x, g, h, y, 1e-2)
    torch.cuda.current_stream().wait_stream(side)
    assert_close(r, r_ref)
    assert_close(loss, loss_ref)
    if torch.cuda.device_count() < 2:
        pytest.skip("needs a second GPU for the cuda:1 half")
    x1, g1, h1, y1 = (t.to("cuda:1") for t in (x, g_ref.clone(), h_ref.clone(), y))
    r1, _ = ops.residual_step_(x1, g1, h1, y1, 1e-2)
    assert r1.device == torch.device("cuda:1")


@pytest.mark.parametrize("n", [10, 300])  # one-block kernel, fused loop
def test_nan_data_gives_the_same_losses_as_the_cpu(n):
    y = torch.randn(n, n, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    y[0, 0] = math.nan
    u0 = 0.1 * torch.ones(n, 2)
    g0 = 0.1 * torch.ones(n, n)
    cpu = ops.rpca_dop_solve(y, u0, g0, g0.clone(), 1e-3, 1.0, 3, 1e-6)
    gpu = ops.rpca_dop_solve(y.cuda(), u0.cuda(), g0.cuda(), g0.cuda(), 1e-3, 1.0, 3, 1e-6)
    assert_close(gpu.losses.cpu(), cpu.losses, equal_nan=True)
    assert torch.equal(gpu.n_iter.cpu(), cpu.n_iter)


def test_residual_step_float32_overflow_on_cuda():
    x, g, h = (torch.zeros(4, device="cuda") for _ in range(3))
    y = torch.full((4,), -1e19, device="cuda")
    _, loss = ops.residual_step_(x, g, h, y, 0.1)
    assert torch.isinf(loss)


def _large_solve(monkeypatch, sym, env, iters):
    """A batch of problems too large for the one-block kernel (the fused loop), with a mask, under `env`."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    gen = torch.Generator().manual_seed(5)
    b, m, n, k = 3, 300, 300 if sym else 170, 6
    y = torch.randn(b, m, n, generator=gen, dtype=torch.float64)
    y[1] *= 4  # the problems stop at different steps
    mask = torch.rand(b, m, n, generator=gen) > 0.1
    u0 = 0.1 * torch.randn(b, m, k, generator=gen, dtype=torch.float64)
    g0 = 0.01 * torch.randn(b, m, n, generator=gen, dtype=torch.float64)
    args = (1e-3, 3.0, iters, 1e-5)
    if sym:
        return ops.rpca_dop_solve(y.cuda(), u0.cuda(), g0.cuda(), g0.cuda(), *args, mask=mask.cuda())
    v0 = 0.1 * torch.randn(b, n, k, generator=gen, dtype=torch.float64)
    return ops.rpca_dop_solve_uv(y.cuda(), u0.cuda(), v0.cuda(), g0.cuda(), g0.cuda(), *args, mask=mask.cuda())


@pytest.mark.parametrize("sym", [True, False])
@pytest.mark.parametrize("iters", [7, 16, 50, 400])  # no graph; one plain chunk; 3 graph chunks + 2; many
def test_fused_loop_graphs_plain_launches_and_aten_loop_agree(monkeypatch, sym, iters):
    graphs = _large_solve(monkeypatch, sym, {}, iters)
    plain = _large_solve(monkeypatch, sym, {"DOPFAST_CUDA_GRAPHS": "0"}, iters)
    aten = _large_solve(monkeypatch, sym, {"DOPFAST_CUDA_GRAPHS": "0", "DOPFAST_CUDA_LOOP": "aten"}, iters)
    for a, b in zip(graphs, plain):  # the same kernels in the same order: bit for bit
        assert_close(a.cpu(), b.cpu(), rtol=0, atol=0, equal_nan=True)
    assert torch.equal(graphs.n_iter.cpu(), aten.n_iter.cpu())
    for a, b in zip(graphs, aten):
        assert_close(a.cpu(), b.cpu(), rtol=1e-9, atol=1e-11, equal_nan=True)


@pytest.mark.parametrize("masked", [False, True])
def test_the_estimator_refines_and_certifies_on_the_gpu(masked):
    # DOP's fused CUDA loop, then the refinement on the device: float32 sweeps (on y and on corrections around the
    # float64 residual), float64 Gram matrices and solves, the pinned-rows screen and the probes
    from dopfast import RobustPCA
    from dopfast.rpca import relative_error

    x, _, y = rpca_instance(300, 6, 0.1)
    mask = (torch.rand(300, 300, generator=torch.Generator().manual_seed(4)) > 0.1) if masked else None
    cpu = RobustPCA(model="psd", random_state=0).fit(y, mask=mask)
    gpu = RobustPCA(model="psd", random_state=0).fit(y.cuda(), mask=None if mask is None else mask.cuda())
    assert gpu.low_rank_.is_cuda and gpu.refined_ and gpu.rank_ == 6
    assert relative_error(gpu.low_rank_.cpu(), x) < 1e-10
    assert relative_error(gpu.low_rank_.cpu(), cpu.low_rank_) < 1e-10
