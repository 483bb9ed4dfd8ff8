"""What the build contains, and the narrower-ISA kernel tables (the widest one the CPU has normally runs)."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import dopfast


def test_build_info():
    info = dopfast.build_info()
    assert info["cpu_isa"] in ("avx512", "avx2", "default") and info["version"] == dopfast.__version__
    if torch.version.cuda is None:
        assert not dopfast.has_cuda_kernels()
    ops = ["residual_step_", "residual_step_out_", "dop_residual", "dop_residual_backward", "lowrank_step_",
           "lowrank_step_uv_", "rpca_dop_solve", "rpca_dop_solve_uv", "sop_loss_step_"]
    for name in ops:
        # Every op has a CPU kernel, and a CUDA kernel exactly when the build says it has CUDA kernels.
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"dopfast::{name}", "CPU"), name
        has_cuda = torch._C._dispatch_has_kernel_for_dispatch_key(f"dopfast::{name}", "CUDA")
        assert has_cuda == dopfast.has_cuda_kernels(), name


def _cpu_has(flags):
    try:
        with open("/proc/cpuinfo") as f:
            have = set(f.read().split())
    except OSError:
        return False
    return all(flag in have for flag in flags)


@pytest.mark.parametrize("isa", ["default", "avx2"])
def test_narrower_isa_kernels_match_reference(isa):
    # The same checks as the main tests, in a process whose kernel table is capped at `isa`.
    if isa == "avx2" and not _cpu_has(["avx2", "fma"]):
        pytest.skip("this CPU has no AVX2")
    script = textwrap.dedent("""
        import math, torch, dopfast
        from dopfast import ops, reference
        from torch.testing import assert_close
        assert dopfast.build_info()["cpu_isa"] == "ISA", dopfast.build_info()["cpu_isa"]
        for dt in (torch.float32, torch.float64):
            gen = torch.Generator().manual_seed(0)
            x, g, h, y = (torch.randn(1001, generator=gen, dtype=dt) for _ in range(4))
            gr, hr = g.clone(), h.clone()
            r, loss = ops.residual_step_(x, g, h, y, 0.01)
            rr, lr = reference.residual_step_(x, gr, hr, y, 0.01)
            assert_close(r, rr); assert_close(g, gr); assert_close(loss, lr)
            yy = torch.randn(23, 23, generator=gen, dtype=dt)
            u0, g0, h0 = (1e-2 * torch.randn(23, 23, generator=gen, dtype=dt) for _ in range(3))
            a = ops.rpca_dop_solve(yy, u0, g0, h0, 1e-3, 4.0, 20)
            b = reference.rpca_dop_solve(yy, u0, g0, h0, 1e-3, 4.0, 20)
            tol = dict(rtol=1e-4, atol=1e-6) if dt == torch.float32 else {}
            assert_close(a.u, b[0], **tol); assert_close(a.losses, b[3], **tol)
            for k, paper in ((3, False), (10, True), (37, False), (100, True)):
                z = 3 * torch.randn(9, k, generator=gen, dtype=dt)
                t, idx = torch.randint(0, k, (9,), generator=gen), torch.randperm(40, generator=gen)[:9]
                u, v = 0.5 * torch.randn(40, k if paper else 1, generator=gen), 0.5 * torch.randn(40, k, generator=gen)
                ur, vr = u.clone(), v.clone()
                loss, grad = ops.sop_loss_step_(z, t, idx, u, v, 0.3, 0.7, paper)
                loss_r, grad_r = reference.sop_loss_step_(z, t, idx, ur, vr, 0.3, 0.7, paper)
                assert_close(loss, loss_r.to(dt), **tol); assert_close(grad, grad_r, **tol)
                assert_close(u, ur, rtol=1e-5, atol=1e-6); assert_close(v, vr, rtol=1e-5, atol=1e-6)
        print("ok")
    """).replace("ISA", isa)
    env = dict(os.environ, DOPFAST_SIMD=isa)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
