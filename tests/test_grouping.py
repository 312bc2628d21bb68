import math

import pytest
import torch

from imc_sim.errors import ImcSimError
from imc_sim.peft.grouping import eq2_group_sizes, expand, group_index, group_sizes


@pytest.mark.parametrize(("d", "k"), [(384, 32), (100, 7), (10, 10), (5, 1), (1536, 128)])
def test_group_sizes_are_ceil_or_floor(d, k):
    sizes = group_sizes(group_index(d, k, seed=3), k)
    assert sizes.sum() == d
    assert set(sizes.tolist()) <= {math.floor(d / k), math.ceil(d / k)}
    assert (sizes == math.ceil(d / k)).sum() == (d % k or k)
    assert torch.equal(eq2_group_sizes(d, k), sizes)


def test_matches_eq2_repeat_truncate_permute():
    d, k, seed = 50, 8, 11
    v = torch.arange(k, dtype=torch.float) * 10
    perm = torch.randperm(d, generator=torch.Generator().manual_seed(seed))
    literal = v.repeat(math.ceil(d / k))[:d][perm]
    assert torch.equal(v[group_index(d, k, seed)], literal)


def test_seed_fixes_permutation_and_seeds_differ():
    assert torch.equal(group_index(64, 8, 5), group_index(64, 8, 5))
    assert not torch.equal(group_index(64, 8, 5), group_index(64, 8, 6))


@pytest.mark.parametrize("k", [0, -1, 65])
def test_k_out_of_range(k):
    with pytest.raises(ImcSimError, match="K must be in"):
        group_index(64, k, 0)


def test_group_index_is_drawn_on_the_cpu_and_moved():
    """The device a layer lives on never changes its groups: the permutation comes from a CPU
    generator, and the index is then placed on the device asked for."""
    moved = group_index(40, 6, 9, device="meta")
    assert moved.device.type == "meta" and moved.shape == (40,) and moved.dtype == torch.long
    assert torch.equal(group_index(40, 6, 9, device="cpu"), group_index(40, 6, 9))


@pytest.mark.parametrize("shape, dim", [((5, 7, 4), -1), ((5, 7, 4), 2), ((5, 4, 7), 1), ((4,), 0),
                                        ((6, 4), 1)])
def test_expand_gathers_the_k_dimension_by_group(shape, dim):
    """v[..., g(j), ...] along ``dim`` for every rank (the 2-D fast path for a last dimension
    included), gradients summed back onto each group."""
    values = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    group = group_index(9, 4, seed=0)
    got = expand(values, group, dim)
    torch.testing.assert_close(got, torch.index_select(values, dim, group), rtol=0, atol=0)
    assert torch.autograd.gradcheck(lambda v: expand(v, group, dim), (values,))
