"""RobustPCA(distributed=True) on 2 and 3 gloo processes equals the one-process fit (issue: scale-out)."""

import numpy as np
import pytest
import torch

from dopfast import RobustPCA
from dopfast._group import joined, spawn
from dopfast.rpca import relative_error, rpca_problem
from dopfast.rpca.rows import Rows

# (name, problem, model): a rectangular U Vᵀ problem and a square U Uᵀ one (the paper's data)
PROBLEMS = {
    "general": (dict(n=40, rank=3, corruption=0.1, m=70, seed=1), "general"),
    "psd": (dict(n=50, rank=3, corruption=0.1, seed=2), "psd"),
    "masked": (dict(n=40, rank=3, corruption=0.1, m=70, seed=4), "general"),  # 10% of the entries missing
}


def _fit(name, y, rows=slice(None), **kwargs):
    """The fit of PROBLEMS[name] (this rank's rows of it), with the masked problem's mask sharded alike."""
    model = PROBLEMS[name][1]
    mask = None
    if name == "masked":
        mask = torch.rand(y.shape, generator=torch.Generator().manual_seed(5)) >= 0.1
        y = y.masked_fill(~mask, float("nan"))
        mask = mask[rows].to(kwargs.get("device", "cpu"))
    dev = kwargs.pop("device", "cpu")
    return RobustPCA(model=model, random_state=7, **kwargs).fit(y[rows].to(dev), mask=mask)
SPLITS = {2: [40, 30], 3: [30, 25, 15]}  # uneven blocks of consecutive rows (70 rows; the first 50 for psd)


def _blocks(total: int, world: int) -> list[slice]:
    counts = SPLITS[world]
    counts = [c * total // sum(counts) for c in counts]
    counts[-1] += total - sum(counts)
    starts = np.cumsum([0, *counts])
    return [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]


def _worker(rank, world, port, out, backend="gloo"):
    device = f"cuda:{rank}" if backend == "nccl" else "cpu"
    with joined(rank, world, port, backend):
        result = {}
        for name, (kwargs, _) in PROBLEMS.items():
            _, _, y = rpca_problem(**kwargs)
            est = _fit(name, y, _blocks(y.shape[0], world)[rank], distributed=True, device=device)
            result[name] = dict(low=est.low_rank_, sparse=est.sparse_, dop=est.dop_low_rank_, n_iter=est.n_iter_,
                                rank=est.rank_, refined=est.refined_, loss=est.loss_curve_, model=est.model_)
        auto = RobustPCA(random_state=7, max_iter=5, refine=False, distributed=True)
        _, _, y = rpca_problem(30, 2, 0.0, seed=3)  # symmetric PSD: "auto" must read it as psd
        with pytest.warns(UserWarning):
            result["auto"] = auto.fit(y[_blocks(30, world)[rank]].to(device)).model_
        result = {k: {n: (t.cpu() if isinstance(t, torch.Tensor) else t) for n, t in v.items()} if isinstance(v, dict)
                  else v for k, v in result.items()}
        torch.save(result, f"{out}.{rank}")


@pytest.fixture(scope="module")
def single():
    return {name: _fit(name, rpca_problem(**kwargs)[2]) for name, (kwargs, _) in PROBLEMS.items()}


@pytest.mark.parametrize("world,backend", [
    (2, "gloo"), (3, "gloo"),
    pytest.param(2, "nccl", marks=pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")),
])
def test_sharded_fit_equals_one_process(world, backend, single, tmp_path):
    out = str(tmp_path / "rank")
    spawn(_worker, world, out, backend)
    parts = [torch.load(f"{out}.{r}", weights_only=False) for r in range(world)]
    for name, ref in single.items():
        low = torch.cat([p[name]["low"] for p in parts])
        assert relative_error(low, ref.low_rank_) <= 1e-6, name
        assert relative_error(torch.cat([p[name]["dop"] for p in parts]), ref.dop_low_rank_) <= 1e-6, name
        assert relative_error(torch.cat([p[name]["sparse"] for p in parts]), ref.sparse_) <= 1e-6, name
        for p in parts:  # every rank stops at the same step with the same rank and certificate
            assert (p[name]["n_iter"], p[name]["rank"], p[name]["refined"], p[name]["model"]) == (
                ref.n_iter_, ref.rank_, ref.refined_, ref.model_), name
            np.testing.assert_allclose(p[name]["loss"], ref.loss_curve_, rtol=1e-6)
        assert ref.refined_  # the refinement ran and was certified, on both sides
    assert all(p["auto"] == "psd" for p in parts)


def test_initial_draw_does_not_depend_on_the_split():
    from dopfast.rpca.dop import TILE, initial_draw

    total = 2 * TILE + 37
    whole = initial_draw(5, 0, 2, slice(0, total), total, 6, torch.float64)
    cuts = [0, 100, TILE + 1, TILE + 2, total]
    pieces = torch.cat([initial_draw(5, 0, 2, slice(a, b), total, 6, torch.float64) for a, b in zip(cuts, cuts[1:])])
    assert torch.equal(whole, pieces) and whole.shape == (total, 6)


def test_one_process_rows_reductions_are_exact():
    x = torch.rand(9, 5, dtype=torch.float64)
    rows = Rows(9)
    assert rows.median(x) == float(x.median()) and rows.kth(x, 4) == float(x.reshape(-1).kthvalue(4).values)
    assert torch.equal(rows.column_kth(x, 3), x.kthvalue(3, dim=0, keepdim=True).values)


def _select_worker(rank, world, port, out):
    with joined(rank, world, port):
        x = torch.rand(11, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        x[3, 2] = x[5, 1]  # ties
        mine = _blocks(11, world)[rank]
        rows = Rows(mine.stop - mine.start, distributed=True)
        a = torch.randn(11, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        q, r = rows.qr(a[mine])
        torch.save(dict(median=rows.median(x[mine]), kth=[rows.kth(x[mine], k) for k in (1, 2, 40, 77)],
                        col=rows.column_kth(x[mine], 3), q=q, r=r, rows=rows.gather_rows(a[mine])), f"{out}.{rank}")


def test_collective_selection_and_qr_match_one_process(tmp_path):
    out = str(tmp_path / "sel")
    spawn(_select_worker, 3, out)
    x = torch.rand(11, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x[3, 2] = x[5, 1]
    a = torch.randn(11, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    flat = x.reshape(-1).sort().values
    parts = [torch.load(f"{out}.{r}", weights_only=False) for r in range(3)]
    for p in parts:
        assert p["median"] == float(x.median())
        assert p["kth"] == [float(flat[k - 1]) for k in (1, 2, 40, 77)]
        assert torch.equal(p["col"], x.kthvalue(3, dim=0, keepdim=True).values)
        assert torch.equal(p["rows"], a)
    q = torch.cat([p["q"] for p in parts])
    torch.testing.assert_close(q @ parts[0]["r"], a)
    torch.testing.assert_close(q.mT @ q, torch.eye(4, dtype=torch.float64))


def test_distributed_needs_an_initialised_group_and_dop():
    with pytest.raises(RuntimeError, match="init_process_group"):
        RobustPCA(distributed=True).fit(np.eye(4))
    with pytest.raises(ValueError, match="distributed=True needs method='dop'"):
        RobustPCA(method="pcp", distributed=True).fit(np.eye(4))


def _refusal_worker(rank, world, port, out):
    with joined(rank, world, port):
        messages = []
        bad_inputs = [
            np.full((3, 5), np.nan) if rank == 1 else np.ones((3, 5)),  # one rank's input is refused
            np.ones((3, 5 + rank)),  # the blocks disagree on the number of columns
            np.ones((2, 3, 5)),  # a batch
        ]
        for y in bad_inputs:
            try:
                RobustPCA(distributed=True, max_iter=3).fit(y)
                messages.append("no error")
            except (ValueError, TypeError) as exc:
                messages.append(str(exc))
        torch.save(messages, f"{out}.{rank}")


def test_a_refused_input_on_one_rank_raises_on_every_rank(tmp_path):
    out = str(tmp_path / "err")
    spawn(_refusal_worker, 2, out)
    first, second = (torch.load(f"{out}.{r}") for r in range(2))
    assert "rank(s) [1] was refused" in first[0] and "NaN" in second[0]
    assert all("different numbers of columns" in m for m in (first[1], second[1]))
    assert all("one matrix" in m for m in (first[2], second[2]))


def test_cost_model_and_the_scaleout_benchmark_run(tmp_path):
    from dopfast.bench import scaleout

    one = scaleout.cost(10_000, 50, 1, 1e12, 1e9, 1e-5, 1e10)
    eight = scaleout.cost(10_000, 50, 8, 1e12, 1e9, 1e-5, 1e10)
    assert one["comm"] == 0 and eight["flops"] * 8 == one["flops"] and eight["mem"] * 8 == one["mem"]
    assert eight["sent"] == 2 * 7 / 8 * 4 * (10_000 * 50 + 1)
    out = tmp_path / "scaleout.md"
    assert scaleout.main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert "Sharded DOP step" in text and "Where communication overtakes compute" in text


def _pinned_worker(rank, world, port, out):
    from dopfast.rpca import refine

    with joined(rank, world, port):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(40, 3, generator=g, dtype=torch.float64) @ torch.randn(3, 30, generator=g, dtype=torch.float64)
        clean = torch.rand(40, 30, generator=g) > 0.1
        rows = Rows(20, distributed=True)
        mine = slice(20 * rank, 20 * rank + 20)
        big, s, small = torch.linalg.svd(x, full_matrices=False)
        left, s, zh = refine.factored_svd(big[mine, :3] * s[:3], small[:3].mT, rows)
        real, screens = refine._clears, []

        def clears(gram, level):  # one column's float32 screen verdict differs in its last bit on rank 1
            verdict = real(gram, level)
            if level != refine.PINNED:
                screens.append(level)
                if len(screens) == 2 and rank == 1:
                    verdict[0] = ~verdict[0]
            return verdict

        refine._clears = clears
        torch.save(refine._pinned(clean[mine], left, s, zh, rows), f"{out}.{rank}")


def test_the_pinned_check_takes_one_branch_on_every_rank(tmp_path):
    # the column screen's verdicts come from a Cholesky each rank takes of the summed Gram matrices; where they
    # differ, the float64 re-check (a collective over the unclear columns) must still be taken by every rank
    out = str(tmp_path / "pinned")
    spawn(_pinned_worker, 2, out)
    assert [torch.load(f"{out}.{r}") for r in range(2)] == [True, True]
