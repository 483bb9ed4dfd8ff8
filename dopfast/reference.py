"""Pure-PyTorch references of every dopfast op.

Tests compare the compiled kernels with these (``torch.testing.assert_close``); benchmarks time them as the
eager baselines. They follow the kernels' contracts exactly (same in-place updates, same stopping rule), but
are written for clarity, not speed, except ``residual_step_inplace_``, the best hand-written eager form.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def residual_step_(x: Tensor, g: Tensor, h: Tensor, y: Tensor, step: float,
                   mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``r = x + g∘g − h∘h − y``; ``g −= step·r∘g``; ``h += step·r∘h``; returns ``(r, ¼‖r‖²)`` (pre-update).
    With a bool ``mask``: ``r = 0`` where it is false, and g, h are left there."""
    r = x + g * g - h * h - y
    if mask is not None:
        r = torch.where(mask, r, torch.zeros((), dtype=r.dtype, device=r.device))
    loss = 0.25 * (r * r).sum()
    g.copy_(torch.where(mask, g - step * r * g, g) if mask is not None else g - step * r * g)
    h.copy_(torch.where(mask, h + step * r * h, h) if mask is not None else h + step * r * h)
    return r, loss


def residual_step_inplace_(x: Tensor, g: Tensor, h: Tensor, y: Tensor, step: float, r: Tensor, tmp: Tensor) -> Tensor:
    """The same step in the best eager form: preallocated ``r`` and ``tmp``, fused ``addcmul_``, no temporaries."""
    torch.mul(g, g, out=r)
    r.add_(x)
    torch.mul(h, h, out=tmp)
    r.sub_(tmp).sub_(y)
    loss = 0.25 * torch.dot(r.view(-1), r.view(-1))
    torch.mul(r, g, out=tmp)
    g.add_(tmp, alpha=-step)
    torch.mul(r, h, out=tmp)
    h.add_(tmp, alpha=step)
    return loss


def dop_residual(x: Tensor, g: Tensor, h: Tensor, y: Tensor) -> Tensor:
    """``x + g∘g − h∘h − y`` with ordinary autograd."""
    return x + g * g - h * h - y


def dop_residual_backward(grad: Tensor, g: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """Gradients of ``dop_residual`` with respect to ``g`` and ``h``."""
    return 2 * g * grad, -2 * h * grad


def lowrank_step_(u: Tensor, r: Tensor, step: float) -> None:
    """``u −= step · r @ u``."""
    u.sub_(step * (r @ u))


def lowrank_step_uv_(u: Tensor, v: Tensor, r: Tensor, step: float) -> None:
    """``u −= step · r @ v``; ``v −= step · rᵀ @ u_old``."""
    du = r @ v
    dv = r.mT @ u
    u.sub_(step * du)
    v.sub_(step * dv)


def _converged(prev_loss: float, loss: float, step_sq: float, theta_sq: float, tol: float) -> bool:
    if not tol > 0:
        return False
    tiny = 2.2250738585072014e-308
    change = abs(prev_loss - loss) / max(prev_loss, tiny)
    return change <= tol and math.sqrt(step_sq / max(theta_sq, tiny)) <= tol


def _solve_one(y: Tensor, u: Tensor, v: Tensor | None, g: Tensor, h: Tensor, tau: float, alpha: float,
               iters: int, tol: float, losses: Tensor, mask: Tensor | None = None) -> int:
    """The DOP loop on one problem, updating u, v, g, h in place; returns the number of steps taken.
    With a mask, the residual is 0 at unobserved entries."""
    prev = 0.0
    for it in range(iters):
        x = u @ u.mT if v is None else u @ v.mT
        r = x + g * g - h * h - y
        if mask is not None:
            r = torch.where(mask, r, 0)
        loss = 0.25 * float((r * r).sum())
        losses[it] = loss
        dg, dh = alpha * tau * r * g, alpha * tau * r * h
        theta_sq = float((g * g).sum() + (h * h).sum() + (u * u).sum())
        step_sq = float((dg * dg).sum() + (dh * dh).sum())
        g.sub_(dg)
        h.add_(dh)
        if not math.isfinite(loss):
            return it + 1
        if v is None:
            du = tau * (0.5 * (r + r.mT)) @ u
        else:
            du, dv = tau * (r @ v), tau * (r.mT @ u)
            theta_sq += float((v * v).sum())
            step_sq += float((dv * dv).sum())
            v.sub_(dv)
        step_sq += float((du * du).sum())
        u.sub_(du)
        if it > 0 and _converged(prev, loss, step_sq, theta_sq, tol):
            return it + 1
        prev = loss
    return iters


def _solve(y, u0, v0, g0, h0, tau, alpha, iters, tol, mask=None):
    batched = y.dim() == 3
    ys = y if batched else y.unsqueeze(0)
    ms = None if mask is None else (mask if batched else mask.unsqueeze(0))
    u = (u0 if batched else u0.unsqueeze(0)).clone()
    v = None if v0 is None else (v0 if batched else v0.unsqueeze(0)).clone()
    g = (g0 if batched else g0.unsqueeze(0)).clone()
    h = (h0 if batched else h0.unsqueeze(0)).clone()
    losses = torch.full((ys.shape[0], iters), math.nan, dtype=y.dtype, device=y.device)
    n_iter = torch.zeros(ys.shape[0], dtype=torch.int64, device=y.device)
    for b in range(ys.shape[0]):
        n_iter[b] = _solve_one(ys[b], u[b], None if v is None else v[b], g[b], h[b], tau, alpha, iters, tol,
                               losses[b], None if ms is None else ms[b])
    out = [u] + ([] if v is None else [v]) + [g, h, losses, n_iter]
    return tuple(out if batched else [t.squeeze(0) for t in out])


def rpca_dop_solve(y: Tensor, u0: Tensor, g0: Tensor, h0: Tensor, tau: float, alpha: float, iters: int,
                   tol: float = 0.0, mask: Tensor | None = None):
    """DOP gradient descent on ``¼‖U Uᵀ + g∘g − h∘h − y‖²``; returns ``(u, g, h, losses, n_iter)``.

    Steps: ``U −= τ·½(R + Rᵀ)U``, ``g −= ατ·R∘g``, ``h += ατ·R∘h``. Stops after a step whose relative loss
    change and relative step length ``‖Δθ‖/‖θ‖`` (θ = U, g, h) are both ≤ ``tol``; unused ``losses`` are NaN.
    ``mask`` (bool, y's shape): only observed entries enter the residual.
    """
    return _solve(y, u0, None, g0, h0, tau, alpha, iters, tol, mask)


def rpca_dop_solve_uv(y: Tensor, u0: Tensor, v0: Tensor, g0: Tensor, h0: Tensor, tau: float, alpha: float,
                      iters: int, tol: float = 0.0, mask: Tensor | None = None):
    """As ``rpca_dop_solve`` with ``X = U Vᵀ``: ``U −= τ·R V``, ``V −= τ·Rᵀ U``.

    Returns ``(u, v, g, h, losses, n_iter)``."""
    return _solve(y, u0, v0, g0, h0, tau, alpha, iters, tol, mask)


def sop_loss_terms(logits: Tensor, targets: Tensor, u_rows: Tensor, v_rows: Tensor, paper: bool = False,
                   reduction: str = "mean") -> tuple[Tensor, Tensor]:
    """The two terms (CE, MSE) of the SOP loss with ordinary autograd, batch means (``reduction="none"``: per
    sample): the authors' public code, or Algorithm 1 with ``paper=True``.

    ``u_rows`` is (B, 1) (official) or (B, K) (paper), ``v_rows`` (B, K): the gathered rows. Gradients flow to
    the logits through CE only, to u through CE (+ MSE for the official variant), to v through MSE only.
    """
    k = logits.shape[1]
    y = torch.nn.functional.one_hot(targets, k).to(logits.dtype)
    u2 = (u_rows * u_rows).to(logits.dtype) * y
    v2 = (v_rows * v_rows).to(logits.dtype) * (1 - y)
    if not paper:
        u2, v2 = u2.clamp(0, 1), v2.clamp(0, 1)
    eps = 1e-4
    p = torch.softmax(logits, dim=1)
    q = torch.clamp(p + u2 - v2.detach(), min=eps)
    r = torch.nn.functional.normalize(q, p=1, eps=eps, dim=1)
    if not paper:
        r = torch.clamp(r, min=eps, max=1.0)
    ce = -(y * torch.log(r)).sum(dim=1)
    hard = torch.nn.functional.one_hot(logits.detach().argmax(dim=1), k).to(logits.dtype)
    u2_mse = u2.detach() if paper else u2
    mse = ((hard + u2_mse - v2 - y) ** 2).sum(dim=1)
    return (ce, mse) if reduction == "none" else (ce.mean(), mse.mean())


def sop_loss(logits: Tensor, targets: Tensor, u_rows: Tensor, v_rows: Tensor, paper: bool = False) -> Tensor:
    """The batch-mean SOP loss, CE + MSE (see :func:`sop_loss_terms`)."""
    ce, mse = sop_loss_terms(logits, targets, u_rows, v_rows, paper)
    return ce + mse


def sop_loss_step_(logits: Tensor, targets: Tensor, index: Tensor, u: Tensor, v: Tensor, lr_u: float, lr_v: float,
                   paper: bool = False) -> tuple[Tensor, Tensor]:
    """The fused op's contract in plain autograd: returns ``(loss, d loss / d logits)`` and updates
    ``u[index] -= lr_u · ∂loss/∂u``, ``v[index] -= lr_v · ∂loss/∂v`` (projected on [−1, 1] for paper=True).

    Nothing is written when both learning rates are 0 (evaluation), and a sample whose own loss is not finite
    (an inf or NaN logit) keeps its u, v rows."""
    z = logits.detach().clone().requires_grad_()
    ur = u[index].clone().requires_grad_()
    vr = v[index].clone().requires_grad_()
    ce, mse = sop_loss_terms(z, targets, ur, vr, paper, reduction="none")
    loss = (ce + mse).mean()
    gz, gu, gv = torch.autograd.grad(loss, (z, ur, vr), allow_unused=True)
    gu = torch.zeros_like(ur) if gu is None else gu
    gv = torch.zeros_like(vr) if gv is None else gv
    if lr_u == 0 and lr_v == 0:
        return loss.detach(), gz
    with torch.no_grad():
        nu, nv = ur - lr_u * gu, vr - lr_v * gv
        if paper:
            nu, nv = nu.clamp(-1, 1), nv.clamp(-1, 1)
        keep = ~torch.isfinite(ce + mse).unsqueeze(1)
        u[index] = torch.where(keep, ur, nu).to(u.dtype)
        v[index] = torch.where(keep, vr, nv).to(v.dtype)
    return loss.detach(), gz
