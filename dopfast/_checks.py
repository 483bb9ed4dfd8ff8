"""Argument checks of the fake (meta) kernels: the same rules, in the same order and with the same messages, as
the C++ boundary (csrc/checks.h, csrc/*_args.h, csrc/lowrank.cpp), so that torch.compile and FakeTensor tracing
reject what the compiled kernels would reject. python_tests/test_errors.py runs every error case both ways.
(Memory-overlap and index-range checks need real data and are made by the kernels only.)"""

from __future__ import annotations

import math

import torch

_FLOATS = (torch.float32, torch.float64)
MAX_LOSS_ENTRIES = 1 << 28  # as csrc/rpca_args.h


def _fail(op: str, msg: str, exc=RuntimeError):
    raise exc(f"dopfast.{op}: {msg}")


def float_tensor(t, op: str, name: str) -> None:
    if t.dtype not in _FLOATS:
        _fail(op, f"{name} must be a float32 or float64 tensor, got {t.dtype}")


def like(ref, ref_name: str, t, op: str, name: str, same_shape: bool = True) -> None:
    float_tensor(t, op, name)
    if t.dtype != ref.dtype:
        _fail(op, f"{name} must have the dtype of {ref_name} ({ref.dtype}), got {t.dtype}")
    if t.device != ref.device:
        _fail(op, f"{name} must be on the device of {ref_name} ({ref.device}), got {t.device}")
    if same_shape and t.shape != ref.shape:
        _fail(op, f"{name} must have the shape of {ref_name} {list(ref.shape)}, got {list(t.shape)}")


def finite(value: float, op: str, name: str) -> None:
    if not math.isfinite(value):
        _fail(op, f"{name} must be a finite number, got {value}")


def residual(op: str, x, g, h, y) -> None:
    float_tensor(x, op, "x")
    like(x, "x", g, op, "g")
    like(x, "x", h, op, "h")
    like(x, "x", y, op, "y")


def residual_step(op: str, x, g, h, y, step) -> None:
    residual(op, x, g, h, y)
    finite(step, op, "step")


def mask(op: str, x, m, like: str = "x") -> None:
    """The optional observation mask, shaped like the tensor named ``like`` (csrc/checks.h
    check_observation_mask)."""
    if m is None:
        return
    if m.dtype != torch.bool:
        _fail(op, f"mask must be a bool tensor (true = observed), got {m.dtype}")
    if m.device != x.device:
        _fail(op, f"mask must be on the device of {like} ({x.device}), got {m.device}")
    if m.shape != x.shape:
        _fail(op, f"mask must have the shape of {like} {list(x.shape)}, got {list(m.shape)}")


def residual_backward(grad, g, h) -> None:
    float_tensor(grad, "dop_residual_backward", "grad")
    like(grad, "grad", g, "dop_residual_backward", "g")
    like(grad, "grad", h, "dop_residual_backward", "h")


def lowrank(op: str, u, v, r, step) -> None:
    float_tensor(u, op, "u")
    if u.dim() not in (2, 3):
        _fail(op, f"u must be a matrix (n, k) or a batch of matrices (B, n, k), got shape {list(u.shape)}")
    cols = u.shape[-2]
    if v is not None:
        like(u, "u", v, op, "v", same_shape=False)
        if v.dim() != u.dim() or v.shape[-1] != u.shape[-1] or (u.dim() == 3 and v.shape[0] != u.shape[0]):
            _fail(op, f"v must have shape {'(B, n, k)' if u.dim() == 3 else '(n, k)'} with the batch and k of u "
                      f"{list(u.shape)}, got {list(v.shape)}")
        cols = v.shape[-2]
    like(u, "u", r, op, "r", same_shape=False)
    if (r.dim() != u.dim() or r.shape[-2] != u.shape[-2] or r.shape[-1] != cols
            or (u.dim() == 3 and r.shape[0] != u.shape[0])):
        _fail(op, f"r must have shape ({u.shape[-2]}, {cols}) to match u {list(u.shape)}, got {list(r.shape)}")
    finite(step, op, "step")


def rpca_solve(op: str, y, u0, v0, g0, h0, tau, alpha, iters, tol, mask_=None) -> None:
    float_tensor(y, op, "y")
    if y.dim() not in (2, 3):
        _fail(op, f"y must be a matrix (m, n) or a batch of matrices (B, m, n), got shape {list(y.shape)}")
    m, n = y.shape[-2], y.shape[-1]
    if v0 is None and m != n:
        _fail(op, f"the U U^T model needs square y, got shape {list(y.shape)} (use rpca_dop_solve_uv)")
    like(y, "y", u0, op, "u0", same_shape=False)
    if u0.dim() != y.dim() or u0.shape[-2] != m or u0.shape[:-2] != y.shape[:-2]:
        _fail(op, f"u0 must have shape (..., m, k) matching y {list(y.shape)}, got {list(u0.shape)}")
    if v0 is not None:
        like(y, "y", v0, op, "v0", same_shape=False)
        if v0.dim() != y.dim() or v0.shape[-2] != n or v0.shape[-1] != u0.shape[-1] or v0.shape[:-2] != y.shape[:-2]:
            _fail(op, f"v0 must have shape (..., n, k) with n = {n} and k = {u0.shape[-1]}, got {list(v0.shape)}")
    like(y, "y", g0, op, "g0")
    like(y, "y", h0, op, "h0")
    finite(tau, op, "tau")
    finite(alpha, op, "alpha")
    for value, name in ((tau, "tau"), (alpha, "alpha")):
        if value <= 0:
            _fail(op, f"{name} must be > 0, got {value}")
    finite(alpha * tau, op, "alpha * tau")
    if iters < 0:
        _fail(op, f"iters must be >= 0, got {iters}")
    batch = y.shape[0] if y.dim() == 3 else 1
    if iters > MAX_LOSS_ENTRIES // max(batch, 1):
        _fail(op, f"iters = {iters} steps for {batch} problem(s) would return {float(iters * batch)} losses; call the "
                  f"solver in chunks of at most {MAX_LOSS_ENTRIES // max(batch, 1)} steps (it resumes from the "
                  f"returned u, g, h; RobustPCA does this)")
    finite(tol, op, "tol")
    if tol < 0:
        _fail(op, f"tol must be >= 0, got {tol}")
    mask(op, y, mask_, like="y")


def sop(logits, targets, index, u, v, lr_u, lr_v, paper) -> None:
    op = "sop_loss_step_"
    if not logits.is_floating_point():
        _fail(op, f"logits must be a dense floating-point tensor, got {logits.dtype}")
    if logits.dim() != 2 or logits.shape[1] < 2:
        _fail(op, f"logits must have shape (batch, classes) with classes >= 2, got {list(logits.shape)}")
    b, k = logits.shape
    for t, name in ((targets, "targets"), (index, "index")):
        if t.dtype != torch.int64:
            _fail(op, f"{name} must be an int64 tensor, got {t.dtype}")
        if t.dim() != 1 or t.shape[0] != b:
            _fail(op, f"{name} must have shape ({b},) to match logits {list(logits.shape)}, got {list(t.shape)}")
        if t.device != logits.device:
            _fail(op, f"{name} must be on the device of logits ({logits.device}), got {t.device}")
    if u.dtype not in _FLOATS:
        _fail(op, f"u must be float32 or float64 (kept in full precision whatever the logits' dtype), got {u.dtype}")
    if u.device != logits.device:
        _fail(op, f"u must be on the device of logits ({logits.device}), got {u.device}")
    like(u, "u", v, op, "v", same_shape=False)
    if v.dim() != 2 or v.shape[1] != k:
        _fail(op, f"v must have shape (num_samples, {k}), got {list(v.shape)}")
    ucols = k if paper else 1
    if u.dim() != 2 or u.shape[0] != v.shape[0] or u.shape[1] != ucols:
        _fail(op, f"u must have shape ({v.shape[0]}, {ucols}) for the {'paper' if paper else 'official'} variant, "
                  f"got {list(u.shape)}")
    finite(lr_u, op, "lr_u")
    finite(lr_v, op, "lr_v")
