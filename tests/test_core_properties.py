"""Property tests: the C++ core (poetml._core via poetml.rasterize / build_features) against
its plain NumPy twin (poetml._reference) on random jagged batches, plus invariances.

Batches include empty events, empty batches, objects exactly on pixel edges and at
phi = +-pi (float32), objects outside the eta range and beyond +-pi in phi.  Bins are
computed with the same float64 expressions on both sides, so pixel indices agree exactly;
histogram images without post-processing must be bit-identical, other modes agree to
float32 rounding (exp / log1p / normalisation sums may differ in the last bit).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import poetml
from poetml import _reference
from poetml.features import EVENT_QUANTITIES, FeatureSpec
from poetml.images import ImageSpec
from poetml.jagged import Collection, EventBatch, concatenate
from poetml.selection import JetSelection, MuonSelection, Selection

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)

F32_PI = float(np.float32(math.pi))


@st.composite
def etas(draw, n_eta: int = 32, lo: float = -2.5, hi: float = 2.5) -> float:
    kind = draw(st.sampled_from(["uniform", "edge", "limit", "outside"]))
    if kind == "uniform":
        return draw(st.floats(-3.0, 3.0, width=32))
    if kind == "edge":  # a pixel edge of the default or the drawn geometry
        k = draw(st.integers(0, n_eta))
        return float(np.float32(lo + k * (hi - lo) / n_eta))
    if kind == "limit":
        return draw(
            st.sampled_from([lo, hi, -2.4, 2.4, 0.0, float(np.nextafter(np.float32(hi), 0))])
        )
    return draw(st.sampled_from([-2.6, 2.6, 5.0, -10.0]))


@st.composite
def phis(draw, n_phi: int = 32) -> float:
    kind = draw(st.sampled_from(["uniform", "edge", "pi", "beyond"]))
    if kind == "uniform":
        return draw(st.floats(-F32_PI, F32_PI, width=32))
    if kind == "edge":
        k = draw(st.integers(0, n_phi))
        return float(np.float32(-math.pi + k * 2 * math.pi / n_phi))
    if kind == "pi":
        return draw(st.sampled_from([math.pi, -math.pi, F32_PI, -F32_PI, 0.0]))
    return draw(st.sampled_from([3.2, -3.2, 6.5, -7.0]))


@st.composite
def collections(draw, n_events: int, n_eta: int, n_phi: int, max_per_event: int = 4) -> Collection:
    counts = draw(st.lists(st.integers(0, max_per_event), min_size=n_events, max_size=n_events))
    n = sum(counts)
    pts = st.one_of(st.floats(0.0, 200.0, width=32), st.sampled_from([0.0, 1.0, 25.0, 30.0]))
    fields = {
        "pt": draw(st.lists(pts, min_size=n, max_size=n)),
        "eta": draw(st.lists(etas(n_eta), min_size=n, max_size=n)),
        "phi": draw(st.lists(phis(n_phi), min_size=n, max_size=n)),
        "charge": draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=n, max_size=n)),
        "tight_id": draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n)),
        "iso": draw(st.lists(st.floats(0.0, 0.375, width=32), min_size=n, max_size=n)),
        "btag": draw(st.lists(st.floats(0.0, 1.0, width=32), min_size=n, max_size=n)),
        "mass": draw(st.lists(st.floats(0.0, 20.0, width=32), min_size=n, max_size=n)),
    }
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Collection(offsets, {k: np.asarray(v, dtype=np.float32) for k, v in fields.items()})


@st.composite
def batches(draw, n_eta: int = 32, n_phi: int = 32, max_events: int = 6) -> EventBatch:
    n = draw(st.integers(0, max_events))
    colls = {c: draw(collections(n, n_eta, n_phi)) for c in ("muon", "electron", "jet", "photon")}
    met = {
        "pt": np.asarray(
            draw(st.lists(st.floats(0.0, 300.0, width=32), min_size=n, max_size=n)), np.float32
        ),
        "phi": np.asarray(draw(st.lists(phis(n_phi), min_size=n, max_size=n)), np.float32),
    }
    return EventBatch(n, colls, met)


@st.composite
def specs(draw) -> ImageSpec:
    n_eta = draw(st.sampled_from([1, 3, 8, 32]))
    n_phi = draw(st.sampled_from([1, 2, 5, 16, 32]))
    lo = draw(st.sampled_from([-2.5, -1.0, -3.0]))
    hi = draw(st.sampled_from([2.5, 1.3, 3.0]))
    mode = draw(st.sampled_from(["histogram", "gaussian", "glyph"]))
    return ImageSpec(
        n_eta=n_eta,
        n_phi=n_phi,
        eta_min=lo,
        eta_max=hi,
        channels=tuple(
            draw(st.permutations(["muon", "electron", "jet", "photon", "met"]))[
                : draw(st.integers(1, 5))
            ]
        ),
        mode=mode,
        sigma=draw(st.sampled_from([0.2, 0.7, 1.0, 2.5])),
        glyph_radius0=draw(st.sampled_from([0.0, 0.5, 2.0])),
        glyph_radius_per_log=draw(st.sampled_from([0.0, 0.5, 1.0])),
        glyph_width=draw(st.sampled_from([0.0, 0.5, 1.0])),
        glyph_width_positive=draw(st.sampled_from([0.5, 1.0, 2.0])),
        log1p=draw(st.booleans()),
        normalize=draw(st.booleans()),
        saturate_bits=draw(st.sampled_from([None, None, 1, 4, 10])),
        lsb_gev=draw(st.sampled_from([0.25, 0.5, 2.0])),
        selection=draw(st.sampled_from(SELECTIONS)),
    )


#: default (cleaning at Delta R 0.4), none at all, and a wide cleaning cone
SELECTIONS = [
    Selection(),
    Selection.none(),
    Selection(jet=JetSelection(min_pt=0.0, lepton_dr=1.5), muon=MuonSelection(max_iso=None)),
]


def _plain(spec: ImageSpec) -> bool:
    return spec.mode == "histogram" and not (spec.log1p or spec.normalize or spec.saturate_bits)


@SETTINGS
@given(data=st.data(), spec=specs())
def test_rasterize_matches_reference(data, spec: ImageSpec) -> None:
    batch = data.draw(batches(spec.n_eta, spec.n_phi))
    images, dropped = poetml.rasterize(batch, spec, return_dropped=True, n_threads=2)
    ref_images, ref_dropped = _reference.rasterize(batch, spec, return_dropped=True)
    assert images.shape == (batch.n_events, *spec.shape)
    assert images.dtype == np.float32
    assert dropped.dtype == np.int64
    np.testing.assert_array_equal(dropped, ref_dropped)
    if _plain(spec):
        np.testing.assert_array_equal(images, ref_images)
    else:
        np.testing.assert_allclose(images, ref_images, rtol=2e-6, atol=1e-7)


@SETTINGS
@given(data=st.data(), spec=specs())
def test_permuting_objects_leaves_images_unchanged(data, spec: ImageSpec) -> None:
    batch = data.draw(batches(spec.n_eta, spec.n_phi))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    permuted = {}
    for name, coll in batch.collections.items():
        order = np.concatenate(
            [
                lo + rng.permutation(hi - lo)
                for lo, hi in zip(coll.offsets[:-1], coll.offsets[1:], strict=False)
            ]
            + [np.zeros(0, dtype=np.int64)]
        ).astype(np.int64)
        permuted[name] = Collection(coll.offsets, {k: v[order] for k, v in coll.fields.items()})
    shuffled = EventBatch(batch.n_events, permuted, batch.met)
    np.testing.assert_allclose(
        poetml.rasterize(shuffled, spec), poetml.rasterize(batch, spec), rtol=1e-5, atol=1e-5
    )


@SETTINGS
@given(data=st.data(), spec=specs())
def test_splitting_batch_changes_nothing(data, spec: ImageSpec) -> None:
    batch = data.draw(batches(spec.n_eta, spec.n_phi))
    k = data.draw(st.integers(0, batch.n_events))
    parts = [batch.slice(0, k), batch.slice(k, batch.n_events)]
    joined = np.concatenate([poetml.rasterize(p, spec) for p in parts])
    np.testing.assert_array_equal(joined, poetml.rasterize(batch, spec))
    # and concatenating the batches back gives the same images too
    np.testing.assert_array_equal(
        poetml.rasterize(concatenate(parts), spec), poetml.rasterize(batch, spec)
    )


@SETTINGS
@given(data=st.data(), spec=specs())
def test_image_sums_equal_selected_in_acceptance_pt(data, spec: ImageSpec) -> None:
    sel = spec.selection
    no_clean = dataclasses.replace(sel, jet=dataclasses.replace(sel.jet, lepton_dr=None))
    spec = ImageSpec(
        **{
            **spec.__dict__,
            "log1p": False,
            "normalize": False,
            "saturate_bits": None,
            "selection": no_clean,
        }
    )
    batch = data.draw(batches(spec.n_eta, spec.n_phi))
    images = poetml.rasterize(batch, spec)
    for c, name in enumerate(spec.channels):
        if name == "met":
            pt, eta = batch.met["pt"], np.zeros(batch.n_events, np.float32)
            event = np.arange(batch.n_events)
            keep = np.ones(batch.n_events, bool)
        else:
            coll = batch[name]
            pt, eta = coll["pt"], coll["eta"]
            event = np.repeat(np.arange(batch.n_events), coll.counts)
            sel = getattr(spec.selection, name)
            keep = (pt >= sel.min_pt) & (np.abs(eta.astype(np.float64)) <= sel.max_abs_eta)
            if getattr(sel, "tight_id", False):
                keep &= coll["tight_id"] > 0.5
            if getattr(sel, "jet_id", False) and "tight_id" in coll.fields:
                keep &= coll["tight_id"] > 0.5  # the jet ID, where the batch has it
            if getattr(sel, "max_iso", None) is not None:
                keep &= coll["iso"].astype(np.float64) <= sel.max_iso
        u = (eta.astype(np.float64) - spec.eta_min) * (spec.n_eta / (spec.eta_max - spec.eta_min))
        keep &= (u >= 0) & (u < spec.n_eta)
        expected = np.bincount(event[keep], weights=pt[keep], minlength=batch.n_events)
        np.testing.assert_allclose(
            images[..., c].sum(axis=(1, 2), dtype=np.float64), expected, rtol=1e-5, atol=1e-4
        )


@SETTINGS
@given(data=st.data(), spec=specs())
def test_threads_give_identical_images(data, spec: ImageSpec) -> None:
    batch = data.draw(batches(spec.n_eta, spec.n_phi, max_events=9))
    one, d1 = poetml.rasterize(batch, spec, n_threads=1, return_dropped=True)
    two, d2 = poetml.rasterize(batch, spec, n_threads=2, return_dropped=True)
    four = poetml.rasterize(batch, spec, n_threads=4)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, four)
    np.testing.assert_array_equal(d1, d2)


@st.composite
def feature_specs(draw) -> FeatureSpec:
    colls = draw(st.permutations(["met", "muon", "electron", "jet", "photon"]))[
        : draw(st.integers(1, 5))
    ]
    slots = tuple((c, 1 if c == "met" else draw(st.integers(0, 5))) for c in colls)
    fields = tuple(
        draw(st.permutations(["pt", "eta", "phi", "charge", "mass", "btag"]))[
            : draw(st.integers(1, 6))
        ]
    )
    quantities = tuple(draw(st.permutations(list(EVENT_QUANTITIES)))[: draw(st.integers(0, 8))])
    selection = draw(st.sampled_from([Selection(), Selection.none()]))
    return FeatureSpec(slots=slots, fields=fields, event_quantities=quantities, selection=selection)


@SETTINGS
@given(data=st.data(), spec=feature_specs())
def test_build_features_matches_reference(data, spec: FeatureSpec) -> None:
    batch = data.draw(batches(max_events=8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        feats, names = poetml.build_features(batch, spec, n_threads=2)
        ref, ref_names = _reference.build_features(batch, spec)
    assert names == ref_names
    assert feats.shape == (batch.n_events, len(names)) == ref.shape
    assert feats.dtype == np.float32
    np.testing.assert_allclose(feats, ref, rtol=1e-6, atol=1e-6)
    # slot values are copies of the inputs: exactly equal
    n_slots = sum(n for _, n in spec.slots) * len(spec.fields)
    np.testing.assert_array_equal(feats[:, :n_slots], ref[:, :n_slots])
    np.testing.assert_array_equal(poetml.build_features(batch, spec, n_threads=1)[0], feats)
    k = data.draw(st.integers(0, batch.n_events))
    parts = np.concatenate(
        [
            poetml.build_features(batch.slice(0, k), spec)[0],
            poetml.build_features(batch.slice(k, batch.n_events), spec)[0],
        ]
    )
    np.testing.assert_array_equal(parts, feats)


@SETTINGS
@given(
    data=st.data(),
    spec=specs(),
    fspec=feature_specs(),
    fill=st.sampled_from([np.nan, np.inf, -1.0, 1e30]),
    threads=st.sampled_from([1, 2]),
)
def test_out_buffer_gives_the_fresh_result(data, spec: ImageSpec, fspec, fill, threads) -> None:
    """A dirty ``out=`` buffer is fully overwritten with exactly the fresh result."""
    batch = data.draw(batches(spec.n_eta, spec.n_phi, max_events=9))
    fresh, dropped = poetml.rasterize(batch, spec, n_threads=1, return_dropped=True)
    out = np.full(fresh.shape, fill, dtype=np.float32)
    got, got_dropped = poetml.rasterize(
        batch, spec, n_threads=threads, return_dropped=True, out=out
    )
    assert got is out
    np.testing.assert_array_equal(out, fresh)
    np.testing.assert_array_equal(got_dropped, dropped)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cuts on absent fields: covered above
        feats, names = poetml.build_features(batch, fspec, n_threads=1)
        fout = np.full(feats.shape, fill, dtype=np.float32)
        got_f, got_names = poetml.build_features(batch, fspec, n_threads=threads, out=fout)
    assert got_f is fout
    assert got_names == names
    np.testing.assert_array_equal(fout, feats)


# --------------------------------------------------------------------------------------
# sparse images: rasterize_sparse -> densify equals rasterize exactly
# --------------------------------------------------------------------------------------


def _check_sparse_form(sparse: poetml.SparseImages, n_events: int, shape: tuple) -> None:
    assert sparse.offsets.dtype == np.int64
    assert sparse.offsets.shape == (n_events + 1,)
    assert sparse.index.dtype == np.int32
    assert sparse.values.dtype == np.float32
    assert sparse.offsets[0] == 0
    assert sparse.offsets[-1] == len(sparse.index)
    assert np.all(np.diff(sparse.offsets) >= 0)
    assert np.all(sparse.values != 0)
    assert np.all((sparse.index >= 0) & (sparse.index < np.prod(shape)))
    for i in range(n_events):  # ascending, each pixel once
        idx = sparse.index[sparse.offsets[i] : sparse.offsets[i + 1]]
        assert np.all(np.diff(idx) > 0)


@SETTINGS
@given(data=st.data(), spec=specs(), threads=st.sampled_from([1, 2, 3]))
def test_rasterize_sparse_densifies_to_rasterize(data, spec: ImageSpec, threads: int) -> None:
    batch = data.draw(batches(spec.n_eta, spec.n_phi, max_events=9))
    images, dropped = poetml.rasterize(batch, spec, return_dropped=True, n_threads=1)
    sparse, sdropped = poetml.rasterize_sparse(batch, spec, return_dropped=True, n_threads=threads)
    _check_sparse_form(sparse, batch.n_events, spec.shape)
    assert sparse.shape == spec.shape
    np.testing.assert_array_equal(sdropped, dropped)
    dense = poetml.densify(sparse, n_threads=threads)
    assert dense.dtype == np.float32
    assert dense.shape == images.shape
    assert dense.tobytes() == images.tobytes()  # bit for bit, every mode and post-processing
    # the entries are exactly the non-zero pixels of the dense images
    assert len(sparse.index) == np.count_nonzero(images)
    # the NumPy twins: same entries (exactly for plain histograms), same densification
    ref = _reference.rasterize_sparse(batch, spec)
    _check_sparse_form(ref, batch.n_events, spec.shape)
    if _plain(spec):
        np.testing.assert_array_equal(ref.offsets, sparse.offsets)
        np.testing.assert_array_equal(ref.index, sparse.index)
        np.testing.assert_array_equal(ref.values, sparse.values)
    else:
        np.testing.assert_allclose(_reference.densify(ref), dense, rtol=2e-6, atol=1e-7)
    assert _reference.densify(sparse).tobytes() == dense.tobytes()
    # a dirty out= buffer gives the same
    out = np.full(images.shape, np.nan, np.float32)
    assert poetml.densify(sparse, out=out) is out
    assert out.tobytes() == images.tobytes()


@SETTINGS
@given(data=st.data(), spec=specs())
def test_rasterize_sparse_split_batches_concatenate(data, spec: ImageSpec) -> None:
    from poetml.images import concatenate_sparse

    batch = data.draw(batches(spec.n_eta, spec.n_phi))
    k = data.draw(st.integers(0, batch.n_events))
    whole = poetml.rasterize_sparse(batch, spec)
    parts = [
        poetml.rasterize_sparse(batch.slice(0, k), spec),
        poetml.rasterize_sparse(batch.slice(k, batch.n_events), spec),
    ]
    joined = concatenate_sparse(parts)
    for a, b in ((joined.offsets, whole.offsets), (joined.index, whole.index)):
        np.testing.assert_array_equal(a, b)
    assert joined.values.tobytes() == whole.values.tobytes()
    back = whole.slice(k, batch.n_events)
    np.testing.assert_array_equal(back.dense(), parts[1].dense())


def _one_event(pt: float, eta: float = 0.1, phi: float = 0.2, n_events: int = 1) -> EventBatch:
    offsets = np.array([0] + [1] * n_events, dtype=np.int64)
    f32 = lambda v: np.array([v], dtype=np.float32)
    muon = Collection(offsets, {"pt": f32(pt), "eta": f32(eta), "phi": f32(phi)})
    zeros = np.zeros(n_events, np.float32)
    return EventBatch(n_events, {"muon": muon}, {"pt": zeros, "phi": zeros})


def test_rasterize_sparse_saturated_to_zero_has_no_entries() -> None:
    spec = ImageSpec(channels=("muon",), saturate_bits=4, lsb_gev=8.0, selection=Selection.none())
    low = poetml.rasterize_sparse(_one_event(7.9), spec)  # floor(7.9 / 8) = 0
    assert low.offsets.tolist() == [0, 0]
    assert len(low.index) == 0
    assert len(low.values) == 0
    assert not poetml.rasterize(_one_event(7.9), spec).any()
    high = poetml.rasterize_sparse(_one_event(200.0), spec)  # min(floor(25), 15) = 15
    assert high.offsets.tolist() == [0, 1]
    assert high.values.tolist() == [15.0]
    # with log1p and normalize on top, the vanished event stays empty
    spec2 = ImageSpec(**{**spec.__dict__, "log1p": True, "normalize": True})
    assert poetml.rasterize_sparse(_one_event(7.9), spec2).offsets.tolist() == [0, 0]


def test_rasterize_sparse_empty_batch_and_empty_events() -> None:
    empty = EventBatch(
        0,
        {"muon": Collection(np.zeros(1, np.int64), {k: np.zeros(0, np.float32) for k in ("pt", "eta", "phi")})},
        {"pt": np.zeros(0, np.float32), "phi": np.zeros(0, np.float32)},
    )  # fmt: skip
    spec = ImageSpec(channels=("muon", "met"))
    s = poetml.rasterize_sparse(empty, spec)
    assert s.offsets.tolist() == [0]
    assert s.n_events == 0
    assert s.dense().shape == (0, 32, 32, 2)
    three = EventBatch(
        3,
        {"muon": Collection(np.zeros(4, np.int64), {k: np.zeros(0, np.float32) for k in ("pt", "eta", "phi")})},
        {"pt": np.zeros(3, np.float32), "phi": np.zeros(3, np.float32)},
    )  # fmt: skip
    s3 = poetml.rasterize_sparse(three, spec)
    assert s3.offsets.tolist() == [0, 0, 0, 0]
    assert not s3.dense().any()


def test_rasterize_sparse_phi_pi_and_edges() -> None:
    spec = ImageSpec(channels=("muon",), n_eta=4, n_phi=8, eta_min=-2.0, eta_max=2.0,
                     selection=Selection.none())  # fmt: skip
    for phi in (math.pi, -math.pi, F32_PI, -F32_PI):
        s = poetml.rasterize_sparse(_one_event(10.0, eta=1.0, phi=phi), spec)  # eta on an edge
        dense = poetml.rasterize(_one_event(10.0, eta=1.0, phi=phi), spec)
        assert s.dense().tobytes() == dense.tobytes()
        ix, iy, c = np.unravel_index(int(s.index[0]), spec.shape)
        assert (ix, c) == (3, 0)
        assert iy in (0, 7)
    # the upper eta edge is outside: dropped, no entry
    s, dropped = poetml.rasterize_sparse(_one_event(10.0, eta=2.0), spec, return_dropped=True)
    assert s.offsets.tolist() == [0, 0]
    assert dropped.tolist() == [1]


def test_densify_rejects_bad_input() -> None:
    import pytest

    from poetml import _core
    from poetml.images import SparseImages

    off = np.array([0, 1, 2], np.int64)
    idx = np.array([3, 5], np.int32)
    val = np.array([1.0, 2.0], np.float32)
    good = _core.densify(off, idx, val, n_eta=2, n_phi=2, n_channels=2)
    assert good.reshape(2, -1)[0, 3] == 1.0
    assert good.reshape(2, -1)[1, 5] == 2.0
    with pytest.raises(
        ValueError, match=r"pixel index 8 of entry 1 \(event 1\) is outside \[0, 8\)"
    ):
        _core.densify(off, np.array([3, 8], np.int32), val, n_eta=2, n_phi=2, n_channels=2)
    with pytest.raises(
        ValueError, match=r"offsets decrease at event 1 \(offsets\[1\] = 2, offsets\[2\] = 1\)"
    ):
        _core.densify(np.array([0, 2, 1, 2], np.int64), idx, val, n_eta=2, n_phi=2, n_channels=2)
    with pytest.raises(ValueError, match="offsets end at 1 but there are 2 entries"):
        _core.densify(np.array([0, 1], np.int64), idx, val, n_eta=2, n_phi=2, n_channels=2)
    with pytest.raises(ValueError, match=r"offsets\[0\] = 1, must be 0"):
        _core.densify(np.array([1, 2], np.int64), idx, val, n_eta=2, n_phi=2, n_channels=2)
    with pytest.raises(TypeError):
        _core.densify(off, idx.astype(np.int64), val, n_eta=2, n_phi=2, n_channels=2)
    with pytest.raises(
        TypeError, match="SparseImages: index must be a 1-D int32 array, got int64 1-D"
    ):
        SparseImages(off, idx.astype(np.int64), val, (2, 2, 2))
    with pytest.raises(
        TypeError, match="SparseImages: values must be a 1-D float32 array, got list"
    ):
        SparseImages(off, idx, [1.0, 2.0], (2, 2, 2))
    with pytest.raises(ValueError, match="2 pixel indices but 1 values"):
        SparseImages(off, idx, val[:1], (2, 2, 2))
    with pytest.raises(ValueError, match=r"densify: out must have shape \(2, 2, 2, 2\)"):
        poetml.densify(
            SparseImages(off, idx, val, (2, 2, 2)), out=np.zeros((1, 2, 2, 2), np.float32)
        )
    with pytest.raises(ValueError, match="outside"):
        _reference.densify(SparseImages(off, np.array([3, 8], np.int32), val, (2, 2, 2)))


@SETTINGS
@given(
    data=st.data(),
    dr=st.sampled_from([0.0, 0.4, 1.0, 3.2, 10.0]),
    selection=st.sampled_from(SELECTIONS[:1] + SELECTIONS[2:]),
    threads=st.sampled_from([1, 2, 3]),
)
def test_clean_jets_matches_reference(data, dr, selection, threads) -> None:
    """Lepton-jet cleaning: the C++ decision equals the NumPy twin's for every jet."""
    from poetml import _core
    from poetml.images import CutParams, core_columns, resolve_cuts

    batch = data.draw(batches())
    jets, _ = core_columns(batch, "jet", CutParams())
    leps = [
        core_columns(batch, n, resolve_cuts(selection, n, batch[n])) for n in ("muon", "electron")
    ]
    got = _core.clean_jets(jets, leps, dr, n_threads=threads)
    ref = _reference.clean_jets(
        _reference._objects(batch, "jet"),
        [
            (_reference._objects(batch, n), resolve_cuts(selection, n, batch[n]))
            for n in ("muon", "electron")
        ],
        dr,
    )
    np.testing.assert_array_equal(got, ref)
    if dr == 0.0:
        assert np.all(got == 1.0)  # Delta R < 0 never holds


def test_clean_jets_across_phi_pi_and_only_selected_leptons() -> None:
    """A jet at phi = +pi and a muon at phi = -pi are the same direction; a muon failing
    the selection (not tight) cleans nothing; each event sees only its own leptons."""
    from poetml.images import clean_jets

    jets = Collection(
        np.array([0, 2, 3], np.int64),
        {
            "pt": np.array([50.0, 40.0, 60.0], np.float32),
            "eta": np.array([0.5, -1.0, 0.5], np.float32),
            "phi": np.array([np.pi, 0.0, np.pi], np.float32),
        },
    )
    mu = Collection(
        np.array([0, 2, 2], np.int64),
        {
            "pt": np.array([30.0, 30.0], np.float32),
            "eta": np.array([0.5, -1.1], np.float32),
            "phi": np.array([-np.pi, 0.1], np.float32),
            "tight_id": np.array([1.0, 0.0], np.float32),
            "iso": np.array([0.01, 0.01], np.float32),
        },
    )
    el = Collection.empty(2)
    batch = EventBatch(2, {"jet": jets, "muon": mu, "electron": el}, {})
    out = clean_jets(batch, Selection())
    # event 0: the first jet overlaps the tight muon; the second's muon is not tight
    assert out["jet"]["pt"].tolist() == [40.0, 60.0]
    assert out["jet"].offsets.tolist() == [0, 1, 2]
    assert clean_jets(batch, Selection(jet=JetSelection(lepton_dr=None))) is batch
    from poetml import _core
    from poetml.images import CutParams, core_columns

    jet_columns = core_columns(batch, "jet", CutParams())[0]
    with pytest.raises(ValueError, match="dr must be finite"):
        _core.clean_jets(jet_columns, [], float("nan"))
