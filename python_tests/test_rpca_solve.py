"""rpca_dop_solve / rpca_dop_solve_uv: step-for-step agreement with the Python loop, the paper's recovery."""

import math

import pytest
import torch
from conftest import rpca_instance
from torch.library import opcheck
from torch.testing import assert_close

from dopfast import ops, reference


def _init(shape_u, shape_y, dtype, scale=1e-2, seed=1, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    u0 = scale * torch.randn(shape_u, generator=gen, dtype=dtype)
    g0 = scale * torch.randn(shape_y, generator=gen, dtype=dtype)
    h0 = scale * torch.randn(shape_y, generator=gen, dtype=dtype)
    return u0.to(device), g0.to(device), h0.to(device)


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n,k", [(1, 1), (7, 3), (13, 13), (50, 50), (61, 9)])
def test_matches_reference_loop(n, k, dtype, device):
    _, _, y = rpca_instance(n, min(3, n), 0.1, dtype=dtype, seed=n)
    y = y.to(device)
    u0, g0, h0 = _init((n, k), (n, n), dtype, device=device)
    ours = ops.rpca_dop_solve(y, u0, g0, h0, 1e-3, math.sqrt(n), 25)
    ref = reference.rpca_dop_solve(y, u0, g0, h0, 1e-3, math.sqrt(n), 25)
    for a, b in zip((ours.u, ours.g, ours.h, ours.losses), (ref[0], ref[1], ref[2], ref[3])):
        assert_close(a, b, **_tol(dtype))
    assert ours.n_iter.item() == 25


@pytest.mark.parametrize("m,n,k", [(1, 4, 2), (9, 5, 5), (40, 23, 7)])
def test_uv_matches_reference_loop(m, n, k, dtype, device):
    gen = torch.Generator().manual_seed(m)
    y = torch.randn(m, n, generator=gen, dtype=dtype).to(device)
    u0, g0, h0 = _init((m, k), (m, n), dtype, device=device)
    v0 = 1e-2 * torch.randn(n, k, generator=gen, dtype=dtype).to(device)
    ours = ops.rpca_dop_solve_uv(y, u0, v0, g0, h0, 1e-2, 3.0, 20)
    ref = reference.rpca_dop_solve_uv(y, u0, v0, g0, h0, 1e-2, 3.0, 20)
    for a, b in zip(ours, ref):
        assert_close(a, b, **_tol(dtype))


def test_inputs_are_not_modified():
    _, _, y = rpca_instance(10, 2, 0.1)
    u0, g0, h0 = _init((10, 10), (10, 10), torch.float64)
    copies = [t.clone() for t in (y, u0, g0, h0)]
    ops.rpca_dop_solve(y, u0, g0, h0, 1e-3, 3.0, 10)
    for a, b in zip((y, u0, g0, h0), copies):
        assert torch.equal(a, b)


def test_nonsymmetric_and_noncontiguous_input():
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(12, 24, generator=gen, dtype=torch.float64)[:, ::2]
    u0 = 1e-2 * torch.randn(12, 24, generator=gen, dtype=torch.float64)[:, ::4]
    g0 = 1e-2 * torch.randn(12, 12, generator=gen, dtype=torch.float64).T
    h0 = g0.clone()
    ours = ops.rpca_dop_solve(y, u0, g0, h0, 1e-2, 2.0, 30)
    ref = reference.rpca_dop_solve(y, u0, g0, h0, 1e-2, 2.0, 30)
    for a, b in zip((ours.u, ours.g, ours.h, ours.losses), ref[:4]):
        assert_close(a, b)


def test_batch_matches_single_problems(device):
    ys, inits = [], []
    for b in range(3):
        _, _, y = rpca_instance(20, 2, 0.1, seed=b)
        ys.append(y)
        inits.append(_init((20, 20), (20, 20), torch.float64, seed=b))
    y = torch.stack(ys).to(device)
    u0, g0, h0 = (torch.stack([i[j] for i in inits]).to(device) for j in range(3))
    batch = ops.rpca_dop_solve(y, u0, g0, h0, 1e-3, math.sqrt(20), 200, tol=1e-5)
    for b in range(3):
        single = ops.rpca_dop_solve(y[b], u0[b], g0[b], h0[b], 1e-3, math.sqrt(20), 200, tol=1e-5)
        assert_close(batch.u[b], single.u)
        assert_close(batch.losses[b], single.losses, equal_nan=True)
        assert batch.n_iter[b] == single.n_iter


def test_tol_stops_early_and_pads_losses_with_nan():
    _, _, y = rpca_instance(12, 2, 0.05, seed=3)
    u0, g0, h0 = _init((12, 12), (12, 12), torch.float64, scale=0.1)
    out = ops.rpca_dop_solve(y, u0, g0, h0, 5e-3, math.sqrt(12), 50_000, tol=1e-3)
    ref = reference.rpca_dop_solve(y, u0, g0, h0, 5e-3, math.sqrt(12), 50_000, tol=1e-3)
    n = int(out.n_iter)
    assert 10 < n < 50_000 and n == int(ref[4])
    assert torch.isfinite(out.losses[:n]).all() and torch.isnan(out.losses[n:]).all()


def test_small_init_plateau_does_not_stop_early():
    # At the paper's init (1e-4) the loss barely moves for hundreds of steps; the iterates do.
    _, _, y = rpca_instance(50, 5, 0.1)
    u0, g0, _ = _init((50, 50), (50, 50), torch.float64, scale=1e-4)
    out = ops.rpca_dop_solve(y, u0, g0, g0.clone(), 1e-4, math.sqrt(50), 3000, tol=1e-6)
    assert int(out.n_iter) == 3000


def test_divergence_is_reported_in_losses():
    _, _, y = rpca_instance(10, 2, 0.1)
    u0, g0, h0 = _init((10, 10), (10, 10), torch.float64, scale=1.0)
    out = ops.rpca_dop_solve(y, u0, g0, h0, 10.0, 3.0, 100)
    n = int(out.n_iter)
    assert n < 100 and not math.isfinite(out.losses[n - 1].item())


@pytest.mark.parametrize("dtype_", [torch.float64, torch.float32])
def test_paper_setting_recovers_low_rank(dtype_):
    # n = 50, r = 5, p = 10 %, alpha = sqrt(n), tau = 1e-4, init std 1e-4, 2e4 steps (DOP paper, Fig. 2).
    n = 50
    x_true, _, y = rpca_instance(n, 5, 0.1, dtype=dtype_, seed=0)
    gen = torch.Generator().manual_seed(1)
    u0 = 1e-4 * torch.randn(n, n, generator=gen, dtype=dtype_)
    g0 = 1e-4 * torch.randn(n, n, generator=gen, dtype=dtype_)
    out = ops.rpca_dop_solve(y, u0, g0, g0.clone(), 1e-4, math.sqrt(n), 20_000)
    err = (out.u @ out.u.T - x_true).norm() / x_true.norm()
    assert err < 0.1, err


def test_large_problem_uses_aten_loop_and_matches_reference():
    # Above the in-cache kernel's size the solver runs the ATen loop; same contract.
    n = 170
    _, _, y = rpca_instance(n, 3, 0.05, seed=9)
    u0, g0, h0 = _init((n, 8), (n, n), torch.float64)
    ours = ops.rpca_dop_solve(y, u0, g0, h0, 1e-4, math.sqrt(n), 40, tol=1e-12)
    ref = reference.rpca_dop_solve(y, u0, g0, h0, 1e-4, math.sqrt(n), 40, tol=1e-12)
    for a, b in zip((ours.u, ours.g, ours.h, ours.losses, ours.n_iter), ref):
        assert_close(a, b, equal_nan=True)


def test_empty_and_zero_iterations():
    y = torch.zeros(0, 0, dtype=torch.float64)
    out = ops.rpca_dop_solve(y, torch.zeros(0, 3, dtype=torch.float64), y, y, 1e-3, 1.0, 5)
    assert out.u.shape == (0, 3) and out.losses.shape == (5,)
    _, _, y = rpca_instance(5, 1, 0.1)
    u0, g0, h0 = _init((5, 2), (5, 5), torch.float64)
    out = ops.rpca_dop_solve(y, u0, g0, h0, 1e-3, 1.0, 0)
    assert torch.equal(out.u, u0) and out.losses.shape == (0,) and int(out.n_iter) == 0
    yb = torch.zeros(0, 4, 4, dtype=torch.float64)
    out = ops.rpca_dop_solve(yb, torch.zeros(0, 4, 2, dtype=torch.float64), yb, yb, 1e-3, 1.0, 3)
    assert out.losses.shape == (0, 3) and out.n_iter.shape == (0,)


def test_opcheck(device):
    _, _, y = rpca_instance(6, 2, 0.1)
    u0, g0, h0 = _init((6, 4), (6, 6), torch.float64)
    args = [t.to(device) for t in (y, u0, g0, h0)]
    opcheck(torch.ops.dopfast.rpca_dop_solve.default, (*args, 1e-3, 2.0, 5, 0.0))
    v0 = 1e-2 * torch.randn(6, 4, dtype=torch.float64, device=device)
    opcheck(torch.ops.dopfast.rpca_dop_solve_uv.default, (args[0], args[1], v0, args[2], args[3], 1e-3, 2.0, 5, 0.0))
    yb = torch.stack([args[0]] * 2)
    batch = [torch.stack([a] * 2) for a in args[1:]]
    opcheck(torch.ops.dopfast.rpca_dop_solve.default, (yb, *batch, 1e-3, 2.0, 5, 1e-9))


def _masked_problem(m, n, k, dtype, device, sym, seed=0, observed=0.85):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(m, n, generator=gen, dtype=dtype)
    mask = torch.rand(m, n, generator=gen) < observed
    y = y.masked_fill(~mask, math.nan)  # a missing entry holds anything, NaN included: it must never be read
    u0, g0, h0 = _init((m, k), (m, n), dtype, seed=seed)
    v0 = None if sym else 1e-2 * torch.randn(n, k, generator=gen, dtype=dtype)
    to = lambda t: None if t is None else t.to(device)  # noqa: E731
    return to(y), to(mask), to(u0), to(v0), to(g0), to(h0)


@pytest.mark.parametrize("m,n,k,sym", [(13, 13, 13, True), (40, 23, 7, False), (170, 170, 8, True),
                                       (150, 130, 6, False)], ids=["sym-small", "uv-small", "sym-large", "uv-large"])
def test_masked_matches_reference_loop(m, n, k, sym, dtype, device):
    # The in-cache kernel (small) and the BLAS / ATen loop (large), with about 15% of the entries missing.
    y, mask, u0, v0, g0, h0 = _masked_problem(m, n, k, dtype, device, sym, seed=m + n)
    tau, alpha = (1e-3, math.sqrt(n)) if m < 100 else (1e-4, math.sqrt(n))
    if sym:
        ours = ops.rpca_dop_solve(y, u0, g0, h0, tau, alpha, 30, tol=1e-12, mask=mask)
        ref = reference.rpca_dop_solve(y.cpu(), u0.cpu(), g0.cpu(), h0.cpu(), tau, alpha, 30, tol=1e-12,
                                       mask=mask.cpu())
        got = (ours.u, ours.g, ours.h, ours.losses, ours.n_iter)
    else:
        ours = ops.rpca_dop_solve_uv(y, u0, v0, g0, h0, tau, alpha, 30, tol=1e-12, mask=mask)
        ref = reference.rpca_dop_solve_uv(y.cpu(), u0.cpu(), v0.cpu(), g0.cpu(), h0.cpu(), tau, alpha, 30,
                                          tol=1e-12, mask=mask.cpu())
        got = tuple(ours)
    for a, b in zip(got, ref):
        assert_close(a.cpu(), b, equal_nan=True, **_tol(dtype))
    assert torch.isfinite(ours.losses[: int(ours.n_iter)]).all()
    missing = ~mask
    assert torch.equal(ours.g[missing], g0[missing]) and torch.equal(ours.h[missing], h0[missing])


def test_masked_batch_matches_single_problems(device):
    problems = [_masked_problem(12, 12, 4, torch.float64, device, True, seed=s, observed=0.5 + 0.2 * s)
                for s in range(3)]
    y, mask, u0, _, g0, h0 = (torch.stack([p[j] for p in problems]) if j != 3 else None for j in range(6))
    batch = ops.rpca_dop_solve(y, u0, g0, h0, 1e-3, 3.0, 40, mask=mask)
    for b, (yb, mb, ub, _, gb, hb) in enumerate(problems):
        one = ops.rpca_dop_solve(yb, ub, gb, hb, 1e-3, 3.0, 40, mask=mb)
        assert_close(batch.u[b], one.u)
        assert_close(batch.g[b], one.g)
        assert_close(batch.losses[b], one.losses)


def test_all_observed_mask_equals_no_mask_and_01_masks_are_accepted():
    y, _, u0, _, g0, h0 = _masked_problem(10, 10, 3, torch.float64, "cpu", True, observed=1.0)
    plain = ops.rpca_dop_solve(y, u0, g0, h0, 1e-3, 3.0, 25)
    ones = ops.rpca_dop_solve(y, u0, g0, h0, 1e-3, 3.0, 25, mask=torch.ones(10, 10))
    for a, b in zip((plain.u, plain.g, plain.losses), (ones.u, ones.g, ones.losses)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("bad,exc,match", [
    (lambda y: torch.ones(3, 3, dtype=torch.bool), RuntimeError, r"mask must have the shape of y"),
    (lambda y: torch.full(y.shape, 2.0), ValueError, r"mask must be bool or hold only 0 and 1"),
    (lambda y: torch.ones(y.shape, dtype=torch.complex64), TypeError, r"mask must be bool or 0/1"),
])
def test_mask_errors(bad, exc, match):
    y, _, u0, v0, g0, h0 = _masked_problem(6, 5, 2, torch.float64, "cpu", False)
    with pytest.raises(exc, match=match):
        ops.rpca_dop_solve_uv(y, u0, v0, g0, h0, 1e-3, 2.0, 5, mask=bad(y))
    if exc is RuntimeError:  # the fake kernel (torch.compile, meta tensors) says the same
        with pytest.raises(RuntimeError, match=match):
            torch.ops.dopfast.rpca_dop_solve_uv(*(t.to("meta") for t in (y, u0, v0, g0, h0)), 1e-3, 2.0, 5, 0.0,
                                                bad(y).to("meta"))


def test_opcheck_masked(device):
    y, mask, u0, v0, g0, h0 = _masked_problem(6, 6, 3, torch.float64, device, False)
    opcheck(torch.ops.dopfast.rpca_dop_solve.default, (y, u0, g0, h0, 1e-3, 2.0, 5, 0.0, mask))
    opcheck(torch.ops.dopfast.rpca_dop_solve_uv.default, (y, u0, v0, g0, h0, 1e-3, 2.0, 5, 1e-9, mask))
    yb, mb = torch.stack([y.nan_to_num()] * 2), torch.stack([mask, ~mask])  # NaN only where unobserved
    batch = [torch.stack([t] * 2) for t in (u0, g0, h0)]
    opcheck(torch.ops.dopfast.rpca_dop_solve.default, (yb, *batch, 1e-3, 2.0, 5, 1e-9, mb))
