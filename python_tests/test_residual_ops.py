"""residual_step_, residual_step_out_ and dop_residual against dopfast.reference."""

import pytest
import torch
from conftest import make_tensors
from torch.library import opcheck
from torch.testing import assert_close

from dopfast import ops, reference

SHAPES = [(0,), (1,), (7,), (33, 17), (3, 5, 129), (4, 1000)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("noncontiguous", [False, True])
def test_residual_step_matches_reference(shape, noncontiguous, dtype, device):
    x, g, h, y = make_tensors(4, shape, dtype, device, noncontiguous=noncontiguous)
    g_ref, h_ref = g.clone(), h.clone()
    r, loss = ops.residual_step_(x, g, h, y, 0.05)
    r_ref, loss_ref = reference.residual_step_(x, g_ref, h_ref, y, 0.05)
    assert r.shape == x.shape and loss.shape == () and loss.dtype == dtype
    assert_close(r, r_ref)
    assert_close(g, g_ref)
    assert_close(h, h_ref)
    assert_close(loss, loss_ref.to(dtype))


def test_residual_step_large_parallel_sum_is_deterministic(dtype):
    # > 1 chunk per thread: the loss must not depend on the thread count or the run.
    x, g, h, y = make_tensors(4, (3_000_001,), dtype, "cpu", seed=3)
    losses = []
    for threads in (1, 2):
        prev = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            losses.append(ops.residual_step_(x, g.clone(), h.clone(), y, 1e-3)[1])
        finally:
            torch.set_num_threads(prev)
    assert losses[0].item() == losses[1].item()
    assert_close(losses[0], reference.residual_step_(x, g.clone(), h.clone(), y, 1e-3)[1].to(dtype),
                 rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=0)


def test_residual_step_out_matches_reference(dtype, device):
    x, g, h, y = make_tensors(4, (65, 31), dtype, device, seed=1)
    r = torch.empty_like(x)
    g_ref, h_ref = g.clone(), h.clone()
    loss = ops.residual_step_out_(x, g, h, y, 0.1, r)
    r_ref, loss_ref = reference.residual_step_(x, g_ref, h_ref, y, 0.1)
    assert_close(r, r_ref)
    assert_close(g, g_ref)
    assert_close(h, h_ref)
    assert_close(loss, loss_ref.to(dtype))


def test_residual_step_out_noncontiguous_buffer(device):
    x, g, h, y = make_tensors(4, (9, 8), torch.float64, device, seed=2)
    r = torch.zeros(9, 16, dtype=torch.float64, device=device)[:, ::2]
    ops.residual_step_out_(x, g.clone(), h.clone(), y, 0.1, r)
    assert_close(r, reference.dop_residual(x, g, h, y))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("noncontiguous", [False, True])
def test_dop_residual_forward_backward(shape, noncontiguous, dtype, device):
    tensors = make_tensors(4, shape, dtype, device, seed=4, noncontiguous=noncontiguous)
    ours = [t.clone().requires_grad_(i < 3) for i, t in enumerate(tensors)]
    ref = [t.clone().requires_grad_(i < 3) for i, t in enumerate(tensors)]
    out, out_ref = ops.dop_residual(*ours), reference.dop_residual(*ref)
    assert_close(out, out_ref)
    grad = torch.randn_like(out_ref)
    out.backward(grad)
    out_ref.backward(grad)
    for a, b in zip(ours[:3], ref[:3]):
        assert_close(a.grad, b.grad)


def test_dop_residual_grad_wrt_y():
    x, g, h, y = (t.requires_grad_() for t in make_tensors(4, (5, 4), torch.float64, "cpu", seed=5))
    assert torch.autograd.gradcheck(ops.dop_residual, (x, g, h, y))


def test_dop_residual_gradcheck_and_gradgradcheck():
    x, g, h, y = make_tensors(4, (6, 7), torch.float64, "cpu", seed=6)
    args = (x.requires_grad_(), g.requires_grad_(), h.requires_grad_(), y)
    assert torch.autograd.gradcheck(ops.dop_residual, args)
    assert torch.autograd.gradgradcheck(ops.dop_residual, args)
    grad = torch.randn(6, 7, dtype=torch.float64, requires_grad=True)
    gg, hh = (t.detach().clone().requires_grad_() for t in (g, h))
    assert torch.autograd.gradcheck(torch.ops.dopfast.dop_residual_backward, (grad, gg, hh))


def test_backward_matches_reference_kernel(dtype, device):
    grad, g, h = make_tensors(3, (17, 5), dtype, device, seed=7)
    for a, b in zip(torch.ops.dopfast.dop_residual_backward(grad, g, h), reference.dop_residual_backward(grad, g, h)):
        assert_close(a, b)


@pytest.mark.parametrize("shape", [(0,), (5, 3)])
def test_opcheck(shape, device):
    x, g, h, y = make_tensors(4, shape, torch.float64, device, seed=8)
    opcheck(torch.ops.dopfast.residual_step_.default, (x, g.clone(), h.clone(), y, 0.1))
    opcheck(torch.ops.dopfast.residual_step_out_.default, (x, g.clone(), h.clone(), y, 0.1, torch.empty_like(x)))
    opcheck(torch.ops.dopfast.dop_residual.default, (x, g, h, y))
    opcheck(torch.ops.dopfast.dop_residual.default,
            (x.clone().requires_grad_(), g.clone().requires_grad_(), h.clone().requires_grad_(), y))
    opcheck(torch.ops.dopfast.dop_residual_backward.default, (x, g, h))


def _mask(shape, device, noncontiguous=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    full = torch.rand(shape if not noncontiguous else (*shape[:-1], 2 * shape[-1]) if shape else shape,
                      generator=gen) < 0.6
    return (full[..., ::2] if noncontiguous and shape else full).to(device)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("noncontiguous", [False, True])
def test_masked_residual_step_matches_reference(shape, noncontiguous, dtype, device):
    x, g, h, y = make_tensors(4, shape, dtype, device, noncontiguous=noncontiguous, seed=4)
    mask = _mask(shape, device, noncontiguous)
    y = torch.where(mask, y, torch.full_like(y, float("nan")))  # what is missing may hold anything
    g0, h0 = g.clone(), h.clone()
    g_ref, h_ref = g.clone(), h.clone()
    r, loss = ops.residual_step_(x, g, h, y, 0.05, mask)
    r_ref, loss_ref = reference.residual_step_(x, g_ref, h_ref, y, 0.05, mask)
    assert_close(r, r_ref)
    assert_close(g, g_ref)
    assert_close(h, h_ref)
    assert_close(loss, loss_ref.to(dtype))
    assert torch.equal(g[~mask], g0[~mask]) and torch.equal(h[~mask], h0[~mask])  # missing entries untouched
    assert bool((r[~mask] == 0).all()) and bool(torch.isfinite(loss))
    # an all-true mask is no mask
    g1, h1, g2, h2 = g0.clone(), h0.clone(), g0.clone(), h0.clone()
    y1 = torch.where(mask, y, torch.zeros_like(y))
    everything = torch.ones_like(mask)
    r1, r2 = ops.residual_step_(x, g1, h1, y1, 0.05, everything)[0], ops.residual_step_(x, g2, h2, y1, 0.05)[0]
    assert torch.equal(r1, r2)
    assert torch.equal(g1, g2)


def test_masked_residual_step_out_and_01_masks(dtype, device):
    x, g, h, y = make_tensors(4, (9, 13), dtype, device, seed=5)
    mask = _mask((9, 13), device, seed=1)
    r = torch.empty_like(x)
    g_ref, h_ref = g.clone(), h.clone()
    loss = ops.residual_step_out_(x, g, h, y, 0.1, r, mask.to(dtype))  # 0/1 floats are taken as a mask
    r_ref, loss_ref = reference.residual_step_(x, g_ref, h_ref, y, 0.1, mask)
    assert_close(r, r_ref)
    assert_close(g, g_ref)
    assert_close(loss, loss_ref.to(dtype))
    with pytest.raises(ValueError, match="mask must be bool or hold only 0 and 1"):
        ops.residual_step_(x, g, h, y, 0.1, 2 * mask.to(dtype))


@pytest.mark.parametrize("shape", [(0,), (5, 3)])
def test_masked_opcheck(shape, device):
    x, g, h, y = make_tensors(4, shape, torch.float64, device, seed=8)
    mask = _mask(shape, device, seed=2)
    opcheck(torch.ops.dopfast.residual_step_.default, (x, g.clone(), h.clone(), y, 0.1, mask))
    opcheck(torch.ops.dopfast.residual_step_out_.default,
            (x, g.clone(), h.clone(), y, 0.1, torch.empty_like(x), mask))


def test_masked_residual_step_under_compile():
    x, g, h, y = make_tensors(4, (6, 5), torch.float64, "cpu", seed=9)
    mask = _mask((6, 5), "cpu", seed=3)
    g_ref, h_ref = g.clone(), h.clone()

    @torch.compile(fullgraph=True, backend="aot_eager")
    def step(x, g, h, y, m):
        return ops.residual_step_(x, g, h, y, 0.1, m)

    r, loss = step(x, g, h, y, mask)
    r_ref, loss_ref = reference.residual_step_(x, g_ref, h_ref, y, 0.1, mask)
    assert_close(r, r_ref)
    assert_close(g, g_ref)
    assert_close(loss, loss_ref)
