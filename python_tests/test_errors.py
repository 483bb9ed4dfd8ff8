"""Bad input raises a clear error that names the argument, for every op, both from the compiled kernels and
from the fake kernels that torch.compile / FakeTensor tracing run (dopfast/_checks.py): same rule, same words."""

import math

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from dopfast import ops

f64 = dict(dtype=torch.float64)


def _t(*shape, dtype=torch.float64):
    return torch.randn(*shape, dtype=dtype)


def _residual(fn="residual_step_", **change):
    args = dict(x=_t(4, 3), g=_t(4, 3), h=_t(4, 3), y=_t(4, 3)) | change
    if fn == "dop_residual":
        return lambda: ops.dop_residual(args["x"], args["g"], args["h"], args["y"])
    if fn == "residual_step_out_":
        r = change.get("r", _t(4, 3))
        return lambda: ops.residual_step_out_(args["x"], args["g"], args["h"], args["y"], change.get("step", 0.1), r,
                                              change.get("mask"))
    return lambda: ops.residual_step_(args["x"], args["g"], args["h"], args["y"], change.get("step", 0.1),
                                      change.get("mask"))


def _solve(uv=False, **change):
    a = dict(y=_t(6, 6), u0=_t(6, 3), v0=_t(6, 3), g0=_t(6, 6), h0=_t(6, 6), tau=1e-3, alpha=2.0, iters=5, tol=0.0)
    a |= change
    if uv:
        return lambda: ops.rpca_dop_solve_uv(a["y"], a["u0"], a["v0"], a["g0"], a["h0"], a["tau"], a["alpha"],
                                             a["iters"], a["tol"])
    return lambda: ops.rpca_dop_solve(a["y"], a["u0"], a["g0"], a["h0"], a["tau"], a["alpha"], a["iters"], a["tol"])


def _sop(**change):
    a = dict(z=_t(4, 3), t=torch.tensor([0, 1, 2, 0]), i=torch.tensor([1, 2, 3, 4]), u=_t(10, 1), v=_t(10, 3),
             lr_u=1.0, lr_v=1.0) | change
    return lambda: ops.sop_loss_step_(a["z"], a["t"], a["i"], a["u"], a["v"], a["lr_u"], a["lr_v"])


# (call, message) pairs: each must raise RuntimeError containing the message, for real and under FakeTensorMode.
CASES = {
    "residual g shape": (_residual(g=_t(4, 4)), "g must have the shape of x [4, 3], got [4, 4]"),
    "residual y dtype": (_residual(y=_t(4, 3, dtype=torch.float32)), "y must have the dtype of x"),
    "residual x long": (_residual(x=torch.ones(4, 3, dtype=torch.long)), "x must be a float32 or float64 tensor"),
    "residual h int": (_residual(h=torch.ones(4, 3, dtype=torch.int32)), "h must be a float32 or float64 tensor"),
    "dop_residual g shape": (_residual("dop_residual", g=_t(4, 4)), "g must have the shape of x [4, 3], got [4, 4]"),
    "residual step nan": (_residual(step=math.nan), "step must be a finite number"),
    "residual step inf": (_residual(step=math.inf), "step must be a finite number"),
    "residual_out step": (_residual("residual_step_out_", step=-math.inf), "step must be a finite number"),
    "residual_out r shape": (_residual("residual_step_out_", r=_t(3, 3)), "r must have the shape of x [4, 3]"),
    "residual mask shape": (_residual(mask=torch.ones(4, 4, dtype=torch.bool)),
                            "mask must have the shape of x [4, 3], got [4, 4]"),
    "residual_out mask shape": (_residual("residual_step_out_", mask=torch.ones(3, dtype=torch.bool)),
                                "mask must have the shape of x [4, 3], got [3]"),
    "lowrank r shape": (lambda: ops.lowrank_step_(_t(5, 2), _t(4, 4), 0.1), "r must have shape (5, 5)"),
    "lowrank u dim": (lambda: ops.lowrank_step_(_t(5), _t(5, 5), 0.1), "u must be a matrix"),
    "lowrank r dtype": (lambda: ops.lowrank_step_(_t(5, 2), _t(5, 5, dtype=torch.float32), 0.1),
                        "r must have the dtype of u"),
    "lowrank step": (lambda: ops.lowrank_step_(_t(5, 2), _t(5, 5), math.nan), "step must be a finite number"),
    "lowrank_uv v shape": (lambda: ops.lowrank_step_uv_(_t(5, 2), _t(3, 4), _t(5, 3), 0.1), "v must have shape"),
    "lowrank_uv step": (lambda: ops.lowrank_step_uv_(_t(5, 2), _t(3, 2), _t(5, 3), math.inf),
                        "step must be a finite number"),
    "solve tau nan": (_solve(tau=math.nan), "tau must be a finite number"),
    "solve tau negative": (_solve(tau=-1.0), "tau must be > 0"),
    "solve alpha zero": (_solve(alpha=0.0), "alpha must be > 0"),
    "solve alpha inf": (_solve(alpha=math.inf), "alpha must be a finite number"),
    "solve alpha*tau": (_solve(tau=1e300, alpha=1e300), "alpha * tau must be a finite number"),
    "solve iters": (_solve(iters=-1), "iters must be >= 0"),
    "solve tol negative": (_solve(tol=-1e-3), "tol must be >= 0"),
    "solve tol nan": (_solve(tol=math.nan), "tol must be a finite number"),
    "solve square": (_solve(y=_t(6, 5), g0=_t(6, 5), h0=_t(6, 5)), "the U U^T model needs square y"),
    "solve u0 shape": (_solve(u0=_t(5, 3)), "u0 must have shape"),
    "solve g0 shape": (_solve(g0=_t(6, 5)), "g0 must have the shape of y"),
    "solve y dim": (_solve(y=_t(6)), "y must be a matrix"),
    "solve u0 dtype": (_solve(u0=_t(6, 3, dtype=torch.float32)), "u0 must have the dtype of y"),
    "solve y long": (_solve(y=torch.ones(6, 6, dtype=torch.long)), "y must be a float32 or float64 tensor"),
    "solve_uv v0 shape": (_solve(uv=True, v0=_t(6, 2)), "v0 must have shape"),
    "solve huge iters": (_solve(iters=10**12, tol=1e-3), "call the solver in chunks of at most 268435456 steps"),
    "sop logits shape": (_sop(z=_t(4, 1)), "logits must have shape (batch, classes) with classes >= 2"),
    "sop targets dtype": (_sop(t=torch.tensor([0, 1, 2, 0], dtype=torch.int32)), "targets must be an int64 tensor"),
    "sop index shape": (_sop(i=torch.tensor([1, 2, 3])), "index must have shape (4,)"),
    "sop u shape": (_sop(u=_t(10, 3)), "u must have shape (10, 1) for the official variant"),
    "sop v dtype": (_sop(v=_t(10, 3, dtype=torch.float32)), "v must have the dtype of u"),
    "sop lr nan": (_sop(lr_v=math.nan), "lr_v must be a finite number"),
    "sop u device": (_sop(u=_t(10, 1).to("meta")), "u must be on the device of logits"),
    "sop index device": (_sop(i=torch.tensor([1, 2, 3, 4], device="meta")), "index must be on the device of logits"),
}


@pytest.mark.parametrize("mode", ["real", "fake"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_argument_errors(case, mode):
    call, message = CASES[case]
    with pytest.raises(RuntimeError) as info:
        if mode == "real":
            call()
        else:
            with FakeTensorMode(allow_non_fake_inputs=True):
                call()
    assert message in str(info.value), str(info.value)


def test_scalar_types():
    x, g, h, y = (_t(4, 3) for _ in range(4))
    with pytest.raises(TypeError, match="step must be a float, got str"):
        ops.residual_step_(x, g, h, y, "0.1")
    with pytest.raises(TypeError, match="iters must be an int"):
        _solve(iters=3.5)()


def test_aliasing_in_place_arguments():
    x, g, h, y = (_t(4, 3) for _ in range(4))
    with pytest.raises(RuntimeError, match="g and h share memory"):
        ops.residual_step_(x, g, g, y, 0.1)
    with pytest.raises(RuntimeError, match="g and x share memory"):
        ops.residual_step_(x, x, h, y, 0.1)
    with pytest.raises(RuntimeError, match="r and y share memory"):
        ops.residual_step_out_(x, g, h, y, 0.1, y)
    with pytest.raises(RuntimeError, match="g has overlapping elements"):
        ops.residual_step_(x, torch.randn(1, 3, **f64).expand(4, 3), h, y, 0.1)


def test_aliasing_through_strided_views():
    # at::get_overlap_status answers "too hard" for these views: the storage ranges must decide.
    b = _t(4, 8)
    x, y = _t(4, 4), _t(4, 4)
    with pytest.raises(RuntimeError, match="g and h share memory"):
        ops.residual_step_(x, b[:, ::2], b[:, ::2], y, 0.5)
    with pytest.raises(RuntimeError, match="g and x share memory"):
        ops.residual_step_(b[:, ::2], b[:, ::2], _t(4, 4), y, 0.5)
    with pytest.raises(RuntimeError, match="r and g share memory"):
        ops.residual_step_out_(x, b[:, ::2], _t(4, 4), y, 0.5, b[:, ::2])
    f = _t(6, 4)
    with pytest.raises(RuntimeError, match="u and v share memory"):
        ops.lowrank_step_uv_(f[:, ::2], f[:, ::2], _t(6, 6), 0.1)
    state = _t(10, 4)
    with pytest.raises(RuntimeError, match="logits and v share memory"):
        ops.sop_loss_step_(state[:4, :3], torch.tensor([0, 1, 2, 0]), torch.tensor([5, 6, 7, 8]), _t(10, 1),
                           state[:, :3], 0.1, 0.1)
