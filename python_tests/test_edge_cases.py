"""Edge cases found by hostile inputs and a reading of the kernels: empty factors, non-finite steps, overflow,
autograd through in-place and non-differentiable ops, forward-mode AD, SOP rows with non-finite logits."""

import math

import pytest
import torch
from torch.testing import assert_close

from dopfast import ops, reference

f64 = dict(dtype=torch.float64)


def _uv_problem(batch, m, n, k, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    shape = lambda *s: (batch, *s) if batch else s  # noqa: E731
    y = torch.randn(shape(m, n), generator=gen, dtype=dtype)
    u0, v0 = (0.1 * torch.randn(shape(r, k), generator=gen, dtype=dtype) for r in (m, n))
    g0, h0 = (0.1 * torch.randn(shape(m, n), generator=gen, dtype=dtype) for _ in range(2))
    return y, u0, v0, g0, h0


@pytest.mark.parametrize("batch,m,n,k", [(0, 3, 8, 0), (2, 3, 8, 0), (0, 40, 0, 5), (0, 1, 64, 0), (3, 0, 4, 2)])
def test_empty_factors_run_the_uv_model(batch, m, n, k, device):
    # An empty v has no data pointer: the model must not be inferred from it (it crashed the process, or ran
    # U U^T on a rectangular problem and returned garbage in u).
    y, u0, v0, g0, h0 = (t.to(device) for t in _uv_problem(batch, m, n, k))
    ours = ops.rpca_dop_solve_uv(y, u0, v0, g0, h0, 1e-2, 2.0, 3, 1e-9)
    ref = reference.rpca_dop_solve_uv(y.cpu(), u0.cpu(), v0.cpu(), g0.cpu(), h0.cpu(), 1e-2, 2.0, 3, 1e-9)
    for a, b in zip(ours, ref):
        assert_close(a.cpu(), b, equal_nan=True)
    if n == 0:
        assert torch.equal(ours.u, u0)  # R is empty: U does not move


@pytest.mark.parametrize("n", [2, 150])  # in-cache kernel, BLAS products
def test_non_finite_step_keeps_the_pre_step_factors(n, device):
    # float32 residuals of 1.5e19 square to more than FLT_MAX: the first step's loss is inf in float32.
    y = torch.full((n, n), -1.5e19, dtype=torch.float32, device=device)
    u0 = torch.full((n, 1), 0.5, dtype=torch.float32, device=device)
    g0 = torch.full((n, n), 0.1, dtype=torch.float32, device=device)
    ours = ops.rpca_dop_solve(y, u0, g0, g0.clone(), 1e-3, 1.0, 4, 1e-6)
    ref = reference.rpca_dop_solve(y.cpu(), u0.cpu(), g0.cpu(), g0.cpu().clone(), 1e-3, 1.0, 4, 1e-6)
    assert int(ours.n_iter) == int(ref[4]) == 1
    assert torch.equal(ours.u.cpu(), u0.cpu())  # U did not take the non-finite step
    for a, b in zip((ours.g, ours.h, ours.losses), ref[1:4]):
        assert_close(a.cpu(), b, equal_nan=True)


def test_residual_step_float32_overflow_returns_inf_after_a_complete_step():
    x, y = torch.full((8,), 3e19), torch.zeros(8)
    g, h = torch.full((8,), 1e-3), torch.full((8,), 1e-3)
    g_ref, h_ref = g.clone(), h.clone()
    r, loss = ops.residual_step_(x, g, h, y, 1e-30)
    r_ref, loss_ref = reference.residual_step_(x, g_ref, h_ref, y, 1e-30)
    assert math.isinf(loss.item()) and math.isinf(loss_ref.item())
    assert_close(r, r_ref)
    assert_close(g, g_ref)
    assert_close(h, h_ref)


def test_in_place_ops_bump_version_counters():
    g0 = torch.randn(4, requires_grad=True)
    g = g0 * 1
    z = (g * g).sum()  # saves g for backward
    x, h, y = torch.randn(4), torch.randn(4), torch.randn(4)
    with torch.no_grad():
        ops.residual_step_(x, g, h, y, 0.5)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.backward()


@pytest.mark.parametrize("call", ["residual_step_", "lowrank_step_"])
def test_in_place_update_of_a_leaf_that_requires_grad_is_refused(call):
    leaf = torch.randn(4, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        if call == "residual_step_":
            ops.residual_step_(torch.randn(4, 4), leaf, torch.randn(4, 4), torch.randn(4, 4), 0.1)
        else:
            ops.lowrank_step_(leaf, torch.randn(4, 4), 0.1)


def test_backward_through_the_solver_is_an_error():
    y = torch.randn(5, 5, **f64)
    u0 = (0.1 * torch.randn(5, 2, **f64)).requires_grad_()
    g0 = 0.1 * torch.randn(5, 5, **f64)
    out = ops.rpca_dop_solve(y, u0, g0, g0.clone(), 1e-3, 2.0, 5)
    with pytest.raises(RuntimeError, match="not implemented"):
        out.u.sum().backward()
    assert u0.grad is None


def test_dop_residual_forward_mode_and_torch_func():
    x, g, h, y = (torch.randn(5, 4, **f64) for _ in range(4))
    tangents = tuple(torch.randn(5, 4, **f64) for _ in range(4))
    _, jvp = torch.func.jvp(ops.dop_residual, (x, g, h, y), tangents)
    _, jvp_ref = torch.func.jvp(reference.dop_residual, (x, g, h, y), tangents)
    assert_close(jvp, jvp_ref)
    for transform in (torch.func.jacfwd, torch.func.jacrev):
        assert_close(transform(ops.dop_residual, argnums=(1, 2))(x, g, h, y),
                     transform(reference.dop_residual, argnums=(1, 2))(x, g, h, y))
    grad = torch.func.grad(lambda g: ops.dop_residual(x, g, h, y).pow(2).sum())(g)
    assert_close(grad, torch.func.grad(lambda g: reference.dop_residual(x, g, h, y).pow(2).sum())(g))
    assert_close(torch.func.vmap(ops.dop_residual)(x, g, h, y), reference.dop_residual(x, g, h, y))


def test_numpy_scalars_are_numbers():
    np = pytest.importorskip("numpy")
    y = torch.randn(4, 4, **f64)
    u0, g0 = 0.1 * torch.randn(4, 2, **f64), 0.1 * torch.randn(4, 4, **f64)
    a = ops.rpca_dop_solve(y, u0, g0, g0.clone(), np.float32(1e-3), np.float64(2.0), np.int64(5), np.float32(0))
    b = ops.rpca_dop_solve(y, u0, g0, g0.clone(), float(np.float32(1e-3)), 2.0, 5, 0.0)
    assert_close(a.u, b.u)


@pytest.mark.parametrize("paper", [False, True], ids=["official", "paper"])
@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_sop_row_with_a_non_finite_logit_keeps_its_state(paper, bad, device):
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(3, 4, generator=gen, **f64)
    z[1, 2] = bad
    t, idx = torch.tensor([0, 1, 3]), torch.tensor([4, 0, 7])
    u = 0.3 * torch.randn(10, 4 if paper else 1, generator=gen, **f64)
    v = 0.3 * torch.randn(10, 4, generator=gen, **f64)
    u_ref, v_ref = u.clone(), v.clone()
    ud, vd = u.to(device), v.to(device)
    loss, _ = ops.sop_loss_step_(z.to(device), t.to(device), idx.to(device), ud, vd, 0.5, 0.5, paper)
    loss_ref, _ = reference.sop_loss_step_(z, t, idx, u_ref, v_ref, 0.5, 0.5, paper)
    assert torch.isnan(loss) and torch.isnan(loss_ref)
    assert torch.equal(ud[0].cpu(), u[0]) and torch.equal(vd[0].cpu(), v[0])  # the bad row (index 0) kept
    assert_close(ud.cpu(), u_ref)
    assert_close(vd.cpu(), v_ref)


def test_sop_zero_learning_rates_write_nothing(device):
    # Evaluation (lr_u = lr_v = 0) must not project the paper variant's rows either.
    u = torch.tensor([[2.0, 0.5]], **f64).to(device)
    v = torch.tensor([[0.0, 3.0]], **f64).to(device)
    z, t, i = (a.to(device) for a in (torch.tensor([[1.0, 0.0]], **f64), torch.tensor([1]), torch.tensor([0])))
    ops.sop_loss_step_(z, t, i, u, v, 0.0, 0.0, True)
    assert u.tolist() == [[2.0, 0.5]] and v.tolist() == [[0.0, 3.0]]


def test_sop_second_derivative_warns():
    from dopfast.sop import SOPLoss

    crit = SOPLoss(10, 3, seed=0).double().eval()
    z = torch.randn(4, 3, **f64, requires_grad=True)
    with pytest.warns(UserWarning, match="second derivatives of the SOP loss are not supported"):
        torch.autograd.grad(crit(z, torch.tensor([0, 1, 2, 0]), torch.tensor([1, 2, 3, 4])), z, create_graph=True)


def test_residual_step_float32_sum_overflow_is_inf_like_the_reference():
    # The sum of squares overflows float32 although a quarter of it would not: the reference sums in float32.
    x, g, h = (torch.zeros(4) for _ in range(3))
    y = torch.full((4,), -1e19)
    _, loss = ops.residual_step_(x, g, h, y, 0.1)
    _, loss_ref = reference.residual_step_(x, g.clone(), h.clone(), y, 0.1)
    assert torch.isinf(loss) and torch.isinf(loss_ref)
