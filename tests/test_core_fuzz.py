"""Fuzz tests of the poetml._core bindings, called directly (not through poetml.images /
poetml.features, which check much of this in Python first).

Random offsets (non-monotonic, not starting at 0, a wrong last value, negative, huge),
mismatched lengths, wrong dtypes and layouts, NaN / inf values, huge counts, empty and
single-event batches.  Bad input must give ValueError (values) or TypeError (types) with
a message naming the offending value, and never a crash or an attempt to allocate an
absurd output; good input must agree with poetml._reference.  ``.ci/sanitize`` runs this
file against a build of _core with AddressSanitizer and UndefinedBehaviorSanitizer.
"""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poetml import _core, _reference
from poetml.features import FeatureSpec
from poetml.images import ImageSpec, core_columns, resolve_cuts, spec_kwargs
from poetml.jagged import Collection, EventBatch
from poetml.selection import Selection

FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

FIELDS = ("eta", "charge", "mass", "tight_id", "iso", "btag")
GEOMETRY = {"n_eta": 4, "n_phi": 5, "eta_min": -2.0, "eta_max": 2.0}
HUGE = [2**31, 2**40, 2**62, 2**63 - 1]


def _columns(offsets, n: int, name: str = "muon", **override):
    """Columns of ``n`` zero-pT objects at (eta, phi) = (0, 0) with every field."""
    z = np.zeros(n, np.float32)
    arrays = {"pt": z, "phi": z, **{f: z for f in FIELDS}, **override}
    return _core.Columns(name, offsets, arrays.pop("pt"), arrays.pop("phi"), **arrays)


def _raster(channels, n_events: int, **kw):
    return _core.rasterize(channels, n_events, **{**GEOMETRY, "n_threads": 2, **kw})


# --------------------------------------------------------------------------------------
# offsets and lengths
# --------------------------------------------------------------------------------------


@st.composite
def offsets_and_n(draw) -> tuple[np.ndarray, int]:
    """Offsets, mostly broken one way or another, and the number of objects."""
    counts = draw(st.lists(st.integers(0, 3), min_size=0, max_size=6))
    off = [0, *np.cumsum(counts).tolist()]
    n = off[-1]
    kind = draw(st.sampled_from(["valid", "start", "decrease", "end", "value", "n"]))
    if kind == "start":
        off[0] = draw(st.sampled_from([1, -1, *HUGE, -(2**63)]))
    elif kind == "decrease" and len(off) > 2:
        i = draw(st.integers(1, len(off) - 2))
        off[i] = off[i + 1] + draw(st.sampled_from([1, 7, 2**40]))
    elif kind == "end":
        off[-1] = draw(st.sampled_from([off[-1] + 1, off[-1] - 1, -5, *HUGE]))
    elif kind == "value":  # anything at a random place
        i = draw(st.integers(0, len(off) - 1))
        off[i] = draw(st.sampled_from([-1, -(2**63), *HUGE]))
    elif kind == "n":
        n = draw(st.sampled_from([n + 1, max(n - 1, 0), n + 100]))
    return np.array(off, dtype=np.int64), n


def _offsets_error(off: np.ndarray, n: int) -> str | None:
    """The message the core must give for these offsets, None when they are valid."""
    if off[0] != 0:
        return f"offsets[0] = {off[0]}, must be 0"
    for i in range(len(off) - 1):
        if off[i + 1] < off[i]:
            return (
                f"offsets decrease at event {i} (offsets[{i}] = {off[i]}, "
                f"offsets[{i + 1}] = {off[i + 1]})"
            )
    if off[-1] != n:
        return f"offsets end at {off[-1]} but the columns hold {n} objects"
    return None


@FUZZ
@given(case=offsets_and_n(), pt=st.floats(0.0, 100.0, width=32))
def test_random_offsets(case, pt: float) -> None:
    off, n = case
    n_events = len(off) - 1
    cols = _columns(off, n, pt=np.full(n, pt, np.float32))
    assert cols.n_events == n_events
    assert cols.n_objects == n
    expected = _offsets_error(off, n)
    slots = [(0, 2, [np.zeros(n, np.float32), None])]
    if expected is not None:
        with pytest.raises(ValueError, match=re.escape(f"collection 'muon': {expected}")):
            _raster([(cols, _core.Cuts())], n_events)
        with pytest.raises(ValueError, match=re.escape(f"collection 'muon': {expected}")):
            _core.rasterize_sparse([(cols, _core.Cuts())], n_events, **GEOMETRY)
        with pytest.raises(ValueError, match=re.escape(expected)):
            _core.build_features([(cols, _core.Cuts())], n_events, slots)
        return
    images, dropped = _raster([(cols, _core.Cuts())], n_events)
    fields = {"pt": np.full(n, pt), "eta": np.zeros(n), "phi": np.zeros(n)}
    batch = EventBatch(n_events, {"muon": Collection(off, fields)})
    spec = ImageSpec(**GEOMETRY, channels=("muon",), selection=Selection.none())
    ref, ref_dropped = _reference.rasterize(batch, spec, return_dropped=True)
    np.testing.assert_array_equal(images, ref)
    np.testing.assert_array_equal(dropped, ref_dropped)
    s_off, s_idx, s_val, s_dropped = _core.rasterize_sparse([(cols, _core.Cuts())], n_events,
                                                            **GEOMETRY)  # fmt: skip
    np.testing.assert_array_equal(s_dropped, dropped)
    dense = _core.densify(s_off, s_idx, s_val, n_eta=4, n_phi=5, n_channels=1)
    assert dense.tobytes() == images.tobytes()
    feats = _core.build_features([(cols, _core.Cuts())], n_events, slots)
    assert feats.shape == (n_events, 4)
    assert not feats.any()


def test_offsets_shape_and_event_count() -> None:
    z = np.zeros(0, np.float32)
    with pytest.raises(ValueError, match=r"'muon': offsets must be 1-D .*got shape \(0,\)"):
        _core.Columns("muon", np.zeros(0, np.int64), z, z)
    with pytest.raises(ValueError, match=r"offsets must be 1-D .*got shape \(1, 1\)"):
        _core.Columns("muon", np.zeros((1, 1), np.int64), z, z)
    with pytest.raises(TypeError, match=r"collection 'muon', field 'pt': expected a 1-D array"):
        _core.Columns("muon", np.zeros(1, np.int64), z.reshape(0, 1), z)
    cols = _columns(np.array([0, 1], np.int64), 1)
    for n_events in (0, 2, *HUGE):
        msg = f"collection 'muon' has 1 events, expected {n_events}"
        with pytest.raises(ValueError, match=msg):
            _raster([(cols, _core.Cuts())], n_events)
        with pytest.raises(ValueError, match=msg):
            _core.build_features([(cols, _core.Cuts())], n_events, [])
    for n_events in (-1, -(2**63)):
        with pytest.raises(ValueError, match=rf"n_events must be >= 0, got {n_events}"):
            _raster([(cols, _core.Cuts())], n_events)
        with pytest.raises(ValueError, match=rf"n_events must be >= 0, got {n_events}"):
            _core.build_features([(cols, _core.Cuts())], n_events, [])
    # MET-like columns (offsets None): one value per event
    met = _core.Columns("met", None, np.ones(3, np.float32), np.zeros(3, np.float32))
    assert met.n_events == 3
    with pytest.raises(ValueError, match=r"collection 'met' has 3 events, expected 4"):
        _raster([(met, _core.Cuts())], 4)


@FUZZ
@given(
    n=st.integers(0, 5),
    field=st.sampled_from(["phi", *FIELDS]),
    delta=st.sampled_from([-1, 1, 3]),
)
def test_mismatched_lengths(n: int, field: str, delta: int) -> None:
    bad = n + delta if n + delta >= 0 else n + 1
    off = np.array([0, n], np.int64)
    with pytest.raises(
        ValueError,
        match=re.escape(f"collection 'muon', field '{field}' has {bad} values, pt has {n}"),
    ):
        _columns(off, n, **{field: np.zeros(bad, np.float32)})
    # feature columns of the wrong length
    cols = _columns(off, n)
    with pytest.raises(
        ValueError,
        match=re.escape(f"collection 'muon', feature column 1: {bad} values, expected {n}"),
    ):
        _core.build_features([(cols, _core.Cuts())], 1, [(0, 1, [None, np.zeros(bad, np.float32)])])


# --------------------------------------------------------------------------------------
# dtypes and layouts
# --------------------------------------------------------------------------------------

WRONG_FLOAT = ["float64", "float16", "int32", "int64", "uint8", "bool", "complex64", "object"]
WRONG_INT = ["int32", "uint64", "float64", "int8", "bool", "object"]


@FUZZ
@given(
    field=st.sampled_from(["offsets", "pt", "phi", *FIELDS]),
    kind=st.sampled_from(["dtype", "strided", "list", "scalar"]),
    data=st.data(),
)
def test_wrong_dtype_or_layout_is_type_error(field: str, kind: str, data) -> None:
    n = 3
    off = np.array([0, 1, 3], np.int64)
    good = off if field == "offsets" else np.zeros(n, np.float32)
    if kind == "dtype":
        dtype = data.draw(st.sampled_from(WRONG_INT if field == "offsets" else WRONG_FLOAT))
        bad = good.astype(dtype)
        expect = f"dtype {np.dtype(dtype)}"
    elif kind == "strided":
        bad = np.repeat(good, 2)[::2]
        expect = "non-contiguous"
    elif kind == "list":
        bad, expect = good.tolist(), "got list"
    else:
        bad, expect = 1.5, "got float"
    what = "offsets" if field == "offsets" else f"field '{field}'"
    if field == "offsets":
        make = functools.partial(
            _core.Columns, "muon", bad, np.zeros(n, np.float32), np.zeros(n, np.float32)
        )
    else:
        make = functools.partial(_columns, off, n, **{field: bad})
    with pytest.raises(TypeError, match=re.escape(f"collection 'muon', {what}: ") + ".*" + expect):
        make()
    # the feature columns, checked one by one inside the slots list
    if field not in ("offsets", "pt", "phi") and kind == "dtype":
        cols = _columns(off, n)
        with pytest.raises(TypeError, match=re.escape("feature column 0: ") + ".*" + expect):
            _core.build_features([(cols, _core.Cuts())], 2, [(0, 1, [bad])])


def test_columns_argument_errors() -> None:
    z = np.zeros(1, np.float32)
    off = np.array([0, 1], np.int64)
    with pytest.raises(TypeError, match=r"name must be a str, got int"):
        _core.Columns(5, off, z, z)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'energy'"):
        _core.Columns("muon", off, z, z, energy=z)
    with pytest.raises(TypeError, match=r"field 'pt': .* got None"):
        _core.Columns("muon", off, None, z)
    with pytest.raises(TypeError, match=r"field 'phi': missing"):
        _core.Columns("muon", off, z)
    with pytest.raises(TypeError, match=r"at most 4 positional arguments"):
        _core.Columns("muon", off, z, z, z)


@FUZZ
@given(
    shape_delta=st.sampled_from([(0, 0), (1, 0), (0, -1)]),
    kind=st.sampled_from(["dtype", "strided", "readonly", "list"]),
)
def test_bad_out_arrays(shape_delta, kind: str) -> None:
    cols = _columns(np.array([0, 1, 1], np.int64), 1)
    shape = (2 + shape_delta[0], 4, 5 + shape_delta[1], 1)
    if kind == "dtype":
        out, err = np.zeros(shape, np.float64), TypeError
        msg = "out must have dtype float32, got float64"
    elif kind == "list":
        out, err, msg = [], TypeError, "got list"
    elif shape != (2, 4, 5, 1):
        out, err = np.zeros(shape, np.float32), ValueError
        msg = f"out must have shape (2, 4, 5, 1), got {shape}"
    elif kind == "strided":
        out, err = np.zeros((2, 4, 10, 1), np.float32)[:, :, ::2], ValueError
        msg = "out must be C-contiguous"
    else:
        out = np.zeros(shape, np.float32)
        out.flags.writeable = False
        err, msg = ValueError, "out must be writeable"
    with pytest.raises(err, match=re.escape(f"rasterize: {msg}") if kind != "list" else msg):
        _raster([(cols, _core.Cuts())], 2, out=out)


# --------------------------------------------------------------------------------------
# NaN, inf and negative values
# --------------------------------------------------------------------------------------

#: how the core prints the bad values (C++ ostream)
BAD_VALUES = {math.nan: "nan", math.inf: "inf", -math.inf: "-inf", -1.0: "-1", -2.5: "-2.5"}


@FUZZ
@given(
    counts=st.lists(st.integers(0, 3), min_size=1, max_size=5),
    field=st.sampled_from(["pt", "eta", "phi", "mass"]),
    value=st.sampled_from(list(BAD_VALUES)),
    data=st.data(),
)
def test_non_finite_values_are_value_errors(counts, field, value, data) -> None:
    n = sum(counts)
    if n == 0 or (value < 0 and math.isfinite(value) and field != "pt"):
        return  # nothing to break / a negative eta, phi or mass is fine
    k = data.draw(st.integers(0, n - 1))
    off = np.array([0, *np.cumsum(counts)], np.int64)
    event = int(np.searchsorted(off, k, side="right") - 1)
    column = np.ones(n, np.float32)
    column[k] = value
    cols = _columns(off, n, **{field: column})
    msg = (
        f"collection 'muon', field '{field}': value {BAD_VALUES[value]} at event {event} "
        f"(object {k - off[event]} of the event, flat index {k}) is "
        + ("negative" if math.isfinite(value) else "not finite")
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        _raster([(cols, _core.Cuts())], len(counts))
    with pytest.raises(ValueError, match=re.escape(msg)):
        _core.build_features([(cols, _core.Cuts())], len(counts), [])


@pytest.mark.parametrize(
    ("cut", "value"),
    [
        ("min_pt", math.nan),
        ("min_pt", math.inf),
        ("max_abs_eta", math.nan),
        ("max_abs_eta", -math.inf),
        ("max_iso", math.nan),
        ("max_iso", -math.inf),
    ],
)
def test_nan_cuts_select_nothing(cut: str, value: float) -> None:
    off = np.array([0, 2, 3], np.int64)
    cols = _columns(off, 3, pt=np.full(3, 10.0, np.float32))
    images, dropped = _raster([(cols, _core.Cuts(**{cut: value}))], 2)
    assert not images.any()
    assert not dropped.any()


# --------------------------------------------------------------------------------------
# huge counts: refused before anything is allocated
# --------------------------------------------------------------------------------------


@FUZZ
@given(
    n_eta=st.sampled_from([1, 2**40, 2**62, 2**63 - 1]),
    n_phi=st.sampled_from([1, 2**40, 2**62, 2**63 - 1]),
    n_ch=st.integers(1, 3),
)
def test_huge_images_are_refused(n_eta: int, n_phi: int, n_ch: int) -> None:
    empty = np.array([0, 0], np.int64)
    chans = [(_columns(empty, 0, name=f"c{i}"), _core.Cuts()) for i in range(n_ch)]
    kw = {**GEOMETRY, "n_eta": n_eta, "n_phi": n_phi}
    if n_eta * n_phi == 1:
        images, _ = _core.rasterize(chans, 1, **kw)
        assert images.shape == (1, 1, 1, n_ch)
        return
    shape = f"(1, {n_eta}, {n_phi}, {n_ch})"
    with pytest.raises(ValueError, match=re.escape(f"rasterize: output of shape {shape} needs ")):
        _core.rasterize(chans, 1, **kw)
    with pytest.raises(
        ValueError, match=re.escape(f"working image per thread): output of shape {shape} needs ")
    ):
        _core.rasterize_sparse(chans, 1, **kw, n_threads=1)
    with pytest.raises(ValueError, match=re.escape(f"densify: output of shape {shape} needs ")):
        _core.densify(np.zeros(2, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32),
                      n_eta=n_eta, n_phi=n_phi, n_channels=n_ch)  # fmt: skip


@FUZZ
@given(case=offsets_and_n(), data=st.data())
def test_densify_random_offsets_and_indices(case, data) -> None:
    """Broken offsets or indices outside the image: a ValueError naming them, never a
    crash; valid ones: the NumPy twin's images."""
    from poetml.images import SparseImages

    off, n = case
    per_event = 2 * 3 * 2
    index = np.asarray(
        data.draw(st.lists(st.integers(0, per_event - 1), min_size=n, max_size=n)), np.int32
    )
    bad = data.draw(st.sampled_from([None, -1, per_event, 2**31 - 1, -(2**31)]))
    if bad is not None and n:
        index[data.draw(st.integers(0, n - 1))] = bad
    values = np.arange(1, n + 1, dtype=np.float32)
    expected = _offsets_error(off, n)
    kw = {"n_eta": 2, "n_phi": 3, "n_channels": 2}
    if expected is not None:
        expected = expected.replace("the columns hold", "there are").replace(" objects", " entries")
        with pytest.raises(ValueError, match=re.escape(f"densify: {expected}")):
            _core.densify(off, index, values, **kw)
        return
    outside = np.flatnonzero((index < 0) | (index >= per_event))
    if len(outside):
        k = int(outside[0])
        with pytest.raises(ValueError, match=re.escape(f"pixel index {index[k]} of entry {k} ")):
            _core.densify(off, index, values, **kw)
        return
    got = _core.densify(off, index, values, **kw, n_threads=2)
    want = _reference.densify(SparseImages(off, index, values, (2, 3, 2)))
    # a pixel given twice in one event keeps the last value, in both
    np.testing.assert_array_equal(got, want)


@FUZZ
@given(
    count=st.sampled_from([-1, -(2**63), 2**40, 2**61, 2**62, 2**63 - 1]),
    n_columns=st.integers(1, 3),
    quantities=st.booleans(),
)
def test_huge_feature_counts_are_refused(count: int, n_columns: int, quantities: bool) -> None:
    cols = _columns(np.array([0, 1], np.int64), 1)
    slots = [(0, 1, [None]), (0, count, [None] * n_columns)]
    kw = {"event_quantities": ["n_muon"] * 3, "muon": 0} if quantities else {}
    if count < 0:
        msg = f"slot 1 (collection 'muon'): count must be >= 0, got {count}"
    elif count * n_columns > 2**63 - 1 - 1:
        msg = f"slot 1 (collection 'muon'): count {count} x {n_columns} columns overflows"
    else:
        msg = "build_features: output of shape (1, "
    with pytest.raises(ValueError, match=re.escape(msg)):
        _core.build_features([(cols, _core.Cuts())], 1, slots, **kw)
    with pytest.raises(ValueError, match=r"slot 0 refers to collection 3 of 1"):
        _core.build_features([(cols, _core.Cuts())], 1, [(3, 1, [None])])


@pytest.mark.parametrize("n_events", [0, 1, 2**40, 2**56])
def test_outputs_without_channels_or_features(n_events: int) -> None:
    """No channels / no features: an empty output, returned at once for any n_events
    whose other dimensions numpy can multiply."""
    images, dropped = _core.rasterize([], n_events, **GEOMETRY)
    assert images.shape == (n_events, 4, 5, 0)
    assert dropped.shape == (0,)
    assert _core.build_features([], n_events, []).shape == (n_events, 0)


def test_empty_outputs_numpy_cannot_shape_are_refused() -> None:
    n = 2**63 - 1
    msg = f"rasterize: output of shape ({n}, 4, 5, 0) needs more than 2^63 bytes"
    with pytest.raises(ValueError, match=re.escape(msg)):
        _core.rasterize([], n, **GEOMETRY)


def test_bad_spec_values_are_named() -> None:
    cols = _columns(np.array([0, 1], np.int64), 1)
    ch = [(cols, _core.Cuts())]
    for kw, msg in [
        ({"saturate_bits": 32}, "saturate_bits must be in [1, 31] (0: off), got 32"),
        ({"saturate_bits": -3}, "got -3"),
        ({"mode": "gaussian", "sigma": 0.0}, "sigma must be in (0, 1000] pixels, got 0"),
        ({"mode": "gaussian", "sigma": 1e9}, "sigma must be in (0, 1000] pixels"),
        ({"mode": "gaussian", "sigma": math.nan}, "sigma must be in (0, 1000] pixels"),
        ({"mode": "hexagon"}, "unknown mode 'hexagon'"),
        ({"n_eta": 0}, "n_eta and n_phi must be positive"),
        ({"n_phi": -(2**62)}, f"n_eta and n_phi must be positive, got 4 x {-(2**62)}"),
        ({"eta_min": math.nan}, "eta_max must be larger than eta_min (both finite), got eta_min"),
        ({"mode": "glyph", "glyph_radius0": math.inf}, "glyph_radius0 = inf"),
        ({"saturate_bits": 3, "lsb_gev": -1.0}, "lsb_gev must be positive and finite, got -1"),
        ({"n_threads": -2}, "n_threads must be >= 0 (0: all cores), got -2"),
    ]:
        with pytest.raises(ValueError, match=re.escape(msg)):
            _raster(ch, 1, **kw)
    with pytest.raises(ValueError, match=re.escape("unknown event quantity 'n_tau'")):
        _core.build_features(ch, 1, [], event_quantities=["n_tau"])
    with pytest.raises(ValueError, match="event quantity 'm_jj' needs the jet collection"):
        _core.build_features(ch, 1, [], event_quantities=["m_jj"], jet=5)


# --------------------------------------------------------------------------------------
# valid random input: the bindings agree with poetml._reference
# --------------------------------------------------------------------------------------

F32_MAX = float(np.finfo(np.float32).max)
ODD_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-45, F32_MAX]


@st.composite
def jagged(draw, n_events: int) -> Collection:
    counts = draw(st.lists(st.integers(0, 4), min_size=n_events, max_size=n_events))
    n = sum(counts)

    def col(elements):
        return np.asarray(draw(st.lists(elements, min_size=n, max_size=n)), np.float32)

    # far outside the image (dropped) or at |phi| < 1e15, where the binning is exact
    far = st.sampled_from([-700.0, 700.0, -1e30, 1e30, F32_MAX])
    fields = {
        "pt": col(st.one_of(st.floats(0.0, F32_MAX, width=32), st.sampled_from([0.0, 1e-45]))),
        "eta": col(st.one_of(st.floats(-4.0, 4.0, width=32), far)),
        "phi": col(st.one_of(st.floats(-7.0, 7.0, width=32), st.sampled_from([-1e6, 1e6]))),
        "mass": col(st.floats(0.0, 50.0, width=32)),
        # fields the core does not validate: anything, NaN included
        "charge": col(st.one_of(st.sampled_from([-1.0, 1.0]), st.sampled_from(ODD_FLOATS))),
        "tight_id": col(st.one_of(st.sampled_from([0.0, 1.0]), st.sampled_from(ODD_FLOATS))),
        "iso": col(st.one_of(st.floats(0.0, 0.375, width=32), st.sampled_from(ODD_FLOATS))),
        "btag": col(st.one_of(st.floats(0.0, 1.0, width=32), st.sampled_from(ODD_FLOATS))),
    }
    return Collection(np.array([0, *np.cumsum(counts)], np.int64), fields)


@st.composite
def random_batches(draw) -> EventBatch:
    n = draw(st.sampled_from([0, 1, 1, 2, 5]))
    colls = {c: draw(jagged(n)) for c in ("muon", "electron", "jet")}
    met = {
        "pt": np.asarray(
            draw(st.lists(st.floats(0.0, 500.0, width=32), min_size=n, max_size=n)), np.float32
        ),
        "phi": np.asarray(
            draw(st.lists(st.floats(-4.0, 4.0, width=32), min_size=n, max_size=n)), np.float32
        ),
    }
    return EventBatch(n, colls, met)


@st.composite
def image_specs(draw) -> ImageSpec:
    channels = draw(st.permutations(["muon", "electron", "jet", "met"]))[: draw(st.integers(1, 4))]
    return ImageSpec(
        n_eta=draw(st.sampled_from([1, 2, 7])),
        n_phi=draw(st.sampled_from([1, 2, 6])),
        eta_min=draw(st.sampled_from([-2.5, -1e-3, 0.0])),
        eta_max=draw(st.sampled_from([2.5, 1e-3 + 1e-9, 40.0])),
        channels=tuple(channels),
        mode=draw(st.sampled_from(["histogram", "gaussian", "glyph"])),
        sigma=draw(st.sampled_from([1e-3, 0.5, 2.0, 10.0])),
        # huge finite radii: the ring window must be capped, not overflow
        glyph_radius0=draw(st.sampled_from([0.0, 1.0, -1e300, 1e300])),
        glyph_radius_per_log=draw(st.sampled_from([0.0, 0.5, -3.0, 1e300])),
        glyph_width=draw(st.sampled_from([0.0, 1.0, 1000.0])),
        glyph_width_positive=draw(st.sampled_from([0.0, 2.0])),
        log1p=draw(st.booleans()),
        normalize=draw(st.booleans()),
        saturate_bits=draw(st.sampled_from([None, 1, 31])),
        lsb_gev=draw(st.sampled_from([1e-30, 0.5, 1e30])),
        selection=draw(st.sampled_from([Selection(), Selection.none()])),
    )


def _channels(batch: EventBatch, spec: ImageSpec) -> list:
    out = []
    for name in spec.channels:
        coll = None if name == "met" else batch[name]
        cuts = resolve_cuts(spec.selection, name, coll)
        out.append(core_columns(batch, name, cuts, ("charge",) if spec.mode == "glyph" else ()))
    return out


@FUZZ
@given(
    batch=random_batches(), spec=image_specs(), threads=st.sampled_from([1, 3]), reuse=st.booleans()
)
def test_rasterize_random_valid_input_matches_reference(batch, spec, threads, reuse) -> None:
    shape = (batch.n_events, *spec.shape)
    out = np.full(shape, np.nan, np.float32) if reuse else None
    # the raw kernel takes the jets as given: lepton-jet cleaning is the Python layer's step
    # before it (poetml.rasterize), so the kernel gets the batch the twin's cleaning leaves
    kernel_batch = _reference._clean(batch, spec.selection) if "jet" in spec.channels else batch
    with np.errstate(all="ignore"):  # pT near float32 max overflows in the twin's sums too
        images, dropped = _core.rasterize(
            _channels(kernel_batch, spec),
            batch.n_events,
            **spec_kwargs(spec),
            n_threads=threads,
            out=out,
        )
        ref, ref_dropped = _reference.rasterize(batch, spec, return_dropped=True)
    assert images.shape == shape
    if reuse:
        assert images is out
    np.testing.assert_array_equal(dropped, ref_dropped)
    np.testing.assert_allclose(images, ref, rtol=2e-6, atol=1e-7, equal_nan=True)


@FUZZ
@given(batch=random_batches(), data=st.data(), threads=st.sampled_from([1, 3]))
def test_build_features_random_valid_input_matches_reference(batch, data, threads) -> None:
    import poetml

    colls = data.draw(st.permutations(["met", "muon", "electron", "jet"]))
    slots = tuple((c, 1 if c == "met" else data.draw(st.integers(0, 6))) for c in colls[:3])
    fields = tuple(data.draw(st.permutations(["pt", "eta", "phi", "charge", "mass", "btag"]))[:3])
    quantities = tuple(
        data.draw(st.permutations(["ht", "met", "n_muon", "n_jet", "n_bjet", "m_mumu", "m_jj"]))[:4]
    )
    spec = FeatureSpec(
        slots=slots,
        fields=fields,
        event_quantities=quantities,
        selection=data.draw(st.sampled_from([Selection(), Selection.none()])),
    )
    with np.errstate(all="ignore"):
        feats, names = poetml.build_features(batch, spec, n_threads=threads)
        ref, ref_names = _reference.build_features(batch, spec)
    assert names == ref_names
    assert feats.shape == ref.shape == (batch.n_events, len(names))
    np.testing.assert_allclose(feats, ref, rtol=1e-6, atol=1e-6, equal_nan=True)
