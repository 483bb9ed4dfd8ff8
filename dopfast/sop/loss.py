"""Sparse over-parameterization (SOP) for training under label noise (Liu, Zhu, Qu, You, ICML 2022).

Each training sample i gets a label-noise variable ``s_i = u_i∘u_i∘y_i − v_i∘v_i∘(1 − y_i)`` that absorbs a
wrong label; the network is trained on the noise-corrected prediction. :class:`SOPLoss` is an ``nn.Module``
that drops into any training loop; its per-sample loss, logits gradient and u/v step run in one fused kernel
(``torch.ops.dopfast.sop_loss_step_``), with u, v kept in float32 whatever the logits' precision.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from .. import _validate

VARIANTS = ("official", "paper")


# Whether the running backward keeps its graph (retain_graph); where torch lacks the query, assume it does (the
# backward then returns a copy, as it always did).
_keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", lambda: True)
_NO_GRADS = (None,) * 7  # targets, index, u, v, lr_u, lr_v, paper


def _sop_backward(ctx, grad_out):
    """d loss / d logits = the kernel's gradient times grad_out.

    Outside torch.compile the gradient buffer is kept on ctx, not saved for backward, so that a backward that
    frees the graph can hand that very buffer to the logits: with ``grad_out == 1`` (a plain
    ``loss.backward()``) on CPU the backward then costs nothing, otherwise it scales the buffer in place. With
    ``retain_graph=True``, under torch.compile or a functorch transform (saved tensors), it returns a scaled
    copy. First-order only: with ``create_graph=True`` it warns that the SOP term's curvature is missing."""
    saved = ctx.saved_tensors
    grad = saved[0] if saved else getattr(ctx, "grad", None)
    if grad is None:
        raise RuntimeError("SOPLoss: trying to backward through the graph a second time (its stored gradient "
                           "was handed to the logits); specify retain_graph=True on the first backward")
    if torch.is_grad_enabled() and not torch._C._functorch.is_functorch_wrapped_tensor(grad_out):
        warnings.warn("SOPLoss: backward with create_graph=True gives a first derivative that is constant in the "
                      "logits: second derivatives of the SOP loss are not supported", stacklevel=3)
    if saved or torch.is_grad_enabled() or torch.compiler.is_compiling() or _keep_graph():
        return (grad * grad_out.to(grad.dtype),) + _NO_GRADS
    del ctx.grad  # the only reference left is ours: the logits' .grad can take the buffer over
    if type(grad_out) is torch.Tensor and grad_out.is_cpu and grad_out.item() == 1:  # not a fake tensor
        return (grad,) + _NO_GRADS
    return (grad.mul_(grad_out.to(grad.dtype)),) + _NO_GRADS


class _SOPStep(torch.autograd.Function):
    """The loss; the fused kernel already produced d(loss)/d(logits) (see :func:`_sop_backward`). Old-style
    (``ctx`` in forward, one output): 16 µs less per call than the ``setup_context`` form, which only
    functorch transforms need (:class:`_SOPStepTransformable`)."""

    @staticmethod
    def forward(ctx, logits, targets, index, u, v, lr_u, lr_v, paper):
        loss, grad = torch.ops.dopfast.sop_loss_step_(logits, targets, index, u, v, lr_u, lr_v, paper)
        if torch.compiler.is_compiling():
            ctx.save_for_backward(grad)  # traced graphs (and compiled autograd) carry saved tensors only
        else:
            ctx.grad = grad
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        return _sop_backward(ctx, grad_out)


class _SOPStepTransformable(torch.autograd.Function):
    """The same step in the form torch.func transforms (grad, vjp) accept."""

    @staticmethod
    def forward(logits, targets, index, u, v, lr_u, lr_v, paper):
        return torch.ops.dopfast.sop_loss_step_(logits, targets, index, u, v, lr_u, lr_v, paper)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(output[1])

    @staticmethod
    def backward(ctx, grad_out, _grad_of_grad):
        return _sop_backward(ctx, grad_out)


class SOPLoss(nn.Module):
    """SOP loss for noisy labels: ``loss = criterion(logits, targets, index)``.

    Args:
        num_samples: size of the training set (rows of u, v).
        num_classes: K.
        lr_u, lr_v: learning rates of u and v (plain SGD, no momentum or weight decay, as the authors' code).
        init_std: std of the Gaussian initialisation of u, v (1e-8 in the paper).
        variant: "official" (the authors' public code: u is N×1, clamps in the loss) or "paper" (Algorithm 1:
            u, v are N×K, projected on [−1, 1] after each step).
        distributed: under ``torch.distributed``, keep every rank's u, v identical: each rank steps the rows
            of its own batch with lr/world_size (the global batch mean) and the updated rows are all-gathered.
        seed: seed of the initialisation (None: torch's global generator).

    ``forward(logits (B, K), targets (B,) int64 class indices, index (B,) int64 dataset indices, unique)``
    returns the batch-mean SOP loss (CE term plus MSE term), computed with the u, v values from before the
    update. In training mode with grad enabled and logits requiring grad, the rows ``u[index]``, ``v[index]``
    are stepped (``−lr·∂loss/∂u``, ``−lr·∂loss/∂v``) inside the same kernel, so by the time ``backward`` has
    run they hold their new values; the caller's optimizer never sees u, v. Otherwise (eval mode,
    ``torch.no_grad()``) the loss is computed and nothing changes. u, v are buffers (saved in state_dict).
    """

    def __init__(self, num_samples: int, num_classes: int, lr_u: float = 1.0, lr_v: float = 10.0,
                 init_std: float = 1e-8, variant: str = "official", distributed: bool = False,
                 seed: int | None = None):
        super().__init__()
        num_samples = _validate.integer("SOPLoss", "num_samples", num_samples)
        num_classes = _validate.integer("SOPLoss", "num_classes", num_classes, minimum=2)
        _validate.choice("SOPLoss", "variant", variant, VARIANTS)
        lr_u, lr_v, init_std = (_validate.real("SOPLoss", name, value, inclusive=True)
                                for name, value in (("lr_u", lr_u), ("lr_v", lr_v), ("init_std", init_std)))
        self.num_samples, self.num_classes = num_samples, num_classes
        self.lr_u, self.lr_v, self.variant, self.distributed = float(lr_u), float(lr_v), variant, distributed
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        u_cols = 1 if variant == "official" else num_classes
        self.register_buffer("u", torch.randn(num_samples, u_cols, generator=gen) * init_std)
        self.register_buffer("v", torch.randn(num_samples, num_classes, generator=gen) * init_std)

    def extra_repr(self) -> str:
        return (f"num_samples={self.num_samples}, num_classes={self.num_classes}, lr_u={self.lr_u}, "
                f"lr_v={self.lr_v}, variant={self.variant!r}")

    def noise(self, index: Tensor | None = None) -> Tensor:
        """The learned label-noise magnitudes ``‖s_i‖₂`` (all samples, or those in ``index``)."""
        u, v = (self.u, self.v) if index is None else (self.u[index], self.v[index])
        return torch.sqrt((u * u).pow(2).sum(1) + (v * v).pow(2).sum(1))

    def _validate(self, logits: Tensor, targets: Tensor, index: Tensor, state: Tensor) -> None:
        if not isinstance(logits, Tensor) or not logits.is_floating_point() or logits.dim() != 2:
            raise ValueError(f"SOPLoss: logits must be a float tensor (batch, classes), got "
                             f"{getattr(logits, 'shape', type(logits))}")
        if logits.shape[1] != self.num_classes:
            raise ValueError(f"SOPLoss: logits must have {self.num_classes} classes, got shape {tuple(logits.shape)}")
        for t, name in ((targets, "targets"), (index, "index")):
            if not isinstance(t, Tensor) or t.dtype != torch.int64:
                raise TypeError(f"SOPLoss: {name} must be an int64 tensor, got {getattr(t, 'dtype', type(t))}")
        if logits.device != state.device:
            raise ValueError(f"SOPLoss: logits are on {logits.device} but u, v are on {state.device}; "
                             f"move the criterion with .to(device)")

    def forward(self, logits: Tensor, targets: Tensor, index: Tensor) -> Tensor:
        u, v = self._buffers["u"], self._buffers["v"]  # (not through nn.Module.__getattr__: once per step)
        self._validate(logits, targets, index, u)
        step = self.training and logits.requires_grad and torch.is_grad_enabled()
        lr_u, lr_v = (self.lr_u, self.lr_v) if step else (0.0, 0.0)
        world = 1
        if step and self.distributed and torch.distributed.is_available() and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
            lr_u, lr_v = lr_u / world, lr_v / world
        args = (logits, targets, index, u, v, lr_u, lr_v, self.variant == "paper")
        if torch._C._are_functorch_transforms_active():
            loss, _ = _SOPStepTransformable.apply(*args)
        else:
            loss = _SOPStep.apply(*args)
        if world > 1:
            self._share_rows(index)
        return loss

    @torch.no_grad()
    def _share_rows(self, index: Tensor) -> None:
        """All-gather the rows this step updated on every rank, so that all ranks keep identical u, v."""
        dist = torch.distributed
        world = dist.get_world_size()
        size = torch.tensor([index.numel()], device=index.device)
        sizes = [torch.zeros_like(size) for _ in range(world)]
        dist.all_gather(sizes, size)
        width = int(max(s.item() for s in sizes))
        pad = width - index.numel()
        idx = torch.cat([index, index.new_full((pad,), -1)])
        rows = torch.cat([self.u[index], self.v[index]], dim=1)
        rows = torch.cat([rows, rows.new_zeros(pad, rows.shape[1])])
        all_idx = [torch.empty_like(idx) for _ in range(world)]
        all_rows = [torch.empty_like(rows) for _ in range(world)]
        dist.all_gather(all_idx, idx)
        dist.all_gather(all_rows, rows)
        ucols = self.u.shape[1]
        for i, r in zip(all_idx, all_rows):
            keep = i >= 0
            self.u[i[keep]] = r[keep, :ucols]
            self.v[i[keep]] = r[keep, ucols:]
