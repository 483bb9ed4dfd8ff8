"""One training iteration of DIP / DIP-ℓ1 / DIP+DOP, eager or captured.

- ``"none"``: eager PyTorch (two SGD optimizers, as the authors' code).
- ``"compile"``: the network under ``torch.compile`` (on CUDA with ``mode="reduce-overhead"``, which replays
  the compiled forward and backward as CUDA graphs); loss, backward and the SGD steps stay eager.
- ``"cuda-graph"``: the whole iteration (input perturbation, forward, fused residual, backward, both SGD
  updates) captured once as one CUDA graph and replayed; the perturbation noise is drawn into a static buffer
  before each replay from the run's generator. The model is snapshotted before the warm-up iterations that
  capture needs and restored afterwards, so the trajectory is the eager one.

All three compute the same update: plain SGD (no momentum) with lr for the network and alpha·lr for g, h.
"""

from __future__ import annotations

import torch

from .. import ops

CAPTURES = ("none", "compile", "cuda-graph")


def _loss(method: str, out, g, h, y):
    if method == "dop":
        r = ops.dop_residual(out, g, h, y)
        return (r * r).mean()
    if method == "dip":
        return ((out - y) ** 2).mean()
    return (out - y).abs().mean()


class Stepper:
    def __init__(self, net, z0, g, h, y, size, method: str, lr: float, alpha: float, reg_noise: float,
                 generator: torch.Generator, capture: str = "none"):
        if capture not in CAPTURES:
            raise ValueError(f"restore: capture must be one of {CAPTURES}, got {capture!r}")
        if capture == "cuda-graph" and y.device.type != "cuda":
            raise ValueError("restore: capture='cuda-graph' needs a CUDA device")
        self.net, self.z0, self.g, self.h, self.y, self.size = net, z0, g, h, y, size
        self.method, self.lr, self.alpha, self.reg_noise, self.gen = method, lr, alpha, reg_noise, generator
        self.capture = capture
        self.forward = net
        if capture == "compile":
            self.forward = torch.compile(net, mode="reduce-overhead" if y.device.type == "cuda" else None)
        self.opt_net = torch.optim.SGD(net.parameters(), lr=lr)
        self.opt_gh = torch.optim.SGD([g, h], lr=alpha * lr)
        self.graph = None

    def state_dict(self) -> dict:
        return {"opt_net": self.opt_net.state_dict(), "opt_gh": self.opt_gh.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.opt_net.load_state_dict(state["opt_net"])
        self.opt_gh.load_state_dict(state["opt_gh"])

    def step(self):
        """One iteration; returns (output image tensor, loss tensor) of that iteration (pre-update)."""
        if self.capture == "cuda-graph":
            if self.graph is None:
                self._capture()
            self.noise.normal_(generator=self.gen)
            self.graph.replay()
            return self.static_out, self.static_loss
        z = self.z0 + self.reg_noise * torch.randn(self.z0.shape, generator=self.gen, device=self.z0.device)
        out = self.forward(z, self.size)
        loss = _loss(self.method, out, self.g, self.h, self.y)
        self.opt_net.zero_grad(set_to_none=True)
        self.opt_gh.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_net.step()
        if self.method == "dop":
            self.opt_gh.step()
        return out, loss

    # ------------------------------------------------------------------------------------------------------
    def _graph_body(self):
        params = list(self.net.parameters())
        for p in params + [self.g, self.h]:
            p.grad.zero_()
        out = self.net(self.z0 + self.reg_noise * self.noise, self.size)
        loss = _loss(self.method, out, self.g, self.h, self.y)
        loss.backward()
        with torch.no_grad():
            torch._foreach_add_(params, [p.grad for p in params], alpha=-self.lr)
            if self.method == "dop":
                self.g.add_(self.g.grad, alpha=-self.alpha * self.lr)
                self.h.add_(self.h.grad, alpha=-self.alpha * self.lr)
        return out, loss

    def _capture(self) -> None:
        self.noise = torch.zeros_like(self.z0)
        for p in list(self.net.parameters()) + [self.g, self.h]:
            p.grad = torch.zeros_like(p)
        snapshot = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        g0, h0 = self.g.detach().clone(), self.h.detach().clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up (allocations, autograd state) outside the graph
                self._graph_body()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out, self.static_loss = self._graph_body()
        with torch.no_grad():  # undo the warm-up and capture updates: the trajectory stays the eager one
            for k, v in self.net.state_dict().items():
                v.copy_(snapshot[k])
            self.g.copy_(g0)
            self.h.copy_(h0)
