"""Property-based tests (hypothesis): every op against dopfast.reference on drawn shapes (0 and 1 sizes
included), strides, storage offsets, dtypes and batch sizes; and malformed calls that must raise a Python
exception, never kill the process (they run in a child process, which reports what each call raised)."""

import subprocess
import sys
import textwrap

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")  # not on every machine (e.g. a bare GPU box)
from conftest import DEVICES  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch.testing import assert_close  # noqa: E402

from dopfast import ops, reference  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
dims = st.integers(0, 6)
dtypes = st.sampled_from([torch.float32, torch.float64])
devices = st.sampled_from(DEVICES)


@st.composite
def layouts(draw, shape, dtype, device):
    """A tensor of `shape` laid out as drawn: contiguous, a strided slice, a transpose, or at an offset."""
    kind = draw(st.sampled_from(["contiguous", "strided", "transposed", "offset"]))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    if kind == "strided" and shape:
        wide = list(shape[:-1]) + [3 * shape[-1]]
        return torch.randn(wide, generator=gen, dtype=dtype).to(device)[..., ::3]
    if kind == "transposed" and len(shape) >= 2:
        return torch.randn(*shape[:-2], shape[-1], shape[-2], generator=gen, dtype=dtype).to(device).mT
    if kind == "offset":
        n = 1
        for s in shape:
            n *= s
        return torch.randn(n + 1, generator=gen, dtype=dtype).to(device)[1:].view(shape)
    return torch.randn(shape, generator=gen, dtype=dtype).to(device)


def _tol(dtype):
    return dict(rtol=2e-4, atol=2e-5) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-11)


@SETTINGS
@given(st.data(), st.lists(dims, min_size=0, max_size=3), dtypes, devices, st.floats(-0.5, 0.5))
def test_residual_family(data, shape, dtype, device, step):
    x, g, h, y = (data.draw(layouts(tuple(shape), dtype, device)) for _ in range(4))
    g_ref, h_ref = g.clone().cpu(), h.clone().cpu()
    r, loss = ops.residual_step_(x, g, h, y, step)
    r_ref, loss_ref = reference.residual_step_(x.cpu(), g_ref, h_ref, y.cpu(), step)
    for a, b in ((r, r_ref), (g, g_ref), (h, h_ref), (loss, loss_ref.to(dtype))):
        assert_close(a.cpu(), b, **_tol(dtype))
    assert_close(ops.dop_residual(x, g, h, y).cpu(), reference.dop_residual(x, g, h, y).cpu(), **_tol(dtype))


@SETTINGS
@given(st.data(), st.integers(0, 3), dims, dims, st.integers(0, 4), dtypes, devices)
def test_lowrank_steps(data, batch, m, n, k, dtype, device):
    lead = (batch,) if batch else ()
    u = data.draw(layouts(lead + (m, k), dtype, device))
    v = data.draw(layouts(lead + (n, k), dtype, device))
    r = data.draw(layouts(lead + (m, n), dtype, device))
    rs = data.draw(layouts(lead + (m, m), dtype, device))
    u1, u_ref = u.clone(), u.clone().cpu()
    ops.lowrank_step_(u1, rs, 0.1)
    reference.lowrank_step_(u_ref, rs.cpu(), 0.1)
    assert_close(u1.cpu(), u_ref, **_tol(dtype))
    u2, v2, u_ref, v_ref = u.clone(), v.clone(), u.clone().cpu(), v.clone().cpu()
    ops.lowrank_step_uv_(u2, v2, r, 0.1)
    reference.lowrank_step_uv_(u_ref, v_ref, r.cpu(), 0.1)
    assert_close(u2.cpu(), u_ref, **_tol(dtype))
    assert_close(v2.cpu(), v_ref, **_tol(dtype))


@SETTINGS
@given(st.data(), st.integers(0, 3), dims, dims, st.integers(0, 4), dtypes, devices, st.booleans(),
       st.sampled_from([0.0, 1e-4]))
def test_solvers(data, batch, m, n, k, dtype, device, uv, tol):
    lead = (batch,) if batch else ()
    if not uv:
        n = m
    y = data.draw(layouts(lead + (m, n), dtype, device))
    u0, v0 = (0.3 * data.draw(layouts(lead + (rows, k), dtype, device)) for rows in (m, n))
    g0, h0 = (0.3 * data.draw(layouts(lead + (m, n), dtype, device)) for _ in range(2))
    args = (1e-2, 2.0, 6, tol)
    if uv:
        ours = ops.rpca_dop_solve_uv(y, u0, v0, g0, h0, *args)
        ref = reference.rpca_dop_solve_uv(*(t.cpu() for t in (y, u0, v0, g0, h0)), *args)
    else:
        ours = ops.rpca_dop_solve(y, u0, g0, h0, *args)
        ref = reference.rpca_dop_solve(*(t.cpu() for t in (y, u0, g0, h0)), *args)
    for a, b in zip([t for t in ours if t is not None], ref):
        assert_close(a.cpu(), b, equal_nan=True, **_tol(dtype))


@SETTINGS
@given(st.integers(0, 9), st.integers(2, 40), st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
       st.booleans(), devices, st.integers(0, 2**16))
def test_sop_step(b, k, dtype, paper, device, seed):
    gen = torch.Generator().manual_seed(seed)
    n = b + 3
    z = (3 * torch.randn(b, k, generator=gen)).to(dtype)
    t = torch.randint(0, k, (b,), generator=gen)
    idx = torch.randperm(n, generator=gen)[:b]
    u = 0.5 * torch.randn(n, k if paper else 1, generator=gen)
    v = 0.5 * torch.randn(n, k, generator=gen)
    u_ref, v_ref = u.clone(), v.clone()
    ud, vd = u.to(device), v.to(device)
    loss, grad = ops.sop_loss_step_(z.to(device), t.to(device), idx.to(device), ud, vd, 0.3, 2.0, paper)
    loss_ref, grad_ref = reference.sop_loss_step_(z.float(), t, idx, u_ref, v_ref, 0.3, 2.0, paper)
    tol = dict(rtol=2e-2, atol=2e-3) if dtype == torch.bfloat16 else dict(rtol=1e-4, atol=1e-5)
    assert_close(loss.cpu().float(), loss_ref.float(), equal_nan=True, **tol)
    assert_close(grad.cpu().float(), grad_ref.float(), **tol)
    assert_close(ud.cpu(), u_ref, **tol)
    assert_close(vd.cpu(), v_ref, **tol)


MALFORMED = textwrap.dedent("""
    import sys, torch
    from hypothesis import given, settings, strategies as st, HealthCheck
    from dopfast import ops
    outcomes = []
    shapes = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple)
    kinds = st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bool, torch.float16, "meta",
                             "expanded", "empty_strided"])

    def make(shape, kind):
        if kind == "meta":
            return torch.empty(shape, device="meta")
        if kind == "expanded":
            return torch.randn(1).expand(shape) if shape else torch.randn(())
        if kind == "empty_strided":
            return torch.randn(shape).mT if len(shape) >= 2 else torch.randn(shape)
        return torch.zeros(shape).to(kind)

    scalars = st.sampled_from([0.1, 0.0, -1.0, float("nan"), float("inf"), 1e308, 3, -2, 0])

    @settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(["residual_step_", "residual_step_out_", "dop_residual", "lowrank_step_",
                            "lowrank_step_uv_", "rpca_dop_solve", "rpca_dop_solve_uv", "sop_loss_step_"]),
           st.lists(st.tuples(shapes, kinds), min_size=6, max_size=6), st.lists(scalars, min_size=4, max_size=4),
           st.integers(-2, 3))
    def run(op, tensors, s, iters):
        ts = [make(shape, kind) for shape, kind in tensors]
        calls = {
            "residual_step_": lambda: ops.residual_step_(ts[0], ts[1], ts[2], ts[3], s[0]),
            "residual_step_out_": lambda: ops.residual_step_out_(ts[0], ts[1], ts[2], ts[3], s[0], ts[4]),
            "dop_residual": lambda: ops.dop_residual(ts[0], ts[1], ts[2], ts[3]),
            "lowrank_step_": lambda: ops.lowrank_step_(ts[0], ts[1], s[0]),
            "lowrank_step_uv_": lambda: ops.lowrank_step_uv_(ts[0], ts[1], ts[2], s[0]),
            "rpca_dop_solve": lambda: ops.rpca_dop_solve(ts[0], ts[1], ts[2], ts[3], s[0], s[1], iters, s[3]),
            "rpca_dop_solve_uv": lambda: ops.rpca_dop_solve_uv(ts[0], ts[1], ts[2], ts[3], ts[4], s[0], s[1], iters,
                                                               s[2]),
            "sop_loss_step_": lambda: ops.sop_loss_step_(ts[0], ts[1].long(), ts[2].long(), ts[3], ts[4], s[0],
                                                         s[1]),
        }
        try:
            calls[op]()
            outcomes.append("ok")
        except (RuntimeError, ValueError, TypeError, NotImplementedError, IndexError) as exc:
            outcomes.append(type(exc).__name__)

    run()
    print("done", len(outcomes), sorted(set(outcomes)))
""")


def test_malformed_calls_raise_and_never_kill_the_process():
    done = subprocess.run([sys.executable, "-c", MALFORMED], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"child died (return code {done.returncode}): {done.stderr[-3000:]}"
    assert done.stdout.startswith("done 150"), done.stdout + done.stderr[-2000:]


@pytest.mark.parametrize("op", ["rpca_dop_solve_uv"])
def test_empty_factor_calls_in_a_child_process(op):
    # The crashes that were found by hand (an empty v), kept as explicit child-process cases.
    code = textwrap.dedent("""
        import torch
        from dopfast import ops
        f = dict(dtype=torch.float64)
        for shapes in [((3, 8), (3, 0), (8, 0)), ((2, 3, 8), (2, 3, 0), (2, 8, 0)), ((40, 0), (40, 5), (0, 5))]:
            y, u, v = (torch.randn(s, **f) for s in shapes)
            out = ops.rpca_dop_solve_uv(y, u, v, torch.zeros_like(y), torch.zeros_like(y), 1e-3, 1.0, 10, 0.0)
            assert torch.equal(out.u, u) or u.numel() == 0 or y.numel() > 0
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
