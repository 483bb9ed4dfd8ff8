"""lowrank_step_ and lowrank_step_uv_ against dopfast.reference."""

import pytest
import torch
from conftest import make_tensors
from torch.library import opcheck
from torch.testing import assert_close

from dopfast import ops, reference


@pytest.mark.parametrize("n,k", [(0, 3), (1, 1), (13, 5), (50, 50)])
def test_lowrank_step_matches_reference(n, k, dtype, device):
    (u,) = make_tensors(1, (n, k), dtype, device)
    (a,) = make_tensors(1, (n, n), dtype, device, seed=1)
    r = a + a.mT
    u_ref = u.clone()
    ops.lowrank_step_(u, r, 1e-2)
    reference.lowrank_step_(u_ref, r, 1e-2)
    assert_close(u, u_ref)


@pytest.mark.parametrize("m,n,k", [(0, 4, 2), (7, 11, 3), (30, 20, 20)])
def test_lowrank_step_uv_matches_reference(m, n, k, dtype, device):
    u, = make_tensors(1, (m, k), dtype, device)
    v, = make_tensors(1, (n, k), dtype, device, seed=1)
    r, = make_tensors(1, (m, n), dtype, device, seed=2)
    u_ref, v_ref = u.clone(), v.clone()
    ops.lowrank_step_uv_(u, v, r, 1e-2)
    reference.lowrank_step_uv_(u_ref, v_ref, r, 1e-2)
    assert_close(u, u_ref)
    assert_close(v, v_ref)


def test_batched_and_noncontiguous(device):
    u, = make_tensors(1, (3, 9, 4), torch.float64, device, noncontiguous=True)
    r, = make_tensors(1, (3, 9, 9), torch.float64, device, seed=1, noncontiguous=True)
    u_ref = u.clone()
    ops.lowrank_step_(u, r, 0.1)
    reference.lowrank_step_(u_ref, r, 0.1)
    assert_close(u, u_ref)
    assert not u.is_contiguous()


def test_opcheck(device):
    u, v = make_tensors(2, (6, 3), torch.float64, device)
    r, = make_tensors(1, (6, 6), torch.float64, device, seed=3)
    opcheck(torch.ops.dopfast.lowrank_step_.default, (u.clone(), r, 0.1))
    opcheck(torch.ops.dopfast.lowrank_step_uv_.default, (u.clone(), v.clone(), r, 0.1))
