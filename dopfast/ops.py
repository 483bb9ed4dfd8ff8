"""The public fused ops: thin wrappers over ``torch.ops.dopfast.*``, with their fake kernels and autograd.

Every op runs on CPU tensors (C++ kernels) and, when :func:`dopfast.has_cuda_kernels` is true, on CUDA
tensors. All accept float32/float64, any strides (non-contiguous inputs are copied), and empty tensors.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import torch
from torch import Tensor

from . import _checks, _validate

__all__ = [
    "residual_step_",
    "residual_step_out_",
    "dop_residual",
    "lowrank_step_",
    "lowrank_step_uv_",
    "rpca_dop_solve",
    "rpca_dop_solve_uv",
    "RpcaSolution",
    "sop_loss_step_",
]

_ops = torch.ops.dopfast


def _step(value, name: str, op: str) -> float:
    """Scalars cross into C++ as Python floats (any real number: int, float, NumPy scalars, one-element
    tensors); reject what cannot be one with a message naming it."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"dopfast.{op}: {name} must be a number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"dopfast.{op}: {name} must be a float, got {type(value).__name__}")
    return float(value)


def _mask(mask, op: str):
    """An observation mask as the kernels take it: bool, or 0/1 (checked, then converted)."""
    if mask is None or not isinstance(mask, Tensor):
        return mask
    return _validate.observation_mask(f"dopfast.{op}", mask)


def residual_step_(x: Tensor, g: Tensor, h: Tensor, y: Tensor, step: float,
                   mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One fused DOP step on the sparse part.

    Computes ``r = x + g∘g − h∘h − y``, then in place ``g −= step·r∘g`` and ``h += step·r∘h`` (with the
    pre-update ``r``), in one pass over memory. Returns ``(r, loss)`` with ``loss = ¼‖r‖²`` (0-dim tensor,
    summed in double) from before the update.

    Args:
        x: ``[...]`` the model's prediction, e.g. ``A(U Uᵀ)``.
        g, h: ``[...]`` the sparse factors (updated in place; must not alias each other or x, y).
        y: ``[...]`` observations.
        step: the sparse step ``α·τ``.
        mask: optional ``[...]`` observation mask (bool, or 0/1): where it is false the entry is missing, so
            ``r = 0`` there (it adds nothing to the loss or to any gradient) and g, h keep their values,
            whatever x and y hold there (NaN included).
    """
    return _ops.residual_step_(x, g, h, y, _step(step, "step", "residual_step_"), _mask(mask, "residual_step_"))


def residual_step_out_(x: Tensor, g: Tensor, h: Tensor, y: Tensor, step: float, r: Tensor,
                       mask: Tensor | None = None) -> Tensor:
    """:func:`residual_step_` writing the residual into the caller's buffer ``r``; returns the loss."""
    return _ops.residual_step_out_(x, g, h, y, _step(step, "step", "residual_step_out_"), r,
                                   _mask(mask, "residual_step_out_"))


def _batched(info, in_dims, tensors):
    """vmap rule of an elementwise op: every argument with the vmapped dimension first (expanded where absent)."""
    return [t.movedim(d, 0) if d is not None else t.expand(info.batch_size, *t.shape)
            for t, d in zip(tensors, in_dims)]


class _DopResidualBackward(torch.autograd.Function):
    """The fused backward op as a differentiable function (double backward, torch.func)."""

    @staticmethod
    def forward(grad, g, h):
        return _ops.dop_residual_backward(grad, g, h)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad_gg, grad_gh):
        grad, g, h = ctx.saved_tensors
        grad_gg = torch.zeros_like(g) if grad_gg is None else grad_gg
        grad_gh = torch.zeros_like(h) if grad_gh is None else grad_gh
        # grad_g = 2 g d, grad_h = -2 h d
        return 2 * (g * grad_gg - h * grad_gh), 2 * grad * grad_gg, -2 * grad * grad_gh

    @staticmethod
    def vmap(info, in_dims, grad, g, h):
        return _DopResidualBackward.apply(*_batched(info, in_dims, (grad, g, h))), (0, 0)


class _DopResidual(torch.autograd.Function):
    """``dop_residual`` for every autograd mode: reverse (the fused backward op, double backward included),
    forward-mode (jvp, jacfwd) and the torch.func transforms (grad, vjp), which need setup_context."""

    @staticmethod
    def forward(x, g, h, y):
        return _ops.dop_residual(x, g, h, y)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, g, h, _ = inputs
        ctx.save_for_backward(g, h)
        ctx.save_for_forward(g, h)

    @staticmethod
    def backward(ctx, grad):
        g, h = ctx.saved_tensors
        need_x, need_g, need_h, need_y = ctx.needs_input_grad
        grad_g = grad_h = None
        if need_g or need_h:
            grad_g, grad_h = _DopResidualBackward.apply(grad, g, h)
        return (grad if need_x else None, grad_g if need_g else None, grad_h if need_h else None,
                -grad if need_y else None)

    @staticmethod
    def jvp(ctx, dx, dg, dh, dy):
        g, h = ctx.saved_tensors
        out = None
        for term in (dx, None if dg is None else 2 * g * dg, None if dh is None else -2 * h * dh,
                     None if dy is None else -dy):
            if term is not None:
                out = term if out is None else out + term
        return out if out is not None else torch.zeros_like(g)

    @staticmethod
    def vmap(info, in_dims, x, g, h, y):
        return _DopResidual.apply(*_batched(info, in_dims, (x, g, h, y))), 0


def dop_residual(x: Tensor, g: Tensor, h: Tensor, y: Tensor) -> Tensor:
    """Differentiable ``x + g∘g − h∘h − y`` (fused forward and backward kernels), e.g. ``φ(θ) + s − y`` in DIP.

    Reverse mode (with double backward), forward mode (``torch.func.jvp``) and ``torch.func.grad`` are
    supported; ``torch.ops.dopfast.dop_residual`` itself has reverse mode only."""
    if torch.compiler.is_compiling():  # Dynamo traces the op (its registered autograd), not a custom jvp
        return _ops.dop_residual(x, g, h, y)
    return _DopResidual.apply(x, g, h, y)


def lowrank_step_(u: Tensor, r: Tensor, step: float) -> None:
    """``u −= step · r @ u`` for symmetric ``r`` (``[n, n]``, ``u`` ``[n, k]``, or batches ``[B, …]``).

    For a non-symmetric residual pass ``½(r + rᵀ)``, the gradient of ``¼‖U Uᵀ − …‖²``.
    """
    _ops.lowrank_step_(u, r, _step(step, "step", "lowrank_step_"))


def lowrank_step_uv_(u: Tensor, v: Tensor, r: Tensor, step: float) -> None:
    """``u −= step · r @ v`` and ``v −= step · rᵀ @ u_old`` (``r`` ``[m, n]``, ``u`` ``[m, k]``, ``v`` ``[n, k]``)."""
    _ops.lowrank_step_uv_(u, v, r, _step(step, "step", "lowrank_step_uv_"))


class RpcaSolution(NamedTuple):
    """Result of :func:`rpca_dop_solve` / :func:`rpca_dop_solve_uv` (``v`` is None for ``U Uᵀ``).

    ``losses[..., t]`` is ``¼‖R‖²`` before step ``t``; entries after the last step taken are NaN.
    ``n_iter`` is the number of steps taken (per problem for a batch).
    """

    u: Tensor
    v: Tensor | None
    g: Tensor
    h: Tensor
    losses: Tensor
    n_iter: Tensor


def _solver_scalars(op: str, tau, alpha, iters, tol):
    tau, alpha, tol = _step(tau, "tau", op), _step(alpha, "alpha", op), _step(tol, "tol", op)
    if isinstance(iters, bool) or not isinstance(iters, numbers.Integral):
        raise TypeError(f"dopfast.{op}: iters must be an int, got {type(iters).__name__}")
    return tau, alpha, int(iters), tol


def rpca_dop_solve(y: Tensor, u0: Tensor, g0: Tensor, h0: Tensor, tau: float, alpha: float, iters: int,
                   tol: float = 0.0, mask: Tensor | None = None) -> RpcaSolution:
    """The whole DOP gradient-descent loop for ``min ¼‖U Uᵀ + g∘g − h∘h − y‖²`` in one call.

    Steps ``U −= τ·½(R + Rᵀ)U``, ``g −= ατ·R∘g``, ``h += ατ·R∘h`` (``R`` the residual), for at most
    ``iters`` steps; stops after a step whose relative loss change and relative step ``‖Δθ‖/‖θ‖`` are both
    ``≤ tol`` (``tol=0``: never). ``y`` is ``[n, n]`` (need not be symmetric) or a batch ``[B, n, n]`` of
    independent problems, solved in one call (one thread per problem on the CPU, one block on the GPU).
    The inputs are not modified.

    ``mask`` (``y``'s shape; bool, or 0/1; true = observed) restricts the loss to observed entries: there
    ``R = 0``, so ``g``, ``h`` keep their values and whatever ``y`` holds (NaN included) is never read.
    """
    tau, alpha, iters, tol = _solver_scalars("rpca_dop_solve", tau, alpha, iters, tol)
    u, g, h, losses, n_iter = _ops.rpca_dop_solve(y, u0, g0, h0, tau, alpha, iters, tol,
                                                  _mask(mask, "rpca_dop_solve"))
    return RpcaSolution(u, None, g, h, losses, n_iter)


def rpca_dop_solve_uv(y: Tensor, u0: Tensor, v0: Tensor, g0: Tensor, h0: Tensor, tau: float, alpha: float,
                      iters: int, tol: float = 0.0, mask: Tensor | None = None) -> RpcaSolution:
    """:func:`rpca_dop_solve` for ``X = U Vᵀ`` (any ``[m, n]`` data): ``U −= τ·R V``, ``V −= τ·Rᵀ U``.

    The factor steps are the gradient of ``½‖U Vᵀ − …‖²`` so that, as for ``U Uᵀ`` (where U appears
    twice), ``λ = 1/α`` in the equivalent convex problem. ``mask`` as for :func:`rpca_dop_solve`.
    """
    tau, alpha, iters, tol = _solver_scalars("rpca_dop_solve_uv", tau, alpha, iters, tol)
    return RpcaSolution(*_ops.rpca_dop_solve_uv(y, u0, v0, g0, h0, tau, alpha, iters, tol,
                                                _mask(mask, "rpca_dop_solve_uv")))


def sop_loss_step_(logits: Tensor, targets: Tensor, index: Tensor, u: Tensor, v: Tensor, lr_u: float, lr_v: float,
                   paper: bool = False) -> tuple[Tensor, Tensor]:
    """Fused SOP loss step (see :class:`dopfast.sop.SOPLoss`, which most users want instead).

    Returns ``(loss, grad_logits)``: the batch-mean loss (float32, or float64 for float64 logits) with the
    pre-update u, v, and its gradient with respect to ``logits`` (logits' dtype); updates ``u[index]`` and
    ``v[index]`` in place by ``−lr·∂loss/∂(u, v)``. ``index`` must be unique within the batch.
    """
    return _ops.sop_loss_step_(logits, targets, index, u, v, _step(lr_u, "lr_u", "sop_loss_step_"),
                               _step(lr_v, "lr_v", "sop_loss_step_"), bool(paper))


# ----------------------------------------------------------------------------------------------------------
# Fake (meta) kernels: the same checks as the C++ boundary, and output metadata, for torch.compile / export.


@torch.library.register_fake("dopfast::residual_step_")
def _(x, g, h, y, step, mask=None):
    _checks.residual_step("residual_step_", x, g, h, y, step)
    _checks.mask("residual_step_", x, mask)
    return torch.empty_like(x, memory_format=torch.contiguous_format), x.new_empty(())


@torch.library.register_fake("dopfast::residual_step_out_")
def _(x, g, h, y, step, r, mask=None):
    _checks.residual_step("residual_step_out_", x, g, h, y, step)
    _checks.like(x, "x", r, "residual_step_out_", "r")
    _checks.mask("residual_step_out_", x, mask)
    return x.new_empty(())


@torch.library.register_fake("dopfast::dop_residual")
def _(x, g, h, y):
    _checks.residual("dop_residual", x, g, h, y)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("dopfast::dop_residual_backward")
def _(grad, g, h):
    _checks.residual_backward(grad, g, h)
    return (torch.empty_like(g, memory_format=torch.contiguous_format),
            torch.empty_like(h, memory_format=torch.contiguous_format))


@torch.library.register_fake("dopfast::lowrank_step_")
def _(u, r, step):
    _checks.lowrank("lowrank_step_", u, None, r, step)


@torch.library.register_fake("dopfast::lowrank_step_uv_")
def _(u, v, r, step):
    _checks.lowrank("lowrank_step_uv_", u, v, r, step)


def _fake_solve(op, y, u0, v0, g0, h0, tau, alpha, iters, tol, mask):
    _checks.rpca_solve(op, y, u0, v0, g0, h0, tau, alpha, iters, tol, mask)
    batch = tuple(y.shape[:-2])
    new = lambda t: torch.empty_like(t, memory_format=torch.contiguous_format)  # noqa: E731
    out = [new(u0)] + ([] if v0 is None else [new(v0)]) + [new(g0), new(h0)]
    out += [y.new_empty(batch + (iters,)), y.new_empty(batch, dtype=torch.int64)]
    return tuple(out)


@torch.library.register_fake("dopfast::rpca_dop_solve")
def _(y, u0, g0, h0, tau, alpha, iters, tol, mask=None):
    return _fake_solve("rpca_dop_solve", y, u0, None, g0, h0, tau, alpha, iters, tol, mask)


@torch.library.register_fake("dopfast::rpca_dop_solve_uv")
def _(y, u0, v0, g0, h0, tau, alpha, iters, tol, mask=None):
    return _fake_solve("rpca_dop_solve_uv", y, u0, v0, g0, h0, tau, alpha, iters, tol, mask)


@torch.library.register_fake("dopfast::sop_loss_step_")
def _(logits, targets, index, u, v, lr_u, lr_v, paper):
    _checks.sop(logits, targets, index, u, v, lr_u, lr_v, paper)
    loss_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    return logits.new_empty((), dtype=loss_dtype), torch.empty_like(logits, memory_format=torch.contiguous_format)


# ----------------------------------------------------------------------------------------------------------
# Autograd of the ops themselves (torch.ops.dopfast.*): the same backward functions as the autograd.Functions
# above. dop_residual's backward is its own op (fused kernel); that op's own backward is plain torch ops.

torch.library.register_autograd("dopfast::dop_residual", _DopResidual.backward,
                                setup_context=_DopResidual.setup_context)
torch.library.register_autograd("dopfast::dop_residual_backward", _DopResidualBackward.backward,
                                setup_context=_DopResidualBackward.setup_context)
