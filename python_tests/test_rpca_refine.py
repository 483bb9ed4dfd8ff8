"""The refinement's least-squares fits, its cost when it cannot certify, and the spectral-norm iteration."""

import math

import numpy as np
import pytest
import torch

from dopfast.rpca import data, dop, refine
from dopfast.rpca.rows import Rows


def _masked_low_rank(m, n, r, missing, seed):
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(m, r, generator=gen, dtype=torch.float64)
    v = torch.randn(n, r, generator=gen, dtype=torch.float64)
    clean = torch.rand(m, n, generator=gen) > missing
    return u, v, u @ v.T, clean, gen


@pytest.mark.parametrize("r", [3, 12])  # exact least squares below rank 8, imputation sweeps above
def test_fit_recovers_an_exact_low_rank_matrix_from_its_clean_entries(r):
    u, v, x, clean, gen = _masked_low_rank(80, 60, r, 0.15, seed=r)
    y = torch.where(clean, x, 100 * torch.randn(x.shape, generator=gen, dtype=torch.float64))  # junk elsewhere
    u0 = u + 0.3 * torch.randn(u.shape, generator=gen, dtype=torch.float64)
    v0 = v + 0.3 * torch.randn(v.shape, generator=gen, dtype=torch.float64)
    uf, vf, sweeps, stalled = refine._fit(y, clean, u0, v0, Rows(80), max_sweeps=200, tol=1e-14,
                                          stall_above=math.sqrt(1e-9))
    assert not stalled and sweeps < 200
    assert float(torch.linalg.norm(uf @ vf.T - x) / torch.linalg.norm(x)) < 1e-10  # the missing ones too


def test_imputation_and_least_squares_reach_the_same_fit():
    # a clean set that no rank-r matrix fits exactly: both methods must find the same least-squares optimum
    u, v, x, clean, gen = _masked_low_rank(70, 50, 9, 0.2, seed=3)
    y = x + 0.01 * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    w = clean.double()
    u0, v0 = u.clone(), v.clone()
    ue, ve, _, _ = refine._fit(y, clean, u0, v0, Rows(70), max_sweeps=3000, tol=1e-13)
    ua, va, _, _ = refine._fit_als(y, w, u0, v0, Rows(70), 3000, 1e-13, None, 1.0, [])
    torch.testing.assert_close(ue @ ve.T, ua @ va.T, rtol=0, atol=1e-7)


@pytest.mark.parametrize("extra", [5, 20])
def test_a_rank_above_the_truth_fails_in_bounded_work(extra):
    # before the crawl rule such a refit ran every round to its sweep limit (2,400 sweeps at n = 1000)
    x, _, y = data.rpca_problem(120, 4, 0.1, seed=1)
    left, s, zh = torch.linalg.svd(x + 0.05 * torch.randn(x.shape, dtype=torch.float64,
                                                          generator=torch.Generator().manual_seed(2)))
    out = refine._refit(y, refine._residual(y, x, None), left, s, zh, 4 + extra, True, Rows(120), 12, 200, 1e-9,
                        100.0, None, 1 / 120 ** 0.5)
    assert out.sweeps <= 12 * (refine.SLOW_SWEEPS + 4) + 200
    if out.accepted:  # a larger rank may fit exactly by absorbing corruptions; it is then probed down
        assert out.rank == 4 + extra


def test_refinement_from_a_barely_started_dop_iterate_is_exact():
    # 20 DOP steps leave the residual at ~100%; the rank reads from the spectral gap and the refit certifies
    x, _, y = data.rpca_problem(200, 5, 0.1, seed=4)
    fit = dop.fit_dop(y[None], psd=True, alpha=math.sqrt(200))
    assert fit.refined[0] and fit.rank[0] == 5
    assert data.relative_error(fit.low_rank[0], x) < 1e-10


@pytest.mark.parametrize("shape", [(300, 300), (600, 280), (40, 900)])
def test_spectral_norm_iteration_matches_the_svd(shape):
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(*shape, generator=gen, dtype=torch.float64)
    y += 3 * torch.randn(shape[0], 3, generator=gen, dtype=torch.float64) @ torch.randn(3, shape[1], generator=gen,
                                                                                           dtype=torch.float64)
    est = dop._spectral_norm(y[None], Rows(shape[0]), exact_up_to=0)  # the iteration whatever the size
    exact = torch.linalg.matrix_norm(y, ord=2)
    assert float(est[0]) <= float(exact) * (1 + 1e-6)  # a Ritz value: never above, but for float32 rounding
    assert abs(float(est[0]) / float(exact) - 1) < 1e-4


def test_float64_data_is_refined_in_float64_after_a_float32_dop_phase():
    x, _, y = data.rpca_problem(100, 5, 0.1, seed=5)
    fit = dop.fit_dop(y[None], psd=True, alpha=10.0)
    assert fit.low_rank.dtype == torch.float64 and fit.dop_low_rank.dtype == torch.float64
    assert fit.refined[0] and data.relative_error(fit.low_rank[0], x) < 1e-10  # beyond float32's 1e-7
    pinned = dop.fit_dop(y[None], psd=True, alpha=10.0, pin_dtype=True)
    assert pinned.refined[0] and data.relative_error(pinned.low_rank[0], x) < 1e-10


def test_bench_video_job_reports_error_and_f1():
    pytest.importorskip("skimage")
    from dopfast.bench.rpca import video_job

    text = video_job((24, 32, 12), budget=10.0)
    lines = [line for line in text.splitlines() if line.startswith("| dopfast default")]
    assert len(lines) == 1
    cells = [c.strip() for c in lines[0].strip("|").split("|")]
    assert float(cells[2]) < 1e-3 and float(cells[3]) >= 0.95  # background error, foreground F1
    assert "AltProj-class, rank 1 given" in text and "PCP" in text


def test_foreground_f1():
    truth = np.zeros((4, 4))
    truth[0, :2] = 1.0
    sparse = np.zeros((4, 4))
    sparse[0, 0] = 0.5
    sparse[3, 3] = 0.5
    assert data.foreground_f1(sparse, truth) == pytest.approx(0.5)  # 1 hit, 2 detected, 2 true
    assert data.foreground_f1(np.zeros(3), np.zeros(3)) == 0.0


def test_no_attempt_at_the_edge_left_by_a_width_that_grew(monkeypatch):
    # With the factors starting narrower than the rank, the width grows and, until the new columns grow too,
    # the spectrum shows a clear gap at the old width: that edge is not a rank to try.
    monkeypatch.setattr(dop, "WIDTH_START", 8)
    x, _, y = data.rpca_problem(200, 12, 0.1, seed=6)  # reads rank 8 with gaps of 19-29 at width 16
    ranks = []
    real = dop._try_refine

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        ranks.append(None if out is None else (out.rank, out.accepted))
        return out

    monkeypatch.setattr(dop, "_try_refine", spy)
    fit = dop.fit_dop(y[None], psd=True, alpha=math.sqrt(200))
    assert fit.refined[0] and fit.rank[0] == 12 and data.relative_error(fit.low_rank[0], x) < 1e-10
    assert all(r is None or r[0] != 8 for r in ranks), ranks


def test_the_residual_scale_is_read_from_a_sample_that_visits_every_column():
    # 4096 × 64 entries: every 5th (4 would visit only the columns 0, 4, 8, ..., where these residuals are 0).
    cols = (torch.arange(64) % 4).to(torch.float64).expand(4096, 64).contiguous()
    everywhere = torch.ones(4096, 64, dtype=torch.bool)
    assert refine._typical(cols, everywhere, Rows(4096)) in (1.0, 2.0)
    gen = torch.Generator().manual_seed(7)
    res = torch.randn(600, 300, generator=gen, dtype=torch.float64).abs()
    where = torch.rand(600, 300, generator=gen) > 0.1
    assert abs(refine._typical(res, where, Rows(600)) / float(res[where].median()) - 1) < 0.03
    small = res[:100, :100].contiguous()  # at most SAMPLE entries: the exact median
    assert refine._typical(small, where[:100, :100], Rows(100)) == float(small[where[:100, :100]].median())


def test_float32_sweeps_reach_the_same_certified_refit_as_float64(monkeypatch):
    x, _, y = data.rpca_problem(150, 6, 0.1, seed=8)
    real, kinds = refine._fit, []

    def spy(y, *args, **kwargs):
        kinds.append((y.dtype, kwargs.get("base", args[9] if len(args) > 9 else None) is not None))
        return real(y, *args, **kwargs)

    monkeypatch.setattr(refine, "_fit", spy)
    mixed = dop.fit_dop(y[None], psd=True, alpha=math.sqrt(150))
    # coarse rounds on y in float32, then the fine rounds and the final fit on corrections (float32 around a
    # float64 residual); a probe below the rank starts with coarse rounds again
    assert set(kinds) == {(torch.float32, False), (torch.float32, True)}
    assert (torch.float32, True) in kinds[kinds.index((torch.float32, False)):]
    monkeypatch.setattr(refine, "MIXED", False)
    kinds.clear()
    double = dop.fit_dop(y[None], psd=True, alpha=math.sqrt(150))
    assert set(kinds) == {(torch.float64, False)}
    for fit in (mixed, double):
        assert fit.refined[0] and fit.rank[0] == 6 and data.relative_error(fit.low_rank[0], x) < 1e-10
    assert data.relative_error(mixed.low_rank[0], x) < 1e-11  # (1.8e-13 here; in float64 throughout 3.2e-12)


def test_a_fit_on_corrections_matches_the_plain_fit():
    # the same rank-r least squares from the same start, on corrections around the float64 residual (float32
    # sweeps, through the fitter) and plainly in float64: imputation sweeps (rank 10) and the alternating least
    # squares (rank 3)
    gen = torch.Generator().manual_seed(3)
    for r in (3, 10):
        truth = torch.randn(200, r, generator=gen, dtype=torch.float64) @ torch.randn(r, 120, generator=gen,
                                                                                     dtype=torch.float64)
        clean = torch.rand(200, 120, generator=gen) > 0.2
        y = torch.where(clean, truth, 100 * torch.randn(200, 120, generator=gen, dtype=torch.float64))
        u0 = torch.linalg.svd(truth)[0][:, :r] * 3 + 1e-3 * torch.randn(200, r, generator=gen, dtype=torch.float64)
        v0 = torch.linalg.lstsq(u0, truth).solution.mT + 1e-3 * torch.randn(120, r, generator=gen,
                                                                             dtype=torch.float64)
        rows = Rows(200)
        scale = float(y.abs().max())
        u, v, sweeps, stalled = refine._fit(y, clean, u0, v0, rows, 200, 1e-12)
        fitter = refine._Fitter(y, scale, rows)  # 1e-12 lies beyond one base's reach from a 1e-3 start: in stages
        u32, v32, sweeps32, stalled32 = fitter(clean, u0, v0, 200, 1e-12, None, None)
        on_corrections = u32 @ v32.mT
        assert fitter.residual32 is not None and u32.dtype == torch.float64
        assert not stalled and not stalled32 and sweeps < 200 and sweeps32 < 200
        assert data.relative_error(u @ v.mT, truth) < 1e-11
        assert data.relative_error(on_corrections, truth) < 1e-11, (r, data.relative_error(on_corrections, truth))


def test_spectral_norm_iteration_under_a_float64_default_dtype():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        y = torch.randn(300, 200, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        est = dop._spectral_norm(y[None], Rows(300), exact_up_to=0)
    finally:
        torch.set_default_dtype(before)
    assert abs(float(est[0]) / float(torch.linalg.matrix_norm(y, ord=2)) - 1) < 1e-4


def test_unrefined_low_rank_is_its_own_array():
    _, _, y = data.rpca_problem(30, 2, 0.1, seed=2)
    fit = dop.fit_dop(y[None], psd=True, alpha=math.sqrt(30), max_iter=5, refine=False)
    assert fit.low_rank.data_ptr() != fit.dop_low_rank.data_ptr()
    assert torch.equal(fit.low_rank, fit.dop_low_rank)


def test_the_dop_phase_of_a_refined_fit_takes_twice_the_pure_dop_step():
    x, _, y = data.rpca_problem(60, 3, 0.1, seed=3)
    refined = dop.fit_dop(y[None], psd=True, alpha=math.sqrt(60))
    pure = dop.fit_dop(y[None], psd=True, alpha=math.sqrt(60), max_iter=50, refine=False)
    assert refined.step[0] == pytest.approx(2 * pure.step[0], rel=1e-12)
    assert dop.REFINE_STEP_FRACTION == 2 * dop.STEP_FRACTION
    assert refined.refined[0] and data.relative_error(refined.low_rank[0], x) < 1e-10


def test_a_fit_above_the_rank_that_absorbs_a_flagged_block_is_not_pinned():
    # X = L + a bᵀ with a on one row and b on that row's flagged columns: exact on every clean entry, over-
    # determined by count, yet the columns of b's support hold no clean entry along a's direction.
    gen = torch.Generator().manual_seed(11)
    u = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    v = torch.randn(20, 2, generator=gen, dtype=torch.float64)
    clean = torch.ones(30, 20, dtype=torch.bool)
    clean[4, [3, 7, 12]] = False
    clean[9, [1, 15]] = False
    a = torch.zeros(30, 1, dtype=torch.float64)
    a[4] = 1.0
    b = torch.zeros(20, 1, dtype=torch.float64)
    b[[3, 7, 12]] = torch.tensor([[5.0], [-7.0], [3.0]], dtype=torch.float64)
    assert refine._pinned(clean, *refine.factored_svd(u, v, Rows(30)), Rows(30))
    above = refine.factored_svd(torch.cat([u, a], 1), torch.cat([v, b], 1), Rows(30))
    assert not refine._pinned(clean, *above, Rows(30))


def test_gram_matrices_the_float32_screen_cannot_clear_are_judged_in_float64(monkeypatch):
    # the block's directions carried by the other rows and columns at 1e-4 (Gram eigenvalues ~1e-8 of the trace:
    # below the float32 screen's margin, far above PINNED) or at 1e-9 (~1e-18: singular)
    gen = torch.Generator().manual_seed(11)
    u = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    v = torch.randn(20, 2, generator=gen, dtype=torch.float64)
    clean = torch.ones(30, 20, dtype=torch.bool)
    clean[4, [3, 7, 12]] = False
    real, levels = refine._clears, []
    monkeypatch.setattr(refine, "_clears", lambda gram, level: levels.append((gram.dtype, level)) or real(gram, level))
    for carried, pinned in ((1e-4, True), (1e-9, False)):
        a = torch.full((30, 1), carried, dtype=torch.float64)
        a[4] = 1.0
        b = torch.full((20, 1), carried, dtype=torch.float64)
        b[[3, 7, 12]] = torch.tensor([[5.0], [-7.0], [3.0]], dtype=torch.float64)
        levels.clear()
        assert refine._pinned(clean, *refine.factored_svd(torch.cat([u, a], 1), torch.cat([v, b], 1), Rows(30)),
                              Rows(30)) == pinned
        assert (torch.float32, refine._screen_margin(30)) in levels and (torch.float64, refine.PINNED) in levels


def _heavily_corrupted(shape, r, data_seed):
    """A small rank-r matrix with 10% of its entries corrupted by N(0, 10²): the hostile-input sweep's data."""
    g = np.random.default_rng(data_seed)
    low = g.standard_normal((shape[0], r)) @ g.standard_normal((r, shape[1]))
    h = np.random.default_rng(100 + data_seed)
    return low, low + np.where(h.random(low.shape) < 0.1, 10 * h.standard_normal(low.shape), 0)


def test_a_refit_beaten_on_the_convex_objective_is_not_certified(monkeypatch):
    # DOP reads rank 3 on rank-2 data; that refit absorbs a block of corruptions, exact on an over-determined,
    # pinned clean set. With the plain truncation as the only probe (no localized component dropped), the probe
    # at rank 2 stalls, but a point the attempt holds has a lower ‖X‖* + λ‖Y − X‖₁: the rank-3 refit is not the
    # convex solution, and DOP goes on to rank 2.
    from dopfast import RobustPCA

    low, y = _heavily_corrupted((20, 15), 2, 4)
    monkeypatch.setattr(refine, "LOCALIZED", 0.0)
    monkeypatch.setattr(refine, "OBJECTIVE_SLACK", math.inf)  # objectives ignored: the smallest certified rank
    blind = RobustPCA(random_state=0).fit(y)
    assert blind.refined_ and blind.rank_ > 2 and np.abs(blind.low_rank_ - low).max() > 1
    monkeypatch.setattr(refine, "OBJECTIVE_SLACK", 1e-9)
    est = RobustPCA(random_state=0).fit(y)
    assert est.refined_ and est.rank_ == 2 and np.abs(est.low_rank_ - low).max() < 1e-9 * np.abs(low).max()


def test_a_probe_drops_a_localized_component(monkeypatch):
    # the certified rank-3 refit of rank-2 data holds one absorbed corruption block as its largest component
    # (singular value 51 against the truth's 29 and 21): truncation keeps it and the probe stalls; the probe
    # without the localized component fits the truth, and DOP's certificate is the truth's
    from dopfast import RobustPCA

    low, y = _heavily_corrupted((50, 20), 2, 7)
    est = RobustPCA(random_state=3).fit(y)
    assert est.refined_ and est.rank_ == 2 and np.abs(est.low_rank_ - low).max() < 1e-9 * np.abs(low).max()
    monkeypatch.setattr(refine, "LOCALIZED", 0.0)
    plain = RobustPCA(random_state=3).fit(y)  # certified wrong: nothing the attempt holds beats it either
    assert plain.refined_ and plain.rank_ == 3 and np.abs(plain.low_rank_ - low).max() > 1


def test_the_localized_component_is_found():
    gen = torch.Generator().manual_seed(0)
    low = torch.randn(60, 3, generator=gen, dtype=torch.float64) @ torch.randn(3, 40, generator=gen).double()
    block = torch.zeros(60, 40, dtype=torch.float64)
    block[7:9, 3:5] = torch.outer(torch.tensor([3.0, 2.0]), torch.tensor([30.0, -24.0])).double()  # rank one, σ 139
    rows = Rows(60)
    left, s, zh = refine.factored_svd(*_factors(low + block), rows)
    # the block's component is the largest; it is the one dropped, not the smallest
    keep = refine._without_localized(left, zh, 4, rows)
    assert keep is not None and len(keep) == 3
    dropped = next(i for i in range(4) if i not in keep.tolist())
    assert left[7:9, dropped].square().sum() > 0.9 and dropped != 3
    left, s, zh = refine.factored_svd(*_factors(low), rows)
    assert refine._without_localized(left, zh, 3, rows) is None  # incoherent components: the plain truncation


def _factors(x):
    u, s, vh = torch.linalg.svd(x)
    r = int((s > 1e-10 * s[0]).sum())
    return u[:, :r] * s[:r], vh[:r].mT


@pytest.mark.parametrize("data_seed, seed", [(0, 2), (0, 6), (6, 2), (7, 1)])
def test_small_heavily_corrupted_matrices_are_never_certified_wrong(data_seed, seed):
    # each of these was certified at rank 3 with errors of 1-30 (a probe starting from the refit's own clean
    # set, which holds the absorbed corruptions, or no objective check); the convex program recovers them
    from dopfast import RobustPCA

    low, y = _heavily_corrupted((20, 15), 2, data_seed)
    est = RobustPCA(random_state=seed).fit(y)
    assert not est.refined_ or np.abs(est.low_rank_ - low).max() < 1e-9 * np.abs(low).max()


def test_l1_rows_ignore_a_minority_of_gross_errors():
    gen = torch.Generator().manual_seed(5)
    other = torch.randn(30, 3, generator=gen, dtype=torch.float64)
    f_true = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    y = f_true @ other.mT
    # 5 of each row's 30 entries carry errors of size 3-13 (either sign)
    picked = torch.rand(y.shape, generator=gen).argsort(1)[:, :5]
    gross = torch.zeros(y.shape, dtype=torch.bool).scatter_(1, picked, True)
    size = 3 + 10 * torch.rand(y.shape, generator=gen, dtype=torch.float64)
    size = size * torch.randn(y.shape, generator=gen).sign()
    y = y + gross * size
    seen = torch.ones_like(y, dtype=torch.bool)
    f, res = refine._l1_rows(y, other, seen, 1e-12, lambda t: t)
    least_squares = torch.linalg.lstsq(other, y.mT).solution.mT
    assert (f - f_true).abs().max() < 1e-2 < 0.1 < (least_squares - f_true).abs().max()
    assert res[~gross].max() < 0.1 < 1 < res[gross].min()  # the clean set reads off at any threshold in between


@pytest.mark.parametrize("shape", [(5000, 20), (20, 5000)])
def test_thin_matrices_are_refined(shape):
    # rows of 20 entries at rank 2: a row fitted to a clean set holding a few corruptions used to keep one of
    # them for good (its r + 2 smallest residuals), and the refit never certified (DOP ran to 9,000 steps)
    from dopfast import RobustPCA

    low, y = _heavily_corrupted(shape, 2, 0)
    est = RobustPCA(random_state=0).fit(y)
    assert est.refined_ and est.rank_ == 2 and est.n_iter_ < 500
    assert np.abs(est.low_rank_ - low).max() < 1e-9 * np.abs(low).max()


def test_every_row_and_column_keeps_enough_clean_entries():
    # a fully corrupted row and column: the row's robust refit, then the column's, then the top-up that only
    # adds entries (the column's refit once dropped entries the row step had just given a short row)
    low, y = _heavily_corrupted((40, 30), 2, 3)
    y = torch.from_numpy(y)
    y[0] += 10
    y[:, 0] -= 10
    u, s, vh = torch.linalg.svd(torch.from_numpy(low), full_matrices=False)
    u, v = u[:, :2] * s[:2].sqrt(), vh[:2].mT * s[:2].sqrt()
    res = (y - u @ v.mT).abs()
    clean = res <= 0.5
    clean[0] = False
    clean[:, 0] = False
    seen = torch.ones_like(clean)
    clean, _, _ = refine._enough_clean(y, res, clean, seen, u, v, 4, 0.5, 1e-12, Rows(40))
    assert int(clean.sum(1).min()) >= 4 and int(clean.sum(0).min()) >= 4


def test_a_given_step_with_peaks_far_apart_stays_finite():
    y = torch.randn(2, 20, 15, generator=torch.Generator().manual_seed(0))
    y[0] *= 1e20
    y[1] *= 1e-19
    fit = dop.fit_dop(y, psd=False, alpha=math.sqrt(20), step=1e-22, max_iter=50)
    assert bool(torch.isfinite(fit.low_rank).all()) and bool(torch.isfinite(fit.sparse).all())


def test_pcp_refuses_non_finite_input():
    from dopfast.rpca.pcp import pcp

    with pytest.raises(ValueError, match="NaN or Inf"):
        pcp(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))


def _spread_spectrum(m, n, r, span, seed, scale=1.0):
    """Rank-r data whose singular values span ``span``, 5% of entries corrupted, and factors of the truth plus
    1e-3 noise: a refit's start."""
    g = torch.Generator().manual_seed(seed)
    qu = torch.linalg.qr(torch.randn(m, r, generator=g, dtype=torch.float64))[0]
    qv = torch.linalg.qr(torch.randn(n, r, generator=g, dtype=torch.float64))[0]
    x = (qu * torch.logspace(0, -math.log10(span), r, dtype=torch.float64) * math.sqrt(m * n / r)) @ qv.T
    s = torch.zeros(m * n, dtype=torch.float64)
    picked = torch.randperm(m * n, generator=g)[: m * n // 20]
    s[picked] = 10 * x.abs().max() * torch.randn(len(picked), generator=g, dtype=torch.float64)
    noisy = x + 1e-3 * x.abs().max() * torch.randn(m, n, generator=g, dtype=torch.float64)
    left, sv, zh = torch.linalg.svd(noisy, full_matrices=False)
    root = (sv[:r] * scale).sqrt()
    return x * scale, (x + s.view(m, n)) * scale, left[:, :r] * root, zh[:r].mT * root


@pytest.mark.parametrize("span, scale", [(1e6, 1.0), (10.0, 1e20), (10.0, 1e-25)])
def test_float32_sweeps_certify_spread_spectra_and_extreme_scales(monkeypatch, span, scale):
    # singular values spanning 1e6: a float32 ridge (2e-6 of the trace) froze the weakest components at a clean
    # residual of 1e-6; data at 1e20 overflowed float32 Gram products (every stage stopped after one sweep) and at
    # 1e-25 fell into float32 subnormals. The r × r algebra now runs in float64, the sweeps in units of max|y|.
    x, y, u, v = _spread_spectrum(200, 150, 5, span, 0, scale)
    for mixed in (True, False):
        monkeypatch.setattr(refine, "MIXED", mixed)
        out = refine.refine_low_rank(y, u, v, False, max_rank=5, width_bound=True)
        assert out.accepted and out.rank == 5 and out.sweeps < 100, (mixed, out.reason, out.sweeps)
        assert data.relative_error(out.low_rank, x) < 1e-10
