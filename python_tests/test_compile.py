"""torch.compile(fullgraph=True) over the ops: no graph breaks, same results as eager."""

import math

import pytest
import torch
from conftest import make_tensors, rpca_instance
from torch.testing import assert_close

from dopfast import ops


def _dop_iteration(u, g, h, y, tau, alpha):
    # One Python-level DOP iteration built from the fused ops (the large-problem path of the RPCA pipeline).
    r, loss = ops.residual_step_(u @ u.mT, g, h, y, alpha * tau)
    ops.lowrank_step_(u, 0.5 * (r + r.mT), tau)
    return loss


def test_compiled_iteration_matches_eager():
    torch._dynamo.reset()
    _, _, y = rpca_instance(16, 2, 0.1)
    u, g, h = make_tensors(3, (16, 16), torch.float64, "cpu", seed=2)
    u, g, h = 0.1 * u, 0.1 * g, 0.1 * h
    state_eager = [t.clone() for t in (u, g, h)]
    state_comp = [t.clone() for t in (u, g, h)]
    compiled = torch.compile(_dop_iteration, fullgraph=True)
    for _ in range(3):
        le = _dop_iteration(*state_eager, y, 1e-3, 4.0)
        lc = compiled(*state_comp, y, 1e-3, 4.0)
        assert_close(lc, le)
    for a, b in zip(state_comp, state_eager):
        assert_close(a, b)


def test_compiled_dop_residual_with_autograd():
    torch._dynamo.reset()
    x, g, h, y = make_tensors(4, (8, 5), torch.float64, "cpu", seed=3)

    def loss_fn(w, g, h):
        return 0.25 * ops.dop_residual(torch.tanh(x * w), g, h, y).pow(2).sum()

    w = torch.ones(8, 5, dtype=torch.float64, requires_grad=True)
    ge, he = g.clone().requires_grad_(), h.clone().requires_grad_()
    gc, hc = g.clone().requires_grad_(), h.clone().requires_grad_()
    le = loss_fn(w, ge, he)
    (gw_e, gg_e, gh_e) = torch.autograd.grad(le, (w, ge, he))
    lc = torch.compile(loss_fn, fullgraph=True)(w, gc, hc)
    (gw_c, gg_c, gh_c) = torch.autograd.grad(lc, (w, gc, hc))
    for a, b in ((lc, le), (gw_c, gw_e), (gg_c, gg_e), (gh_c, gh_e)):
        assert_close(a, b)


@pytest.mark.parametrize("uv", [False, True])
def test_compiled_solver(uv):
    torch._dynamo.reset()
    _, _, y = rpca_instance(10, 2, 0.1)
    u0, g0, h0 = make_tensors(3, (10, 10), torch.float64, "cpu", seed=4)
    u0, g0, h0 = 1e-2 * u0, 1e-2 * g0, 1e-2 * h0

    def solve(y, u0, g0, h0):
        if uv:
            return ops.rpca_dop_solve_uv(y, u0, u0.clone(), g0, h0, 1e-3, math.sqrt(10), 30).losses
        return ops.rpca_dop_solve(y, u0, g0, h0, 1e-3, math.sqrt(10), 30).losses

    assert_close(torch.compile(solve, fullgraph=True)(y, u0, g0, h0), solve(y, u0, g0, h0))
