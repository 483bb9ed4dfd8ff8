"""dopfast.RobustPCA: recovery on the paper's data, conventions, scale-free step rule, errors."""

import math
import warnings

import numpy as np
import pytest
import torch

from dopfast import RobustPCA
from dopfast.rpca import ConvergenceWarning, relative_error, rpca_problem


@pytest.fixture(scope="module")
def paper_data():
    return rpca_problem(50, 5, 0.1, seed=0)


def test_paper_setting_default_reaches_1e4(paper_data):
    x, _, y = paper_data
    est = RobustPCA(model="psd", random_state=0).fit(y.numpy())
    assert isinstance(est.low_rank_, np.ndarray) and est.low_rank_.shape == (50, 50)
    assert relative_error(est.low_rank_, x) <= 1e-4
    assert est.refined_ and est.rank_ == 5 and est.converged_
    # DOP ran only until the refinement certified itself: its own estimate is rough but already separated
    assert est.n_iter_ < 1000 and relative_error(est.dop_low_rank_, x) < 0.5
    np.testing.assert_allclose(est.low_rank_ + est.sparse_, y.numpy(), atol=1e-9)


def test_pure_paper_method_without_refinement(paper_data):
    x, _, y = paper_data
    est = RobustPCA(model="psd", refine=False, random_state=0).fit(y)
    assert isinstance(est.low_rank_, torch.Tensor) and est.low_rank_.dtype == torch.float64
    assert 1e-4 < relative_error(est.low_rank_, x) < 0.1
    assert not hasattr(est, "refined_")
    assert est.loss_curve_.shape == (est.n_iter_,) and np.all(np.diff(est.loss_curve_[:50]) <= 0)


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_step_rule_is_scale_free(paper_data, scale):
    x, _, y = paper_data
    base = RobustPCA(model="psd", refine=False, random_state=1).fit(y)
    scaled = RobustPCA(model="psd", refine=False, random_state=1).fit(y * scale)
    assert scaled.n_iter_ == base.n_iter_
    assert math.isclose(relative_error(scaled.low_rank_, x * scale), relative_error(base.low_rank_, x), rel_tol=1e-6)
    assert math.isclose(scaled.step_ * scale, base.step_, rel_tol=1e-12)


def test_float32_tensor_stays_float32(paper_data):
    x, _, y = paper_data
    low = RobustPCA(model="psd", random_state=0).fit_transform(y.float())
    assert low.dtype == torch.float32
    assert relative_error(low.double(), x) < 1e-3


def test_rectangular_general_model():
    x, _, y = rpca_problem(40, 3, 0.05, seed=3, m=60)
    est = RobustPCA(random_state=0).fit(y.numpy())
    assert est.model_ == "general" and est.low_rank_.shape == (60, 40)
    assert relative_error(est.low_rank_, x) <= 1e-4


def test_auto_model_picks_psd_for_symmetric_input():
    x, s, _ = rpca_problem(30, 2, 0.0, seed=4)
    mask = torch.rand(30, 30, generator=torch.Generator().manual_seed(0)) < 0.05
    s = 5 * (mask | mask.T).double()
    est = RobustPCA(random_state=0).fit(x + s)
    assert est.model_ == "psd"
    assert relative_error(est.low_rank_, x) <= 1e-4


def test_batch_input():
    items = [rpca_problem(30, 2, 0.1, seed=i) for i in range(3)]
    y = np.stack([it[2].numpy() for it in items])
    est = RobustPCA(model="psd", random_state=0).fit(y)
    assert est.low_rank_.shape == (3, 30, 30) and est.n_iter_.shape == (3,) and est.refined_.shape == (3,)
    for i, (x, _, _) in enumerate(items):
        assert relative_error(est.low_rank_[i], x) <= 1e-4


def test_pcp_method(paper_data):
    x, _, y = paper_data
    est = RobustPCA(method="pcp", model="psd", tol=1e-7).fit(y)
    assert est.converged_ and relative_error(est.low_rank_, x) < 1e-5


def test_convex_method_agrees_with_pcp():
    pytest.importorskip("cvxpy")
    x, _, y = rpca_problem(12, 1, 0.05, seed=5)
    convex = RobustPCA(method="convex", model="psd").fit(y)
    admm = RobustPCA(method="pcp", model="psd", tol=1e-8, max_iter=5000).fit(y)
    assert relative_error(convex.low_rank_, admm.low_rank_) < 1e-4


def test_convex_method_size_limit():
    with pytest.raises(ValueError, match="at most 64 rows and columns"):
        RobustPCA(method="convex").fit(np.random.default_rng(0).normal(size=(65, 65)))


@pytest.mark.filterwarnings("ignore::dopfast.rpca.ConvergenceWarning")
def test_same_seed_same_result(paper_data):
    _, _, y = paper_data
    a = RobustPCA(model="psd", refine=False, random_state=7, max_iter=600).fit(y).low_rank_
    b = RobustPCA(model="psd", refine=False, random_state=7, max_iter=600).fit(y).low_rank_
    assert torch.equal(a, b)


def test_divergence_is_reported_with_the_step(paper_data):
    _, _, y = paper_data
    with pytest.raises(FloatingPointError, match=r"diverged at step \d+ .*step τ=0\.5.*smaller step"):
        RobustPCA(model="psd", step=0.5, random_state=0).fit(y)


def test_convergence_warning(paper_data):
    _, _, y = paper_data
    with pytest.warns(ConvergenceWarning, match="max_iter=500"):
        est = RobustPCA(model="psd", max_iter=500, refine=False, random_state=0).fit(y)
    assert not est.converged_ and est.n_iter_ == 500


def test_verbose_progress_bar(paper_data, capsys):
    _, _, y = paper_data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        RobustPCA(model="psd", max_iter=1000, refine=False, verbose=True, random_state=0).fit(y)
    assert "RobustPCA(dop)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "y,kwargs,exc,match",
    [
        (np.ones(5), {}, ValueError, r"Y must be a matrix \(m, n\) or a batch"),
        (np.ones((0, 4)), {}, ValueError, "Y is empty"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), {}, ValueError, "NaN or infinite"),
        (np.array([["a", "b"]]), {}, TypeError, "numeric array"),
        (np.ones((4, 4)), {"alpha": -1.0}, ValueError, "alpha must be a positive finite number"),
        (np.ones((4, 4)), {"alpha": "big"}, TypeError, "alpha must be a number"),
        (np.ones((4, 4)), {"step": math.inf}, ValueError, "step must be a positive finite number"),
        (np.ones((4, 4)), {"method": "svd"}, ValueError, "method must be"),
        (np.ones((4, 4)), {"model": "sym"}, ValueError, "model must be"),
        (np.ones((4, 5)), {"model": "psd"}, ValueError, "model='psd' needs square"),
        (np.ones((4, 4)), {"rank": 2.5}, TypeError, "rank must be an int"),
        (np.ones((4, 4)), {"tol": -1}, ValueError, "tol must be"),
        (np.ones((4, 4)), {"dtype": "float16"}, ValueError, "dtype must be float32 or float64"),
    ],
)
def test_bad_input(y, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        RobustPCA(**kwargs).fit(y)


def test_params_protocol():
    est = RobustPCA(alpha=3.0)
    assert est.get_params()["alpha"] == 3.0
    assert est.set_params(step=1e-3).step == 1e-3
    assert "alpha=3.0" in repr(est)
    with pytest.raises(ValueError, match="unknown parameter 'lr'"):
        est.set_params(lr=1)


def test_integer_and_bool_torch_input_get_float_results():
    for y in (torch.tensor([[15, 5], [5, 15]]), torch.tensor([[True, False], [False, True]])):
        est = RobustPCA(random_state=0, refine=False).fit(y)
        assert est.low_rank_.dtype == torch.float64 and est.sparse_.dtype == torch.float64
        assert torch.allclose(est.low_rank_ + est.sparse_, y.double(), rtol=1e-2, atol=1e-2)
        assert not torch.equal(est.low_rank_, est.low_rank_.round())  # not truncated to integers


@pytest.mark.parametrize("scale,dtype", [(1e160, torch.float64), (1e-160, torch.float64), (1e25, torch.float32),
                                         (1e-25, torch.float32), (3e36, torch.float32), (3e305, torch.float64)])
def test_extreme_scales_give_the_unit_scale_result(paper_data, scale, dtype):
    x, _, y = paper_data
    y = y.to(dtype)
    base = RobustPCA(model="psd", random_state=0).fit(y)
    big = RobustPCA(model="psd", random_state=0).fit(y * scale)
    assert big.n_iter_ == base.n_iter_
    assert RobustPCA(random_state=0, max_iter=10, refine=False).fit(y * scale).model_ == "general"  # no overflow
    assert big.refined_ == base.refined_
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    assert relative_error(big.low_rank_.double() / scale, base.low_rank_.double()) < tol


@pytest.mark.parametrize("scale,dtype", [(1e-3, torch.float64), (1e3, torch.float64), (3e36, torch.float32),
                                         (3e305, torch.float64)])
def test_pcp_is_scale_free(paper_data, scale, dtype):
    # the same iterations in any units (its dual residual once scaled as 1/Y: 15 iterations at n = 200, 114 in
    # units 1000x smaller); near the largest float its norms overflowed unless normalised
    x, _, y = paper_data
    base = RobustPCA(method="pcp").fit(y.to(dtype))
    big = RobustPCA(method="pcp").fit(y.to(dtype) * scale)
    assert torch.isfinite(big.low_rank_).all() and big.n_iter_ == base.n_iter_
    assert relative_error(big.low_rank_.double() / scale, base.low_rank_.double()) < 1e-4


def test_numpy_integer_parameters_and_stale_attributes(paper_data):
    _, _, y = paper_data
    est = RobustPCA(model="psd", max_iter=np.int64(300), tol=np.float32(0.5), random_state=np.int64(3)).fit(y)
    assert est.n_iter_ <= 300 and hasattr(est, "rank_")
    est.set_params(method="pcp").fit(y)
    for name in ("rank_", "refined_", "step_", "dop_low_rank_"):
        assert not hasattr(est, name), name


def test_all_zero_input_returns_at_once():
    est = RobustPCA(random_state=0).fit(np.zeros((20, 20)))
    assert est.n_iter_ == 0 and est.converged_
    assert np.all(est.low_rank_ == 0) and np.all(est.sparse_ == 0)


def test_auto_model_refuses_psd_for_negative_definite_data():
    a = -np.outer(np.arange(1, 6), np.arange(1, 6)).astype(float)
    est = RobustPCA(random_state=0).fit(a)
    assert est.model_ == "general"
    assert relative_error(est.low_rank_, a) < 1e-6


def test_a_failed_refinement_keeps_the_dop_estimate(paper_data, monkeypatch):
    from dopfast.rpca import dop

    def broken(*args, **kwargs):
        raise torch.linalg.LinAlgError("singular")

    monkeypatch.setattr(dop, "refine_low_rank", broken)
    x, _, y = paper_data
    est = RobustPCA(model="psd", random_state=0).fit(y)
    assert est.refined_ is False
    assert torch.equal(est.low_rank_, est.dop_low_rank_) and relative_error(est.low_rank_, x) < 0.1


def test_sklearn_clone_and_random_state_objects(paper_data):
    base = pytest.importorskip("sklearn.base")
    est = RobustPCA(alpha=3.0, refine=False, max_iter=100)
    twin = base.clone(est)
    assert twin.get_params() == est.get_params() and twin is not est
    _, _, y = paper_data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = RobustPCA(refine=False, max_iter=100, random_state=np.random.RandomState(0)).fit(y).low_rank_
        b = RobustPCA(refine=False, max_iter=100, random_state=np.random.RandomState(0)).fit(y).low_rank_
    assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"refine": "False"}, ValueError, "refine must be one of"),
    ({"device": "gpu"}, ValueError, "device must be"),
    ({"max_iter": 0}, ValueError, "max_iter must be a positive int"),
    ({"random_state": -1}, ValueError, "random_state must be an int >= 0"),
])
def test_bad_parameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        RobustPCA(**kwargs).fit(np.ones((4, 4)))


@pytest.mark.parametrize("rank,p,max_iter", [(5, 0.1, 60), (5, 0.1, 250), (20, 0.45, 1000), (15, 0.3, 300)])
def test_refinement_is_certified_or_refused_never_worse(rank, p, max_iter):
    # Stopped early or beyond the recoverable region, the refit is either certified (then it is the truth to
    # ~1e-12) or refused (then the DOP estimate is returned as it is): never a worse estimate than DOP's.
    x, _, y = rpca_problem(50, rank, p, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = RobustPCA(model="psd", random_state=1, max_iter=max_iter).fit(y)
    err, dop_err = relative_error(est.low_rank_, x), relative_error(est.dop_low_rank_, x)
    if est.refined_:
        assert err < 1e-8, (err, dop_err)
    else:
        assert torch.equal(est.low_rank_, est.dop_low_rank_)
    assert err <= dop_err


def test_rank_equal_to_the_true_rank_refines(paper_data):
    # with the width at the true rank no gap after the last component can be read: the width itself is tried
    x, _, y = paper_data
    est = RobustPCA(rank=5, random_state=0).fit(y)
    assert est.refined_ and est.rank_ == 5 and relative_error(est.low_rank_, x) < 1e-9 and est.n_iter_ < 500


def test_dop_stops_once_the_refinement_is_certified(paper_data):
    x, _, y = paper_data
    est = RobustPCA(model="psd", random_state=0).fit(y)
    assert est.refined_ and est.converged_ and est.n_iter_ < 2000  # DOP alone needs 5,500 steps to tol=1e-3
    assert relative_error(est.low_rank_, x) < 1e-10


def _tensorly_case():
    """tensorly's documented robust_pca example: a rank-one 100×8 matrix, ±100 spikes on 5% of the entries,
    5% of the entries missing (NaN here)."""
    rng = np.random.default_rng(0)
    a = np.outer(rng.standard_normal(100), rng.standard_normal(8))
    y = a + (rng.random(a.shape) < 0.05) * 100 * rng.choice([-1, 1], a.shape)
    missing = rng.random(a.shape) < 0.05
    return a, np.where(missing, np.nan, y), missing


def test_mask_recovers_missing_entries_tensorly_case():
    a, y, missing = _tensorly_case()
    est = RobustPCA(random_state=0).fit(y, mask=~missing)
    err = lambda sel: np.linalg.norm((est.low_rank_ - a)[sel]) / np.linalg.norm(a[sel])  # noqa: E731
    assert err(missing) <= 1e-2 and err(~missing) <= 0.1
    assert est.refined_ and est.rank_ == 1 and err(missing) < 1e-9  # certified: exact
    assert np.all(est.sparse_[missing] == 0) and np.isfinite(est.low_rank_).all()
    with pytest.raises(ValueError, match="pass mask=~np.isnan"):
        RobustPCA().fit(y)


def test_mask_on_the_paper_data(paper_data):
    x, _, y = paper_data
    missing = torch.rand(y.shape, generator=torch.Generator().manual_seed(1)) < 0.1
    est = RobustPCA(model="psd", random_state=0).fit(y.masked_fill(missing, float("nan")), mask=~missing)
    assert est.refined_ and relative_error(est.low_rank_, x) < 1e-9
    assert bool((est.sparse_[missing] == 0).all())
    # an all-true mask is the unmasked fit (through the per-step path instead of the whole-loop solver)
    with pytest.warns(ConvergenceWarning):
        full = RobustPCA(model="psd", random_state=0, refine=False, max_iter=300, tol=0).fit(y, mask=torch.ones_like(y))
    with pytest.warns(ConvergenceWarning):
        plain = RobustPCA(model="psd", random_state=0, refine=False, max_iter=300, tol=0).fit(y)
    torch.testing.assert_close(full.low_rank_, plain.low_rank_, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kwargs,mask,exc,match", [
    ({}, np.ones((4, 5)), ValueError, "mask must have Y's shape"),
    ({}, np.full((5, 5), 2.0), ValueError, "hold only 0 and 1"),
    ({}, np.full((5, 5), "a"), TypeError, "mask must be bool or 0/1"),
    ({"method": "pcp"}, np.ones((5, 5), dtype=bool), ValueError, "mask needs method='dop'"),
])
def test_mask_errors(kwargs, mask, exc, match):
    with pytest.raises(exc, match=match):
        RobustPCA(**kwargs).fit(np.eye(5), mask=mask)


def test_nan_where_the_mask_says_observed_is_refused():
    y = np.eye(5)
    y[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite entries where mask is true"):
        RobustPCA().fit(y, mask=np.ones((5, 5), dtype=bool))


def test_mask_with_a_row_and_a_column_entirely_missing(paper_data):
    x, _, y = paper_data
    seen = torch.ones_like(y, dtype=torch.bool)
    seen[3, :] = False
    seen[:, 4] = False
    est = RobustPCA(model="general", random_state=0).fit(y, mask=seen)
    assert bool(torch.isfinite(est.low_rank_).all()) and bool((est.sparse_[~seen] == 0).all())
    # a row with no observation cannot be pinned down: no certificate, DOP's estimate is returned
    assert not est.refined_ and relative_error(est.low_rank_[seen].view(1, -1), x[seen].view(1, -1)) < 0.1
