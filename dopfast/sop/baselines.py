"""Loss functions for noisy labels that users compare SOP with. Each is an ``nn.Module`` with the same call
signature as :class:`dopfast.sop.SOPLoss`: ``loss = criterion(logits, targets, index)``.

- CE: cross entropy.
- GCE: generalized cross entropy (Zhang & Sabuncu, 2018), ``(1 − p_y^q)/q``, q = 0.7.
- SCE: symmetric cross entropy (Wang et al., 2019), ``α CE + β RCE`` with log 0 clipped to A = −4.
- ELR: early-learning regularization (Liu et al., 2020): per-sample targets ``t_i`` kept as an exponential
  moving average of the (temperature-free, clamped) predictions, loss ``CE − λ·log(1 − ⟨p, t⟩)``; like SOP
  it gathers and scatters per-sample state by dataset index.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class CELoss(nn.Module):
    def forward(self, logits: Tensor, targets: Tensor, index: Tensor | None = None) -> Tensor:
        return F.cross_entropy(logits, targets)


class GCELoss(nn.Module):
    def __init__(self, q: float = 0.7):
        super().__init__()
        self.q = q

    def forward(self, logits: Tensor, targets: Tensor, index: Tensor | None = None) -> Tensor:
        p = torch.softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1).clamp_min(1e-7)
        return ((1 - p ** self.q) / self.q).mean()


class SCELoss(nn.Module):
    def __init__(self, alpha: float = 0.1, beta: float = 1.0, num_classes: int = 10):
        super().__init__()
        self.alpha, self.beta, self.num_classes = alpha, beta, num_classes

    def forward(self, logits: Tensor, targets: Tensor, index: Tensor | None = None) -> Tensor:
        ce = F.cross_entropy(logits, targets)
        p = torch.softmax(logits, dim=1).clamp(1e-7, 1.0)
        one_hot = F.one_hot(targets, self.num_classes).to(p.dtype).clamp(1e-4, 1.0)
        rce = -(p * torch.log(one_hot)).sum(dim=1).mean()
        return self.alpha * ce + self.beta * rce


class ELRLoss(nn.Module):
    def __init__(self, num_samples: int, num_classes: int, beta: float = 0.7, lam: float = 3.0):
        super().__init__()
        self.beta, self.lam = beta, lam
        self.register_buffer("target", torch.zeros(num_samples, num_classes))

    def forward(self, logits: Tensor, targets: Tensor, index: Tensor) -> Tensor:
        p = torch.softmax(logits, dim=1).clamp(1e-4, 1 - 1e-4)
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                q = p.detach().to(self.target.dtype)
                self.target[index] = self.beta * self.target[index] + (1 - self.beta) * q / q.sum(1, keepdim=True)
        reg = torch.log(1 - (self.target[index].to(p.dtype) * p).sum(dim=1)).mean()
        return F.cross_entropy(logits, targets) + self.lam * reg
