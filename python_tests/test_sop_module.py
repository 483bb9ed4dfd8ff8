"""dopfast.sop.SOPLoss as an nn.Module in training loops: contract, modes, state, compile, DDP."""

import pytest
import torch
from torch.testing import assert_close

from dopfast import reference
from dopfast._group import joined, spawn
from dopfast.sop import SOPLoss


def _setup(paper=False, n=30, k=5, b=8, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(7, k).double()
    x = torch.randn(n, 7, dtype=torch.float64)
    y = torch.randint(0, k, (n,))
    crit = SOPLoss(n, k, lr_u=2.0, lr_v=5.0, init_std=0.3, variant="paper" if paper else "official", seed=seed)
    crit = crit.double()
    idx = torch.randperm(n)[:b]
    return model, x, y, crit, idx


@pytest.mark.parametrize("paper", [False, True])
def test_training_step_contract(paper):
    model, x, y, crit, idx = _setup(paper)
    u0, v0 = crit.u.clone(), crit.v.clone()
    logits = model(x[idx])
    loss = crit(logits, y[idx], idx)
    loss.backward()
    # reference: autograd through the plain loss, same pre-update u, v
    ref_model = torch.nn.Linear(7, 5).double()
    ref_model.load_state_dict(model.state_dict())
    u_ref, v_ref = u0.clone(), v0.clone()
    ref_logits = ref_model(x[idx])
    loss_ref, grad_logits = reference.sop_loss_step_(ref_logits, y[idx], idx, u_ref, v_ref, 2.0, 5.0, paper)
    ref_logits.backward(grad_logits)
    assert_close(loss, loss_ref)
    assert_close(model.weight.grad, ref_model.weight.grad)
    assert_close(crit.u, u_ref)
    assert_close(crit.v, v_ref)
    untouched = torch.ones(30, dtype=torch.bool)
    untouched[idx] = False
    assert torch.equal(crit.u[untouched], u0[untouched])


def test_eval_and_no_grad_do_not_step():
    model, x, y, crit, idx = _setup()
    u0 = crit.u.clone()
    with torch.no_grad():
        crit(model(x[idx]), y[idx], idx)
    crit.eval()
    crit(model(x[idx]), y[idx], idx).backward()
    assert torch.equal(crit.u, u0)
    crit.train()
    crit(model(x[idx]), y[idx], idx)
    assert not torch.equal(crit.u, u0)


def test_grad_output_scales_logits_gradient():
    model, x, y, crit, idx = _setup()
    state = {k: t.clone() for k, t in crit.state_dict().items()}
    (3 * crit(model(x[idx]), y[idx], idx)).backward()
    g3 = model.weight.grad.clone()
    model.weight.grad = None
    crit.load_state_dict(state)
    crit(model(x[idx]), y[idx], idx).backward()
    assert_close(g3, 3 * model.weight.grad)


def test_retain_graph_and_repeated_backward():
    # The stored gradient is handed over without a copy only when the graph is freed; a retained graph gives
    # the same gradient on every backward (here: accumulated twice, then once more scaled by 2).
    model, x, y, crit, idx = _setup()
    logits = model(x[idx]).detach().requires_grad_()
    loss = crit(logits, y[idx], idx)
    loss.backward(retain_graph=True)
    once = logits.grad.clone()
    loss.backward(retain_graph=True)
    assert_close(logits.grad, 2 * once)
    (g,) = torch.autograd.grad(2 * loss, logits, retain_graph=True)
    assert_close(g, 2 * once)
    loss.backward()  # frees the graph: the buffer itself is accumulated into .grad
    assert_close(logits.grad, 3 * once)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()


def test_torch_func_grad_and_fake_tensors():
    # torch.func transforms take the setup_context form of the step; fake tensors (memory estimators) never
    # have their grad_out read.
    model, x, y, crit, idx = _setup()
    logits = model(x[idx]).detach()
    state = {k: t.clone() for k, t in crit.state_dict().items()}
    g_func = torch.func.grad(lambda z: crit(z, y[idx], idx))(logits)
    crit.load_state_dict(state)
    z = logits.clone().requires_grad_()
    crit(z, y[idx], idx).backward()
    assert_close(g_func, z.grad)
    from torch._subclasses.fake_tensor import FakeTensorMode

    yb = y[idx]
    with FakeTensorMode() as mode:
        fake = SOPLoss(30, 5, seed=0).double()
        zf = mode.from_tensor(logits).requires_grad_()
        fake(zf, mode.from_tensor(yb), mode.from_tensor(idx)).backward()
        assert zf.grad.shape == logits.shape


def test_compiled_forward_with_compiled_autograd():
    torch._dynamo.reset()
    results = []
    for compiled in (False, True):
        model, x, y, crit, idx = _setup(seed=2)
        fn = torch.compile(lambda xb, yb, ib: crit(model(xb), yb, ib)) if compiled else (
            lambda xb, yb, ib: crit(model(xb), yb, ib))
        for _ in range(2):
            model.zero_grad()
            loss = fn(x[idx], y[idx], idx)
            if compiled:
                with torch._dynamo.compiled_autograd._enable(torch.compile(backend="eager")):
                    loss.backward()
            else:
                loss.backward()
        results.append((loss.detach(), model.weight.grad.clone(), crit.v.clone()))
    for a, b in zip(*results):
        assert_close(a, b)


def test_state_dict_roundtrip(tmp_path):
    _, _, _, crit, _ = _setup()
    path = tmp_path / "sop.pt"
    torch.save(crit.state_dict(), path)
    other = SOPLoss(30, 5).double()
    other.load_state_dict(torch.load(path))
    assert torch.equal(other.u, crit.u) and torch.equal(other.v, crit.v)
    assert set(crit.state_dict()) == {"u", "v"}


def test_u_v_stay_float32_under_bfloat16_logits():
    crit = SOPLoss(20, 4, seed=0)
    logits = torch.randn(6, 4, dtype=torch.bfloat16, requires_grad=True)
    loss = crit(logits, torch.randint(0, 4, (6,)), torch.arange(6))
    loss.backward()
    assert crit.u.dtype == torch.float32 and logits.grad.dtype == torch.bfloat16
    assert torch.isfinite(loss)


def test_noise_magnitudes():
    crit = SOPLoss(10, 3, init_std=0.0)
    crit.u[2] = 0.5
    assert_close(crit.noise(), torch.tensor([0, 0, 0.25] + [0] * 7))


def test_module_errors():
    crit = SOPLoss(10, 3)
    with pytest.raises(ValueError, match="logits must have 3 classes"):
        crit(torch.randn(2, 4), torch.zeros(2, dtype=torch.long), torch.arange(2))
    with pytest.raises(TypeError, match="index must be an int64 tensor"):
        crit(torch.randn(2, 3), torch.zeros(2, dtype=torch.long), torch.arange(2).int())
    with pytest.raises(ValueError, match="variant must be one of"):
        SOPLoss(10, 3, variant="sop+")
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        SOPLoss(10, 1)
    with pytest.raises(ValueError, match=r"lr_u must be a finite number >= 0, got inf"):
        SOPLoss(10, 3, lr_u=float("inf"))
    with pytest.raises(ValueError, match=r"lr_v must be a finite number >= 0, got -1"):
        SOPLoss(10, 3, lr_v=-1)


def test_compiled_training_step_matches_eager():
    torch._dynamo.reset()
    results = []
    for compiled in (False, True):
        model, x, y, crit, idx = _setup(seed=1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)

        def step(xb, yb, ib):
            opt.zero_grad()
            loss = crit(model(xb), yb, ib)
            loss.backward()
            return loss

        fn = torch.compile(step) if compiled else step
        losses = [fn(x[idx], y[idx], idx).detach() for _ in range(3)]
        opt.step()
        results.append((torch.stack(losses), crit.u.clone(), model.weight.detach().clone()))
    for a, b in zip(*results):
        assert_close(a, b)


def _train_three_epochs(model, crit, batch_of):
    """SGD over 3 epochs of 8-sample global batches; batch_of(global_batch) picks what this process sees."""
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(40, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (40,), generator=gen)
    for _ in range(3):
        order = torch.randperm(40, generator=gen)
        for b in range(0, 40, 8):
            mine = batch_of(order[b:b + 8])
            opt.zero_grad()
            crit(model(x[mine]), y[mine], mine).backward()
            opt.step()


def _ddp_worker(rank, world, port, out):
    with joined(rank, world, port):  # one thread per rank; the group goes after a barrier
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(6, 4).double())
        crit = SOPLoss(40, 4, init_std=0.2, distributed=True, seed=0).double()
        _train_three_epochs(model, crit, lambda batch: batch[rank::world])  # each rank sees half of every batch
        if rank == 0:
            torch.save({"w": model.module.weight.detach(), "u": crit.u, "v": crit.v}, out)
        del model  # DDP's reducer holds the process group: release it before the group goes


def test_ddp_two_processes_match_single_process(tmp_path):
    out = tmp_path / "ddp.pt"
    spawn(_ddp_worker, 2, str(out))
    ddp = torch.load(out)
    # single process on the same global batches (rank 0's half then rank 1's: the batch mean is order-free)
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 4).double()
    crit = SOPLoss(40, 4, init_std=0.2, seed=0).double()
    _train_three_epochs(model, crit, lambda batch: torch.cat([batch[r::2] for r in range(2)]))
    assert_close(ddp["w"], model.weight.detach())
    assert_close(ddp["u"], crit.u)
    assert_close(ddp["v"], crit.v)
