"""poetml.rasterize on hand-made events: pixels, modes, options, selections, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import poetml
from poetml import _core, _reference
from poetml.images import ImageSpec
from poetml.jagged import Collection, EventBatch
from poetml.selection import JetSelection, Selection

NO_CUTS = Selection.none()


def _coll(counts, **fields):
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Collection(offsets, {k: np.asarray(v, dtype=np.float32) for k, v in fields.items()})


def make_batch(muon=None, jet=None, electron=None, met_pt=None, met_phi=None, n=None):
    """A batch from per-event lists of (pt, eta, phi[, charge]) tuples."""
    lists = {"muon": muon, "jet": jet, "electron": electron}
    n = n if n is not None else max(len(v) for v in lists.values() if v is not None)
    colls = {}
    for name, events in lists.items():
        events = events if events is not None else [[] for _ in range(n)]
        objs = [o for ev in events for o in ev]
        fields = {
            "pt": [o[0] for o in objs],
            "eta": [o[1] for o in objs],
            "phi": [o[2] for o in objs],
            "charge": [o[3] if len(o) > 3 else -1.0 for o in objs],
            "tight_id": [1.0] * len(objs),
            "iso": [0.0] * len(objs),
            "btag": [0.0] * len(objs),
        }
        colls[name] = _coll([len(ev) for ev in events], **fields)
    met = {
        "pt": np.asarray(met_pt if met_pt is not None else [0.0] * n, np.float32),
        "phi": np.asarray(met_phi if met_phi is not None else [0.0] * n, np.float32),
    }
    return EventBatch(n, colls, met)


def test_default_spec_shape_and_pixels() -> None:
    # eta 0.01 -> row floor(2.51 * 6.4) = 16; phi 0.01 -> column 16
    batch = make_batch(
        muon=[[(10.0, 0.01, 0.01)], []],
        jet=[[(40.0, -1.0, -1.0)], [(50.0, 1.0, 2.0)]],
        met_pt=[20.0, 5.0],
        met_phi=[-1.5, 0.0],
    )
    images = poetml.rasterize(batch)
    assert images.shape == (2, 32, 32, 4)
    assert images.dtype == np.float32
    assert images.flags.c_contiguous
    assert images[0, 16, 16, 0] == 10.0
    # jet at eta -1 -> row floor(1.5 * 6.4) = 9; phi -1 -> floor((pi - 1) * 32 / 2pi) = 10
    assert images[0, 9, 10, 2] == 40.0
    assert images[1, 22, 26, 2] == 50.0  # eta 1 -> 22, phi 2 -> floor((pi + 2) * 32/2pi) = 26
    # MET at eta 0 (row 16), phi -1.5 -> column floor(8.36) = 8, channel 3
    assert images[0, 16, 8, 3] == 20.0
    assert images[1, 16, 16, 3] == 5.0
    assert np.count_nonzero(images) == 5


def test_channels_follow_spec_order_and_same_pixel_sums() -> None:
    batch = make_batch(muon=[[(10.0, 0.0, 0.0), (5.0, 0.01, 0.01)]], jet=[[(35.0, 0.0, 0.0)]])
    no_clean = Selection(jet=JetSelection(lepton_dr=None))
    spec = ImageSpec(channels=("jet", "muon"), selection=no_clean)
    images = poetml.rasterize(batch, spec)
    assert images.shape == (1, 32, 32, 2)
    assert images[0, 16, 16, 0] == 35.0
    assert images[0, 16, 16, 1] == 15.0
    # the default selection cleans the jet: it is the muons (Delta R < 0.4), not a jet
    images = poetml.rasterize(batch, ImageSpec(channels=("jet", "muon")))
    assert images[0, ..., 0].sum() == 0.0
    assert images[0, 16, 16, 1] == 15.0


def test_phi_wraps_and_eta_edges() -> None:
    pi32 = float(np.float32(math.pi))
    objs = [
        (1.0, -2.5, -math.pi),  # eta_min is inside: row 0; float32(-pi) < -pi -> column 31
        (2.0, 2.5, 0.0),  # eta_max is outside: dropped
        (4.0, 0.0, pi32),  # float32(pi) > pi -> column 32 -> wraps to 0
        (8.0, 0.0, 3.5),  # beyond pi: wraps
        (16.0, 2.7, 0.0),  # outside: dropped
        (32.0, -0.15625, -math.pi + 2 * math.pi / 32 * 3),  # exactly on an eta edge: row 15
    ]
    batch = make_batch(muon=[objs])
    spec = ImageSpec(channels=("muon",), selection=NO_CUTS)
    images, dropped = poetml.rasterize(batch, spec, return_dropped=True)
    assert dropped.tolist() == [2]
    assert dropped.dtype == np.int64
    assert images[0, 0, 31, 0] == 1.0
    assert images[0, 16, 0, 0] == 4.0
    iy = math.floor((3.5 + math.pi) * 32 / (2 * math.pi)) % 32
    assert images[0, 16, iy, 0] == 8.0
    iy32 = math.floor(
        (float(np.float32(-math.pi + 2 * math.pi / 32 * 3)) + math.pi) * (32 / (2 * math.pi))
    )
    assert images[0, 15, iy32 % 32, 0] == 32.0
    assert images.sum() == 45.0


def test_selection_applied_in_core() -> None:
    muons = [(20.0, 0.0, 0.0), (2.0, 0.0, 1.0), (20.0, 2.45, 1.0)]  # passes, low pt, |eta| > 2.4
    batch = make_batch(muon=[muons], jet=[[(25.0, 0.0, 0.0), (31.0, 0.0, 2.0)]])
    images, dropped = poetml.rasterize(
        batch, ImageSpec(channels=("muon", "jet")), return_dropped=True
    )
    assert images[..., 0].sum() == 20.0
    assert images[..., 1].sum() == 31.0
    assert dropped.tolist() == [0, 0]  # failing the selection is not "dropped"
    loose = poetml.rasterize(batch, ImageSpec(channels=("muon", "jet"), selection=NO_CUTS))
    assert loose[..., 0].sum() == 42.0
    assert loose[..., 1].sum() == 56.0


def test_id_and_isolation_cuts_and_missing_field_warning() -> None:
    offsets = np.array([0, 3], np.int64)
    fields = {
        "pt": np.array([10, 20, 40], np.float32),
        "eta": np.zeros(3, np.float32),
        "phi": np.array([0.0, 1.0, 2.0], np.float32),
        "tight_id": np.array([1, 0, 1], np.float32),
        "iso": np.array([0.1, 0.1, 0.5], np.float32),
    }
    met = {"pt": np.zeros(1, np.float32), "phi": np.zeros(1, np.float32)}
    batch = EventBatch(1, {"muon": Collection(offsets, fields)}, met)
    spec = ImageSpec(channels=("muon",))
    assert poetml.rasterize(batch, spec).sum() == 10.0  # tight and iso <= 0.15
    no_iso = EventBatch(
        1, {"muon": Collection(offsets, {k: v for k, v in fields.items() if k != "iso"})}, met
    )
    with pytest.warns(UserWarning, match="no muon field 'iso'"):
        assert poetml.rasterize(no_iso, spec).sum() == 50.0
    no_id = EventBatch(
        1, {"muon": Collection(offsets, {k: v for k, v in fields.items() if k != "tight_id"})}, met
    )
    with pytest.warns(UserWarning, match="no muon field 'tight_id'"):
        assert poetml.rasterize(no_id, spec).sum() == 30.0


def test_gaussian_spreads_and_conserves_pt() -> None:
    # first object at the centre of pixel (16, 16): u = 16.5, v = 16.5 (up to float32)
    batch = make_batch(muon=[[(10.0, 0.078125, 0.09817477)], [(7.0, -2.49, math.pi - 0.01)]])
    spec = ImageSpec(channels=("muon",), mode="gaussian", sigma=1.1, selection=NO_CUTS)
    images = poetml.rasterize(batch, spec)
    sums = images.sum(axis=(1, 2, 3))
    np.testing.assert_allclose(sums, [10.0, 7.0], rtol=1e-6)
    img = images[0, ..., 0]
    peak = np.unravel_index(img.argmax(), img.shape)
    assert peak == (16, 16)
    assert np.count_nonzero(img) == 37  # lattice points with d^2 <= 10 < (3 * 1.1)^2
    # symmetric in phi around the object's phi (at the centre of column 16 +- 0.5)
    assert img[16, 15] == pytest.approx(img[16, 17], rel=1e-6)
    # second object sits in the first row, next to +pi: the Gaussian wraps to column 0 and
    # the rows cut at the eta edge are renormalised away
    img1 = images[1, ..., 0]
    assert img1[0, 31] > 0
    assert img1[0, 0] > 0
    assert img1[0, 1] > 0
    assert img1[:, 4:28].sum() == 0
    np.testing.assert_allclose(img1.sum(), 7.0, rtol=1e-6)


def test_glyph_rings_radius_and_charge_width() -> None:
    pt = math.exp(3.2)  # radius 0.5 + 0.5 * 3.2 = 2.1 pixels
    # both objects at the centre of pixel (16, 16)
    batch = make_batch(muon=[[(pt, 0.078125, 0.09817477, -1.0)], [(pt, 0.078125, 0.09817477, 1.0)]])
    spec = ImageSpec(channels=("muon",), mode="glyph", glyph_width_positive=2.0, selection=NO_CUTS)
    images = poetml.rasterize(batch, spec)
    neg, pos = images[0, ..., 0], images[1, ..., 0]
    np.testing.assert_allclose(images.sum(axis=(1, 2, 3)), [pt, pt], rtol=1e-6)
    # charge < 0: width 0.5, pixel centres at distance 2 (4) and sqrt(5) (8) are on the ring
    assert neg[16, 16] == 0
    assert neg[16, 18] > 0
    assert neg[14, 16] > 0
    assert neg[17, 18] > 0
    assert np.count_nonzero(neg) == 12
    # charge > 0: width 2, distances sqrt(2), 2, sqrt(5), sqrt(8), 3: 24 pixels
    assert np.count_nonzero(pos) == 24
    assert pos[16, 16] == 0
    # every lit pixel carries the same share of pT
    assert len(set(neg[neg > 0].tolist())) == 1
    ref = _reference.rasterize(batch, spec)
    np.testing.assert_allclose(images, ref, rtol=1e-6)


def test_glyph_small_ring_falls_back_to_own_pixel() -> None:
    batch = make_batch(muon=[[(1.0, 0.0, 0.0)]])
    spec = ImageSpec(
        channels=("muon",), mode="glyph", glyph_radius0=0.0, glyph_width=0.0, selection=NO_CUTS
    )
    img = poetml.rasterize(batch, spec)
    assert img[0, 16, 16, 0] == 1.0
    assert img.sum() == 1.0


def test_saturation_log1p_normalize_order() -> None:
    batch = make_batch(muon=[[(10.0, 0.0, 0.0), (1000.0, 1.0, 1.0)], []])
    base = {"channels": ("muon",), "selection": NO_CUTS}
    sat = poetml.rasterize(batch, ImageSpec(**base, saturate_bits=4, lsb_gev=2.0))
    assert sat[0, 16, 16, 0] == 5.0
    assert sat.max() == 15.0
    both = poetml.rasterize(batch, ImageSpec(**base, saturate_bits=4, lsb_gev=2.0, log1p=True))
    np.testing.assert_allclose(both[0, 16, 16, 0], np.log1p(np.float32(5.0)), rtol=1e-6)
    full = poetml.rasterize(
        batch, ImageSpec(**base, saturate_bits=4, lsb_gev=2.0, log1p=True, normalize=True)
    )
    np.testing.assert_allclose(full[0].sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(
        full[0, 16, 16, 0], np.log1p(5) / (np.log1p(5) + np.log1p(15)), rtol=1e-6
    )
    assert not full[1].any()  # an empty event stays zero


def test_empty_batch_and_empty_events() -> None:
    empty = make_batch(muon=[], jet=[], electron=[], met_pt=[], met_phi=[], n=0)
    images, dropped = poetml.rasterize(empty, return_dropped=True)
    assert images.shape == (0, 32, 32, 4)
    assert images.dtype == np.float32
    assert dropped.tolist() == [0, 0, 0, 0]
    blank = make_batch(muon=[[], []])
    assert poetml.rasterize(blank, ImageSpec(channels=("muon",))).shape == (2, 32, 32, 1)
    assert not poetml.rasterize(blank, ImageSpec(channels=("muon",))).any()


def test_threads_argument() -> None:
    batch = make_batch(muon=[[(10.0, 0.0, 0.0)]] * 7)
    spec = ImageSpec(channels=("muon",))
    ref = poetml.rasterize(batch, spec, n_threads=1)
    for n in (None, 0, 2, 3, 16):
        np.testing.assert_array_equal(poetml.rasterize(batch, spec, n_threads=n), ref)
    with pytest.raises(ValueError, match="n_threads"):
        poetml.rasterize(batch, spec, n_threads=-1)


def test_nan_and_inf_name_event_collection_field() -> None:
    batch = make_batch(muon=[[(10.0, 0.0, 0.0)], [(5.0, 0.0, 0.0), (3.0, float("nan"), 0.0)]])
    with pytest.raises(ValueError, match=r"collection 'muon', field 'eta': value nan at event 1"):
        poetml.rasterize(batch, ImageSpec(channels=("muon",)))
    with pytest.raises(ValueError, match=r"field 'eta': value nan at event 1"):
        _reference.rasterize(batch, ImageSpec(channels=("muon",)))
    batch = make_batch(jet=[[], [], [(float("inf"), 0.0, 0.0)]])
    with pytest.raises(ValueError, match=r"collection 'jet', field 'pt': value inf at event 2"):
        poetml.rasterize(batch, ImageSpec(channels=("jet",)))
    batch = make_batch(muon=[[]], met_pt=[1.0], met_phi=[float("-inf")])
    with pytest.raises(ValueError, match=r"collection 'met', field 'phi': value -inf at event 0"):
        poetml.rasterize(batch)
    batch = make_batch(muon=[[(-1.0, 0.0, 0.0)]])
    with pytest.raises(ValueError, match=r"field 'pt': value -1 at event 0 .* negative"):
        poetml.rasterize(batch)


def _cols(offsets, n=3, **kw):
    z = np.zeros(n, np.float32)
    return _core.Columns("muon", offsets, kw.get("pt", z), kw.get("phi", z), eta=kw.get("eta", z))


def _raster(cols, n_events):
    return _core.rasterize(
        [(cols, _core.Cuts())], n_events, n_eta=4, n_phi=4, eta_min=-1.0, eta_max=1.0
    )


def test_bad_offsets_are_value_errors() -> None:
    with pytest.raises(
        ValueError, match=r"offsets decrease at event 1 \(offsets\[1\] = 2, offsets\[2\] = 1\)"
    ):
        _raster(_cols(np.array([0, 2, 1, 3], np.int64)), 3)
    with pytest.raises(ValueError, match=r"offsets end at 2 but the columns hold 3 objects"):
        _raster(_cols(np.array([0, 1, 2], np.int64)), 2)
    with pytest.raises(ValueError, match=r"offsets\[0\] = 1, must be 0"):
        _raster(_cols(np.array([1, 2, 3], np.int64)), 2)
    with pytest.raises(ValueError, match=r"collection 'muon' has 2 events, expected 5"):
        _raster(_cols(np.array([0, 1, 3], np.int64)), 5)


def test_wrong_dtype_or_layout_is_type_error() -> None:
    off = np.array([0, 3], np.int64)
    z = np.zeros(3, np.float32)
    with pytest.raises(TypeError, match="incompatible"):
        _core.Columns("muon", off, z.astype(np.float64), z)
    with pytest.raises(TypeError, match="incompatible"):
        _core.Columns("muon", off.astype(np.int32), z, z)
    with pytest.raises(TypeError, match="incompatible"):
        _core.Columns("muon", off, np.zeros(6, np.float32)[::2], z)  # not contiguous
    with pytest.raises(TypeError, match="1-D"):
        _core.Columns("muon", off, np.zeros((3, 1), np.float32), z)
    with pytest.raises(ValueError, match=r"field 'phi' has 2 values, pt has 3"):
        _core.Columns("muon", off, z, z[:2])


def test_spec_validation_and_missing_collections() -> None:
    with pytest.raises(
        ValueError, match="unknown image mode 'hist'; valid: histogram, gaussian, glyph"
    ):
        ImageSpec(mode="hist")
    with pytest.raises(ValueError, match="channels"):
        ImageSpec(channels=("muons",))
    with pytest.raises(ValueError, match="saturate_bits"):
        ImageSpec(saturate_bits=0)
    with pytest.raises(ValueError, match="eta_max"):
        ImageSpec(eta_min=1.0, eta_max=1.0)
    batch = make_batch(muon=[[]])
    with pytest.raises(ValueError, match="no 'photon' collection"):
        poetml.rasterize(batch, ImageSpec(channels=("photon",)))
    with pytest.raises(ValueError, match=r"unknown mode 'blob'"):
        _core.rasterize([], 0, n_eta=2, n_phi=2, eta_min=0.0, eta_max=1.0, mode="blob")


def test_reads_fixture_file(poet_file) -> None:
    batches = list(poetml.iterate([str(poet_file)], step_size=4))
    assert sum(b.n_events for b in batches) == 6
    for b in batches:
        images = poetml.rasterize(b)
        np.testing.assert_array_equal(images, _reference.rasterize(b))
        assert images.shape == (b.n_events, 32, 32, 4)


def test_large_output_matches_reference() -> None:
    # >= 4 MiB of output: numpy.zeros hands the kernel fresh, untouched mmap memory
    rng = np.random.default_rng(7)
    n = 400
    events = [
        [
            (float(rng.exponential(30)), float(rng.uniform(-3, 3)), float(rng.uniform(-4, 4)), 1.0)
            for _ in range(rng.poisson(3))
        ]
        for _ in range(n)
    ]
    batch = make_batch(
        muon=events, jet=events, met_pt=rng.exponential(20, n), met_phi=rng.uniform(-3, 3, n)
    )
    for mode in ("histogram", "gaussian"):
        spec = ImageSpec(mode=mode, selection=NO_CUTS)
        images = poetml.rasterize(batch, spec, n_threads=2)
        assert images.nbytes >= 4 << 20
        np.testing.assert_allclose(images, _reference.rasterize(batch, spec), rtol=2e-6, atol=1e-7)
        again = poetml.rasterize(batch, spec, n_threads=1)
        del images
        np.testing.assert_array_equal(again, poetml.rasterize(batch, spec, n_threads=2))


def _out_batch(n: int = 9):
    rng = np.random.default_rng(11)
    events = [
        [
            (float(rng.exponential(30)), float(rng.uniform(-3, 3)), float(rng.uniform(-4, 4)), 1.0)
            for _ in range(rng.poisson(3))
        ]
        for _ in range(n)
    ]
    return make_batch(
        muon=events, jet=events, met_pt=rng.exponential(20, n), met_phi=rng.uniform(-3, 3, n)
    )


@pytest.mark.parametrize("mode", ["histogram", "gaussian", "glyph"])
def test_out_buffer_is_overwritten_and_returned(mode) -> None:
    batch = _out_batch()
    # every post-processing step too: a reused buffer is built event by event in a
    # per-thread image whose touched pixels are reset afterwards (0 must stay 0)
    spec = ImageSpec(
        mode=mode,
        selection=NO_CUTS,
        log1p=mode == "glyph",
        normalize=mode == "gaussian",
        saturate_bits=6 if mode == "histogram" else None,
    )
    fresh, dropped = poetml.rasterize(batch, spec, n_threads=1, return_dropped=True)
    assert fresh.any()
    for threads in (1, 2):
        for fill in (np.nan, 7.0, -1.0):
            out = np.full(fresh.shape, fill, dtype=np.float32)  # dirty: must not survive
            got, got_dropped = poetml.rasterize(
                batch, spec, n_threads=threads, return_dropped=True, out=out
            )
            assert got is out
            np.testing.assert_array_equal(out, fresh)
            np.testing.assert_array_equal(got_dropped, dropped)
        ref_out = np.full(fresh.shape, np.nan, dtype=np.float32)
        assert _reference.rasterize(batch, spec, out=ref_out) is ref_out
        np.testing.assert_allclose(ref_out, fresh, rtol=2e-6, atol=1e-7)
    # reusing the same buffer for the next batch of the same length
    other = make_batch(muon=[[(50.0, 0.1, 0.1, 1.0)]] * 9)
    out = np.full(fresh.shape, np.nan, dtype=np.float32)
    poetml.rasterize(other, spec, out=out)
    poetml.rasterize(batch, spec, out=out, n_threads=2)
    np.testing.assert_array_equal(out, fresh)


def test_out_buffer_large_matches_fresh() -> None:
    batch = _out_batch(300)  # 4.7 MiB of output: the fresh result is mmap memory
    fresh = poetml.rasterize(batch, n_threads=2)
    out = np.full_like(fresh, np.nan)
    np.testing.assert_array_equal(poetml.rasterize(batch, out=out, n_threads=2), fresh)
    empty = make_batch(muon=[], jet=[], electron=[], met_pt=[], met_phi=[], n=0)
    out0 = np.zeros((0, 32, 32, 4), np.float32)
    assert poetml.rasterize(empty, out=out0) is out0


def test_out_buffer_errors() -> None:
    batch = _out_batch(3)
    for fn in (poetml.rasterize, _reference.rasterize):
        with pytest.raises(TypeError, match=r"dtype float32, got float64"):
            fn(batch, out=np.zeros((3, 32, 32, 4)))
        with pytest.raises(
            TypeError, match=r"numpy float32 array of shape \(3, 32, 32, 4\), got list"
        ):
            fn(batch, out=[0.0])
        with pytest.raises(ValueError, match=r"shape \(3, 32, 32, 4\), got \(4, 32, 32, 4\)"):
            fn(batch, out=np.zeros((4, 32, 32, 4), np.float32))
        with pytest.raises(ValueError, match=r"shape \(3, 32, 32, 4\), got \(3, 32, 32, 3\)"):
            fn(batch, out=np.zeros((3, 32, 32, 3), np.float32))
        with pytest.raises(ValueError, match="C-contiguous"):
            fn(batch, out=np.zeros((3, 32, 32, 8), np.float32)[..., ::2])
        with pytest.raises(ValueError, match="C-contiguous"):
            fn(batch, out=np.zeros((4, 32, 32, 3), np.float32).T)
        ro = np.zeros((3, 32, 32, 4), np.float32)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="writeable"):
            fn(batch, out=ro)
    # the core checks on its own too (shape, dtype, layout), naming expected and got
    cols = _core.Columns(
        "muon", np.array([0, 1], np.int64), np.ones(1, np.float32), np.zeros(1, np.float32)
    )
    kw = {"n_eta": 2, "n_phi": 3, "eta_min": -1.0, "eta_max": 1.0}
    with pytest.raises(
        ValueError, match=r"rasterize: out must have shape \(1, 2, 3, 1\), got \(1, 2, 3\)"
    ):
        _core.rasterize([(cols, _core.Cuts())], 1, **kw, out=np.zeros((1, 2, 3), np.float32))
    with pytest.raises(TypeError, match=r"rasterize: out must have dtype float32, got float16"):
        _core.rasterize([(cols, _core.Cuts())], 1, **kw, out=np.zeros((1, 2, 3, 1), np.float16))
    with pytest.raises(TypeError, match=r"dtype float32"):
        _core.rasterize([(cols, _core.Cuts())], 1, **kw, out=np.zeros((1, 2, 3, 1), ">f4"))
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.rasterize(
            [(cols, _core.Cuts())], 1, **kw, out=np.zeros((1, 2, 3, 2), np.float32)[..., :1]
        )
    out = np.full((1, 2, 3, 1), np.nan, np.float32)
    images, _ = _core.rasterize([(cols, _core.Cuts())], 1, **kw, out=out)
    assert images is out
    assert out.sum() == 1.0
