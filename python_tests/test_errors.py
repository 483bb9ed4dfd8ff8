"""Bad input raises a clear error that names the argument, for every op."""

import math

import pytest
import torch

from dopfast import ops

f64 = dict(dtype=torch.float64)


def _residual_args(shape=(4, 3)):
    return [torch.randn(shape, **f64) for _ in range(4)]


@pytest.mark.parametrize("fn", ["residual_step_", "dop_residual"])
def test_residual_shape_dtype_and_integer_errors(fn):
    call = (lambda x, g, h, y: ops.residual_step_(x, g, h, y, 0.1)) if fn == "residual_step_" else ops.dop_residual
    x, g, h, y = _residual_args()
    with pytest.raises(RuntimeError, match=r"g must have the shape of x \[4, 3\], got \[4, 4\]"):
        call(x, torch.randn(4, 4, **f64), h, y)
    with pytest.raises(RuntimeError, match=r"y must have the dtype of x"):
        call(x, g, h, y.float())
    with pytest.raises(RuntimeError, match=r"x must be a float32 or float64 tensor, got Long"):
        call(x.long(), g.long(), h.long(), y.long())
    with pytest.raises(RuntimeError, match=r"h must be a float32 or float64 tensor, got Int"):
        call(x, g, h.int(), y)
    with pytest.raises(RuntimeError, match=r"h must be on the device of x"):
        call(x, g, h.to("meta"), y)


@pytest.mark.parametrize("step", [math.nan, math.inf, -math.inf])
def test_non_finite_step(step):
    x, g, h, y = _residual_args()
    with pytest.raises(RuntimeError, match="step must be a finite number"):
        ops.residual_step_(x, g, h, y, step)
    with pytest.raises(RuntimeError, match="step must be a finite number"):
        ops.residual_step_out_(x, g, h, y, step, torch.empty_like(x))
    u = torch.randn(4, 2, **f64)
    with pytest.raises(RuntimeError, match="step must be a finite number"):
        ops.lowrank_step_(u, torch.randn(4, 4, **f64), step)
    with pytest.raises(RuntimeError, match="step must be a finite number"):
        ops.lowrank_step_uv_(u, torch.randn(3, 2, **f64), torch.randn(4, 3, **f64), step)


def test_step_type():
    x, g, h, y = _residual_args()
    with pytest.raises(TypeError, match="step must be a float, got str"):
        ops.residual_step_(x, g, h, y, "0.1")


def test_aliasing_in_place_arguments():
    x, g, h, y = _residual_args()
    with pytest.raises(RuntimeError, match="g and h share memory"):
        ops.residual_step_(x, g, g, y, 0.1)
    with pytest.raises(RuntimeError, match="g and x share memory"):
        ops.residual_step_(x, x, h, y, 0.1)
    with pytest.raises(RuntimeError, match="r and y share memory"):
        ops.residual_step_out_(x, g, h, y, 0.1, y)
    with pytest.raises(RuntimeError, match="g has overlapping elements"):
        ops.residual_step_(x, torch.randn(1, 3, **f64).expand(4, 3), h, y, 0.1)


def test_lowrank_errors():
    u = torch.randn(5, 2, **f64)
    with pytest.raises(RuntimeError, match=r"r must have shape \(5, 5\)"):
        ops.lowrank_step_(u, torch.randn(4, 4, **f64), 0.1)
    with pytest.raises(RuntimeError, match="u must be a matrix"):
        ops.lowrank_step_(torch.randn(5, **f64), torch.randn(5, 5, **f64), 0.1)
    with pytest.raises(RuntimeError, match="r must have the dtype of u"):
        ops.lowrank_step_(u, torch.randn(5, 5), 0.1)
    with pytest.raises(RuntimeError, match="v must have shape"):
        ops.lowrank_step_uv_(u, torch.randn(3, 4, **f64), torch.randn(5, 3, **f64), 0.1)
    with pytest.raises(RuntimeError, match="u must be a float32 or float64 tensor"):
        ops.lowrank_step_(u.long(), torch.randn(5, 5, **f64).long(), 0.1)


def _solver_args(n=6, k=3):
    return torch.randn(n, n, **f64), torch.randn(n, k, **f64), torch.randn(n, n, **f64), torch.randn(n, n, **f64)


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(tau=math.nan), "tau must be a finite number"),
        (dict(tau=-1.0), "tau must be > 0"),
        (dict(alpha=0.0), "alpha must be > 0"),
        (dict(alpha=math.inf), "alpha must be a finite number"),
        (dict(tau=1e300, alpha=1e300), r"alpha \* tau must be a finite number"),
        (dict(iters=-1), "iters must be >= 0"),
        (dict(tol=-1e-3), "tol must be >= 0"),
        (dict(tol=math.nan), "tol must be a finite number"),
    ],
)
def test_solver_scalar_errors(change, match):
    kw = dict(tau=1e-3, alpha=2.0, iters=5, tol=0.0) | change
    with pytest.raises(RuntimeError, match=match):
        ops.rpca_dop_solve(*_solver_args(), **kw)


def test_solver_tensor_errors():
    y, u0, g0, h0 = _solver_args()
    with pytest.raises(RuntimeError, match="the U U\\^T model needs square y"):
        rect = [torch.randn(6, 5, **f64) for _ in range(3)]
        ops.rpca_dop_solve(rect[0], u0, rect[1], rect[2], 1e-3, 1.0, 3)
    with pytest.raises(RuntimeError, match="u0 must have shape"):
        ops.rpca_dop_solve(y, torch.randn(5, 3, **f64), g0, h0, 1e-3, 1.0, 3)
    with pytest.raises(RuntimeError, match="g0 must have the shape of y"):
        ops.rpca_dop_solve(y, u0, torch.randn(6, 5, **f64), h0, 1e-3, 1.0, 3)
    with pytest.raises(RuntimeError, match="y must be a matrix"):
        ops.rpca_dop_solve(torch.randn(6, **f64), u0, g0, h0, 1e-3, 1.0, 3)
    with pytest.raises(RuntimeError, match="u0 must have the dtype of y"):
        ops.rpca_dop_solve(y, u0.float(), g0, h0, 1e-3, 1.0, 3)
    with pytest.raises(RuntimeError, match="y must be a float32 or float64 tensor, got Long"):
        ops.rpca_dop_solve(y.long(), u0, g0, h0, 1e-3, 1.0, 3)
    with pytest.raises(RuntimeError, match="v0 must have shape"):
        ops.rpca_dop_solve_uv(y, u0, torch.randn(6, 2, **f64), g0, h0, 1e-3, 1.0, 3)
    with pytest.raises(TypeError, match="iters must be an int"):
        ops.rpca_dop_solve(y, u0, g0, h0, 1e-3, 1.0, 3.5)
