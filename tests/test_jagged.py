"""poetml.jagged: awkward <-> flat columns + offsets, Collection and EventBatch."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poetml.jagged import Collection, EventBatch, concatenate, flatten, unflatten

counts_st = st.lists(st.integers(0, 5), min_size=0, max_size=30)


def _jagged(counts, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return ak.unflatten(
        rng.normal(size=int(sum(counts))).astype(dtype), np.asarray(counts, dtype=np.int64)
    )


def _batch(counts, seed=0, start=0):
    arr = _jagged(counts, seed)
    content, offsets = flatten(arr)
    return EventBatch(
        n_events=len(counts),
        collections={"muon": Collection(offsets, {"pt": content, "eta": -content})},
        met={"pt": np.arange(len(counts), dtype=np.float64)},
        source="f.root",
        entry_start=start,
        layout="poet",
    )


@settings(max_examples=40)
@given(counts_st, st.integers(0, 2**31))
def test_flatten_unflatten_roundtrip(counts, seed):
    arr = _jagged(counts, seed)
    content, offsets = flatten(arr)
    assert content.dtype == np.float32
    assert offsets.dtype == np.int64
    assert content.flags.c_contiguous
    assert offsets.flags.c_contiguous
    assert len(offsets) == len(counts) + 1
    np.testing.assert_array_equal(np.diff(offsets), counts)
    assert offsets[0] == 0
    assert offsets[-1] == len(content)
    back = unflatten(content, offsets)
    assert ak.to_list(back) == ak.to_list(ak.values_astype(arr, np.float32))


@settings(max_examples=40)
@given(counts_st, st.integers(0, 30), st.integers(0, 30))
def test_flatten_of_sliced_arrays_rebases_offsets(counts, a, b):
    """A slice of a ListOffsetArray has offsets that do not start at 0 (as RNTuple pages)."""
    arr = _jagged(counts)
    lo, hi = sorted((min(a, len(counts)), min(b, len(counts))))
    part = arr[lo:hi]
    content, offsets = flatten(part)
    assert offsets[0] == 0
    np.testing.assert_array_equal(np.diff(offsets), counts[lo:hi])
    np.testing.assert_array_equal(content, ak.to_numpy(ak.flatten(part)).astype(np.float32))


def test_flatten_other_layouts():
    # ListArray (from fancy indexing), bool and int content, option type
    arr = _jagged([2, 0, 3, 1])
    picked = arr[[3, 0, 2]]
    content, offsets = flatten(picked)
    np.testing.assert_array_equal(offsets, [0, 1, 3, 6])
    np.testing.assert_array_equal(content, ak.to_numpy(ak.flatten(picked)).astype(np.float32))
    content, offsets = flatten(ak.Array([[True, False], [], [True]]))
    np.testing.assert_array_equal(content, [1.0, 0.0, 1.0])
    assert content.dtype == np.float32
    content, offsets = flatten(ak.Array([[1, -1], [2]]))
    np.testing.assert_array_equal(content, [1, -1, 2])
    np.testing.assert_array_equal(offsets, [0, 2, 3])
    # a plain NumPy array is one object per event
    content, offsets = flatten(np.array([1.5, 2.5], dtype=np.float64))
    np.testing.assert_array_equal(content, [1.5, 2.5])
    np.testing.assert_array_equal(offsets, [0, 1, 2])


def test_flatten_takes_uproot_buffers_without_copy():
    content = np.arange(6, dtype=np.float32)
    arr = ak.Array(
        ak.contents.ListOffsetArray(
            ak.index.Index64(np.array([0, 2, 2, 6])), ak.contents.NumpyArray(content)
        )
    )
    flat, offsets = flatten(arr)
    assert np.shares_memory(flat, content)
    np.testing.assert_array_equal(offsets, [0, 2, 2, 6])


def test_collection_validation_and_access():
    c = Collection(np.array([0, 1, 3]), {"pt": [1.0, 2.0, 3.0]})
    assert c.n_events == 2
    assert c.n_objects == 3
    np.testing.assert_array_equal(c.counts, [1, 2])
    assert "pt" in c
    assert "eta" not in c
    with pytest.raises(KeyError, match="no field 'eta'; it has: pt"):
        c["eta"]
    with pytest.raises(ValueError, match="offsets must be a 1-D array"):
        Collection(np.zeros((2, 2)), {})
    empty = Collection.empty(3)
    assert empty.n_events == 3
    assert empty.n_objects == 0
    assert set(empty.fields) == {"pt", "eta", "phi"}


def test_event_batch_checks_lengths():
    with pytest.raises(ValueError, match="collection 'muon' has 2 events, the batch 3"):
        EventBatch(3, {"muon": Collection.empty(2)})
    with pytest.raises(ValueError, match="met field 'pt' has 2 values, the batch 3 events"):
        EventBatch(3, {}, met={"pt": np.zeros(2)})
    b = _batch([1, 2])
    with pytest.raises(KeyError, match="no collection 'jet'; it has: muon"):
        b["jet"]


@settings(max_examples=40)
@given(counts_st, st.integers(0, 40), st.integers(0, 1000))
def test_slice_and_concatenate_recover_the_batch(counts, cut, start):
    batch = _batch(counts, start=start)
    cut = min(cut, len(counts))
    a, b = batch.slice(0, cut), batch.slice(cut, len(counts))
    assert a.entry_start == start
    assert b.entry_start == start + cut
    joined = concatenate([a, b])
    assert joined.n_events == batch.n_events
    assert joined.source == "f.root"
    np.testing.assert_array_equal(joined["muon"].offsets, batch["muon"].offsets)
    np.testing.assert_array_equal(joined["muon"]["pt"], batch["muon"]["pt"])
    np.testing.assert_array_equal(joined.met["pt"], batch.met["pt"])
    np.testing.assert_array_equal(joined.event_index, np.arange(start, start + len(counts)))


def test_concatenate_keeps_common_parts_only():
    a = _batch([1, 0])
    b = EventBatch(1, {"muon": Collection(np.array([0, 1]), {"pt": [5.0]})}, source="g.root")
    joined = concatenate([a, b])
    assert list(joined["muon"].fields) == ["pt"]
    assert dict(joined.met) == {}
    assert joined.source == ""
    with pytest.raises(ValueError, match="at least one batch"):
        concatenate([])
