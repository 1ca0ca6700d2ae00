"""GPU ownership (DESIGN section 3): every GPU of a node is measured by exactly one local rank."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yprov4ml_hpc._errors import ConfigError
from yprov4ml_hpc._samplers import owned_gpus

UUIDS = [f"GPU-{i}a{i}b-0000-1111-2222-33334444555{i}" for i in range(8)]


def _owners(cvd: str | None, local_size: int, device_count: int) -> Counter[int]:
    """How many local ranks measure each GPU."""
    counts: Counter[int] = Counter()
    for rank in range(local_size):
        owned = owned_gpus(None, cvd, rank, local_size, device_count, uuids=UUIDS)
        assert owned == sorted(owned)
        counts.update(owned)
    return counts


@pytest.mark.parametrize("local_size", [1, 2, 4])
@pytest.mark.parametrize("device_count", range(1, 9))
def test_mod_rule_measures_each_gpu_once(local_size: int, device_count: int) -> None:
    counts = _owners(None, local_size, device_count)
    assert counts == Counter(range(device_count))  # each GPU exactly once; some ranks may own none


@pytest.mark.parametrize("local_size", [1, 2, 4])
@pytest.mark.parametrize("device_count", range(2, 9))  # one GPU: the limitation test below
def test_shared_visible_list_is_dealt_out_once(local_size: int, device_count: int) -> None:
    cvd = ",".join(str(g) for g in range(device_count))
    assert _owners(cvd, local_size, device_count) == Counter(range(device_count))


def test_shared_visible_subset_measures_only_the_listed_gpus() -> None:
    assert _owners("6,2,3", 2, 8) == Counter([2, 3, 6])
    assert owned_gpus(None, "6,2,3", 0, 2, 8) == [3, 6]  # positions 0 and 2 of the list
    assert owned_gpus(None, "6,2,3", 1, 2, 8) == [2]


def test_one_gpu_per_rank_layout() -> None:
    # srun --gpus-per-task=1: each rank sees only its own GPU and measures it.
    for rank in range(4):
        assert owned_gpus(None, str(rank), rank, 4, 4) == [rank]


def test_single_shared_entry_is_the_known_limitation() -> None:
    # Slurm --gres=gpu:1 with 4 tasks gives every task CUDA_VISIBLE_DEVICES=0, which a rank
    # cannot tell from one-GPU-per-task: each rank owns it, and the merge dedups by GPU UUID.
    assert _owners("0", 4, 4) == Counter({0: 4})


def test_explicit_gpu_ids_win() -> None:
    assert owned_gpus([3, 1], "0", 1, 2, 4) == [1, 3]
    assert owned_gpus([0, 9, -1], None, 0, 1, 4) == [0]  # not on this node: dropped
    assert owned_gpus([], None, 0, 1, 4) == []


def test_uuid_entries_and_prefixes_resolve_to_nvml_indices() -> None:
    assert owned_gpus(None, f"{UUIDS[5]},{UUIDS[2]}", 0, 1, 8, uuids=UUIDS) == [2, 5]
    assert owned_gpus(None, UUIDS[7][:9], 0, 1, 8, uuids=UUIDS) == [7]  # unique prefix, like CUDA
    assert owned_gpus(None, "GPU-", 0, 1, 8, uuids=UUIDS) == []  # ambiguous prefix ends the list
    assert owned_gpus(None, UUIDS[1], 0, 1, 8) == []  # no UUID table: cannot resolve


@pytest.mark.parametrize("cvd", ["", "NoDevFiles", "-1", " ", "none"])
def test_no_visible_device_means_no_gpu(cvd: str) -> None:
    assert owned_gpus(None, cvd, 0, 1, 4) == []


def test_first_invalid_entry_ends_the_list_like_cuda() -> None:
    assert owned_gpus(None, "0,7,1", 0, 1, 4) == [0]
    assert owned_gpus(None, "2,-1,3", 0, 1, 4) == [2]
    assert owned_gpus(None, "1,1,2", 0, 1, 4) == [1, 2]


def test_mig_instances_are_skipped() -> None:
    assert owned_gpus(None, "MIG-3b1c7f2a-aaaa-bbbb-cccc-000000000000,1", 0, 1, 4) == [1]


def test_no_device_no_gpu() -> None:
    assert owned_gpus(None, None, 0, 2, 0) == []
    assert owned_gpus(None, "0,1", 0, 2, 0) == []


@pytest.mark.parametrize(("local_rank", "local_size"), [(2, 2), (-1, 2), (0, 0)])
def test_inconsistent_local_rank_is_a_config_error(local_rank: int, local_size: int) -> None:
    with pytest.raises(ConfigError, match="local_rank"):
        owned_gpus(None, None, local_rank, local_size, 4)


@given(
    local_size=st.integers(1, 16),
    device_count=st.integers(0, 16),
    visible=st.none() | st.lists(st.integers(0, 15), unique=True),
)
def test_every_visible_gpu_is_owned_exactly_once(
    local_size: int, device_count: int, visible: list[int] | None
) -> None:
    cvd = None if visible is None else ",".join(map(str, visible))
    if visible is None:
        expected = set(range(device_count))
    else:  # the prefix of valid indices, as CUDA reads it
        expected = set()
        for g in visible:
            if g >= device_count:
                break
            expected.add(g)
    if visible is not None and len(expected) == 1 and local_size > 1:
        return  # one shared GPU: test_single_shared_entry_is_the_known_limitation
    counts = _owners(cvd, local_size, device_count)
    assert set(counts) == expected
    assert all(n == 1 for n in counts.values())
