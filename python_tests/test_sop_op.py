"""sop_loss_step_ and SOPLoss against the plain-autograd reference, finite differences, opcheck, errors."""

import pytest
import torch
from torch.library import opcheck
from torch.testing import assert_close

from dopfast import ops, reference
from dopfast.sop import SOPLoss


def _batch(b, k, n, dtype=torch.float64, state=torch.float64, paper=False, seed=0, scale=0.5, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    z = 3 * torch.randn(b, k, generator=gen, dtype=dtype)
    t = torch.randint(0, k, (b,), generator=gen)
    idx = torch.randperm(n, generator=gen)[:b]
    u = scale * torch.randn(n, k if paper else 1, generator=gen, dtype=state)
    v = scale * torch.randn(n, k, generator=gen, dtype=state)
    return tuple(a.to(device) for a in (z, t, idx, u, v))


@pytest.mark.parametrize("paper", [False, True], ids=["official", "paper"])
@pytest.mark.parametrize("b,k", [(1, 2), (5, 10), (64, 37), (33, 100)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_matches_reference(paper, b, k, dtype, device):
    z, t, idx, u, v = _batch(b, k, 3 * b + 5, dtype=dtype, paper=paper, seed=b + k, device=device)
    u_ref, v_ref = u.cpu().clone(), v.cpu().clone()
    loss, grad = ops.sop_loss_step_(z, t, idx, u, v, 0.3, 0.7, paper)
    loss_ref, grad_ref = reference.sop_loss_step_(z.cpu(), t.cpu(), idx.cpu(), u_ref, v_ref, 0.3, 0.7, paper)
    loss, grad, u, v = loss.cpu(), grad.cpu(), u.cpu(), v.cpu()
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else {}
    assert loss.dtype == dtype and grad.dtype == dtype
    assert_close(loss, loss_ref.to(dtype), **tol)
    assert_close(grad, grad_ref, **tol)
    assert_close(u, u_ref, **tol)
    assert_close(v, v_ref, **tol)


def test_float32_state_with_float64_logits_and_noncontiguous():
    z, t, idx, u, v = _batch(20, 12, 60, state=torch.float32)
    z = torch.cat([z, z], dim=1)[:, ::2]  # non-contiguous logits
    u_ref, v_ref = u.clone(), v.clone()
    loss, grad = ops.sop_loss_step_(z, t, idx, u, v, 1.0, 10.0)
    loss_ref, grad_ref = reference.sop_loss_step_(z, t, idx, u_ref, v_ref, 1.0, 10.0)
    assert u.dtype == torch.float32
    assert_close(loss, loss_ref)
    assert_close(grad, grad_ref)
    assert_close(u, u_ref)
    assert_close(v, v_ref)


@pytest.mark.parametrize("paper", [False, True], ids=["official", "paper"])
def test_gradients_by_finite_differences(paper):
    # The kernel's d loss / d logits, and its u, v steps divided by the learning rate, against central differences
    # of the loss terms each variable has a gradient through (v enters CE without gradient; in the paper
    # variant u enters MSE without gradient), evaluated on the plain-PyTorch loss.
    k = 5
    z, t, idx, u, v = _batch(6, k, 10, paper=paper, seed=3, scale=0.4)
    lr = 1e-3
    u1, v1 = u.clone(), v.clone()
    _, grad = ops.sop_loss_step_(z, t, idx, u1, v1, lr, lr, paper)
    analytic = {"z": grad, "u": (u - u1)[idx] / lr, "v": (v - v1)[idx] / lr}
    base = {"z": z, "u": u[idx], "v": v[idx]}
    terms = {"z": (0, 1), "u": (0,) if paper else (0, 1), "v": (1,)}

    def value(name, tensor):
        args = dict(base, **{name: tensor})
        parts = reference.sop_loss_terms(args["z"], t, args["u"], args["v"], paper)
        return sum(float(parts[i]) for i in terms[name])

    h = 1e-6
    for name, a in analytic.items():
        numeric = torch.zeros_like(a)
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                plus, minus = base[name].clone(), base[name].clone()
                plus[i, j] += h
                minus[i, j] -= h
                numeric[i, j] = (value(name, plus) - value(name, minus)) / (2 * h)
        if paper and name == "u":  # only the true class's entry has a gradient
            mask = torch.nn.functional.one_hot(t, k).double()
            a, numeric = a * mask, numeric * mask
        assert_close(a, numeric, rtol=1e-5, atol=1e-7, msg=lambda m: f"{name}: {m}")


def test_gradcheck_logits():
    z, t, idx, u, v = _batch(4, 6, 9)
    crit = SOPLoss(9, 6, seed=0).double()
    crit.u.copy_(u)
    crit.v.copy_(v)
    crit.eval()  # no u, v steps inside gradcheck
    assert torch.autograd.gradcheck(lambda zz: crit(zz, t, idx), (z.requires_grad_(),))


@pytest.mark.parametrize("paper", [False, True], ids=["official", "paper"])
@pytest.mark.parametrize("check", ["test_schema", "test_autograd_registration", "test_faketensor",
                                   "test_aot_dispatch_dynamic"])
def test_opcheck(paper, check, device):
    # One check per call on fresh inputs: the op steps u, v in place, so checks sharing inputs would see
    # each other's updates. The autograd-registration check only looks at calls where an input requires grad.
    # (The empty batch's loss is NaN, which the AOT check's output comparison cannot match.)
    for b in (8, 0) if check != "test_aot_dispatch_dynamic" else (8,):
        for grad in (False, True) if check == "test_autograd_registration" else (False,):
            z, t, idx, u, v = _batch(b, 4, 20, paper=paper, device=device)
            opcheck(torch.ops.dopfast.sop_loss_step_.default, (z.requires_grad_(grad), t, idx, u, v, 0.5, 0.5, paper),
                    test_utils=(check,))


def test_empty_batch_loss_is_nan(device):
    z, t, idx, u, v = _batch(0, 4, 20, device=device)
    loss, grad = ops.sop_loss_step_(z, t, idx, u, v, 1.0, 1.0)
    assert torch.isnan(loss) and grad.shape == (0, 4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_logits(dtype):
    z, t, idx, u, v = _batch(16, 10, 40, state=torch.float32)
    u_ref, v_ref = u.clone(), v.clone()
    loss, grad = ops.sop_loss_step_(z.to(dtype), t, idx, u, v, 1.0, 10.0)
    loss_ref, grad_ref = reference.sop_loss_step_(z.to(dtype).float(), t, idx, u_ref, v_ref, 1.0, 10.0)
    assert loss.dtype == torch.float32 and grad.dtype == dtype and u.dtype == torch.float32
    assert_close(loss, loss_ref)
    assert_close(grad.float(), grad_ref, rtol=1e-2, atol=1e-3)
    assert_close(u, u_ref)


def test_index_contract_errors(device):
    z, t, idx, u, v = _batch(4, 3, 10, device=device)
    u0, v0 = u.clone(), v.clone()
    with pytest.raises(RuntimeError, match="index must be unique within a batch"):
        ops.sop_loss_step_(z, t, torch.tensor([1, 2, 1, 3], device=device), u, v, 1.0, 1.0)
    with pytest.raises(RuntimeError, match=r"index must be sample indices in \[0, 10\), got 10"):
        ops.sop_loss_step_(z, t, torch.tensor([1, 2, 10, 3], device=device), u, v, 1.0, 1.0)
    with pytest.raises(RuntimeError, match=r"targets must be class indices in \[0, 3\), got -1"):
        ops.sop_loss_step_(z, torch.tensor([0, -1, 2, 1], device=device), idx, u, v, 1.0, 1.0)
    assert torch.equal(u, u0) and torch.equal(v, v0)  # checked before anything is written
    with pytest.raises(RuntimeError, match="targets must be an int64 tensor"):
        ops.sop_loss_step_(z, t.int(), idx, u, v, 1.0, 1.0)
    with pytest.raises(RuntimeError, match=r"u must have shape \(10, 1\) for the official variant"):
        ops.sop_loss_step_(z, t, idx, v, v.clone(), 1.0, 1.0)
    with pytest.raises(RuntimeError, match="lr_v must be a finite number"):
        ops.sop_loss_step_(z, t, idx, u, v, 1.0, float("nan"))
    with pytest.raises(RuntimeError, match="logits must have shape"):
        ops.sop_loss_step_(z[:, :1], t, idx, u, v, 1.0, 1.0)


def _one(z, u, v, target, dtype=torch.float32, state=torch.float32, device="cpu"):
    as_t = lambda a, dt: torch.tensor(a, dtype=dt, device=device)  # noqa: E731
    return (as_t(z, dtype), torch.tensor(target, device=device), torch.tensor([0], device=device), as_t(u, state),
            as_t(v, state))


def test_clamp_bounds_pass_no_gradient(device):
    # Official variant: u² = 1 and v² = 1 sit on a clamp's bound, where torch.clamp passes no gradient.
    cases = [([[2.0, 0.0, 0.0]], [[0.0]], [[0.0, 1.0, 0.0]], [0]),  # v² = 1 off the label and the argmax
             ([[0.0, 2.0]], [[1.0]], [[0.0, 0.0]], [0])]  # u² = 1
    for z, u, v, target in cases:
        args = _one(z, u, v, target, device=device)
        ref = [a.cpu().clone() for a in args]
        before = [a.clone() for a in args[3:]]
        ops.sop_loss_step_(*args, 1.0, 10.0, False)
        reference.sop_loss_step_(*ref, 1.0, 10.0, False)
        for ours, theirs, old in zip(args[3:], ref[3:], before):
            assert_close(ours.cpu(), theirs)
            assert torch.equal(ours, old)


@pytest.mark.parametrize("paper", [False, True], ids=["official", "paper"])
def test_state_keeps_its_precision(paper, device):
    # float32 logits, float64 state: the steps are applied as increments in float64, so an entry without a
    # step (here all of v, with lr_v = 0) keeps every bit.
    z, t, idx, u, v = _one([[0.3, -0.2, 1.0]], [[0.1] * (3 if paper else 1)],
                           [[0.123456789012345, 0.2, 0.7]], [1], state=torch.float64, device=device)
    v0 = v.clone()
    ops.sop_loss_step_(z, t, idx, u, v, 1.0, 0.0, paper)
    assert torch.equal(v, v0)
    ur, vr = u.cpu().clone(), v0.cpu().clone()
    reference.sop_loss_step_(z.cpu(), t.cpu(), idx.cpu(), ur.fill_(0.1), vr, 1.0, 0.0, paper)
    assert_close(u.cpu(), ur, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_paper_variant_loss_with_large_label_v(dtype, device):
    # |v_c| > 1 (a user's own initialisation): the label's v enters nothing, and must not swamp the MSE.
    for v_c in (300.0, 1e5, 1e10):
        args = _one([[0.0] * 4], [[0.0] * 4], [[v_c, 0.5, 0.5, 0.5]], [0], dtype=dtype, state=dtype, device=device)
        loss, _ = ops.sop_loss_step_(*args, 0.0, 0.0, True)
        loss_ref, _ = reference.sop_loss_step_(*(a.cpu() for a in args), 0.0, 0.0, True)
        assert_close(loss.cpu(), loss_ref.to(dtype))
