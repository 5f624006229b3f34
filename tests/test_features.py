"""poetml.build_features on hand-made events: slots, ordering, fields, event quantities, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import poetml
from poetml import _core, _reference
from poetml.features import EVENT_QUANTITIES, FeatureSpec, feature_names
from poetml.jagged import Collection, EventBatch
from poetml.selection import JetSelection, Selection

#: the default selection without lepton-jet cleaning (layout tests place jets on leptons)
NO_CLEAN = Selection(jet=JetSelection(lepton_dr=None))


def _coll(events, **extra):
    """Collection from per-event lists of (pt, eta, phi) plus per-object extra columns."""
    objs = [o for ev in events for o in ev]
    offsets = np.concatenate([[0], np.cumsum([len(ev) for ev in events])]).astype(np.int64)
    fields = {"pt": [o[0] for o in objs], "eta": [o[1] for o in objs], "phi": [o[2] for o in objs]}
    n = len(objs)
    fields.update({k: v if len(v) == n else [v[0]] * n for k, v in extra.items()})
    return Collection(offsets, {k: np.asarray(v, np.float32) for k, v in fields.items()})


def _batch(muons, electrons, jets, met_pt, met_phi, **muon_extra):
    n = len(met_pt)
    mu_extra = {"tight_id": [1.0], "iso": [0.0], **muon_extra}
    return EventBatch(
        n,
        {
            "muon": _coll(muons, **mu_extra),
            "electron": _coll(electrons, tight_id=[1.0], iso=[0.0]),
            "jet": _coll(jets, btag=[0.0]),
        },
        {"pt": np.asarray(met_pt, np.float32), "phi": np.asarray(met_phi, np.float32)},
    )


def test_default_layout_57_slots_and_names() -> None:
    names = feature_names()
    assert len(names) == 57
    assert names[:6] == [
        "met_pt",
        "met_eta",
        "met_phi",
        "electron_0_pt",
        "electron_0_eta",
        "electron_0_phi",
    ]
    assert names[15:18] == ["muon_0_pt", "muon_0_eta", "muon_0_phi"]
    assert names[27:30] == ["jet_0_pt", "jet_0_eta", "jet_0_phi"]
    assert names[-1] == "jet_9_phi"
    batch = _batch(
        muons=[[(5.0, 0.1, 0.2), (50.0, -1.0, 1.0), (20.0, 0.5, -2.0)], []],
        electrons=[[(7.0, 1.5, 3.0)], []],
        jets=[[(35.0, 0.0, 0.0), (100.0, 1.0, 1.0), (10.0, 0.0, 0.0)], [(40.0, 2.0, 0.5)]],
        met_pt=[30.0, 12.0],
        met_phi=[1.0, -1.0],
    )
    feats, got = poetml.build_features(batch, FeatureSpec(selection=NO_CLEAN))
    assert got == names
    assert feats.shape == (2, 57)
    assert feats.dtype == np.float32
    row = feats[0]
    np.testing.assert_array_equal(row[:3], [30.0, 0.0, 1.0])
    np.testing.assert_array_equal(row[3:6], np.float32([7.0, 1.5, 3.0]))
    assert not row[6:15].any()
    np.testing.assert_array_equal(
        row[15:24], np.float32([50.0, -1.0, 1.0, 20.0, 0.5, -2.0, 5.0, 0.1, 0.2])
    )
    # jets: 10 GeV fails the 30 GeV cut; 100 then 35
    np.testing.assert_array_equal(row[27:33], np.float32([100.0, 1.0, 1.0, 35.0, 0.0, 0.0]))
    assert not row[33:].any()
    # event 1: jet at |eta| = 2 passes (|eta| <= 2.4)
    np.testing.assert_array_equal(feats[1, :3], [12.0, 0.0, -1.0])
    np.testing.assert_array_equal(feats[1, 27:30], [40.0, 2.0, 0.5])
    # the default selection cleans the 35 GeV jet: the 5 GeV tight muon is 0.22 away
    feats, _ = poetml.build_features(batch)
    np.testing.assert_array_equal(feats[0, 27:33], np.float32([100.0, 1.0, 1.0, 0.0, 0.0, 0.0]))


def test_ties_keep_input_order_and_counts_truncate() -> None:
    jets = [[(40.0, 0.1, 0.0), (50.0, 0.2, 0.0), (40.0, 0.3, 0.0), (40.0, 0.4, 0.0)]]
    batch = _batch([[]], [[]], jets, [0.0], [0.0])
    spec = FeatureSpec(slots=(("jet", 3),), fields=("pt", "eta"))
    feats, names = poetml.build_features(batch, spec)
    assert names == ["jet_0_pt", "jet_0_eta", "jet_1_pt", "jet_1_eta", "jet_2_pt", "jet_2_eta"]
    np.testing.assert_array_equal(feats[0], np.float32([50.0, 0.2, 40.0, 0.1, 40.0, 0.3]))


def test_extra_fields_and_zero_fields() -> None:
    batch = _batch(
        [[(30.0, 0.0, 0.0), (40.0, 1.0, 1.0)]],
        [[]],
        [[(60.0, 0.0, 0.0)]],
        [5.0],
        [0.0],
        charge=[1.0, -1.0],
        mass=[0.1, 0.1],
    )
    spec = FeatureSpec(
        slots=(("met", 1), ("muon", 2)), fields=("pt", "charge", "btag", "mass"), selection=NO_CLEAN
    )
    feats, names = poetml.build_features(batch, spec)
    assert names[:4] == ["met_pt", "met_charge", "met_btag", "met_mass"]
    np.testing.assert_array_equal(feats[0, :4], [5.0, 0.0, 0.0, 0.0])  # MET has none of these
    # muons: no btag defined -> 0
    np.testing.assert_array_equal(
        feats[0, 4:12], np.float32([40.0, -1.0, 0.0, 0.1, 30.0, 1.0, 0.0, 0.1])
    )
    # jets have no charge column here but jet charge is "always 0": zeros
    feats, _ = poetml.build_features(
        batch, FeatureSpec(slots=(("jet", 1),), fields=("pt", "charge", "btag"), selection=NO_CLEAN)
    )
    np.testing.assert_array_equal(feats, [[60.0, 0.0, 0.0]])
    # a field jets define but this batch lacks is an error naming it
    with pytest.raises(
        ValueError, match=r"feature field 'mass' requested but the batch's 'jet' has no such field"
    ):
        poetml.build_features(batch, FeatureSpec(slots=(("jet", 1),), fields=("mass",)))


def test_event_quantities() -> None:
    muons = [[(30.0, 0.0, 0.0), (40.0, 0.5, 1.0), (25.0, -0.5, -1.0)], [(10.0, 0.0, 0.0)]]
    jets = [[(50.0, 0.0, 0.0), (70.0, 1.0, 2.0), (20.0, 0.0, 0.0)], []]
    batch = EventBatch(
        2,
        {
            "muon": _coll(muons, charge=[1.0, 1.0, -1.0, 1.0], tight_id=[1.0], iso=[0.0]),
            "electron": _coll([[], [(20.0, 0.0, 0.0)]], tight_id=[1.0], iso=[0.0]),
            "jet": _coll(jets, btag=[0.9, 0.1, 0.95], mass=[5.0, 8.0, 1.0]),
        },
        {"pt": np.asarray([33.0, 44.0], np.float32), "phi": np.zeros(2, np.float32)},
    )
    spec = FeatureSpec(slots=(), event_quantities=tuple(EVENT_QUANTITIES), selection=NO_CLEAN)
    feats, names = poetml.build_features(batch, spec)
    assert names == list(EVENT_QUANTITIES)
    q = dict(zip(names, feats[0], strict=False))
    assert q["ht"] == 120.0
    assert q["met"] == 33.0
    assert (q["n_muon"], q["n_electron"], q["n_jet"], q["n_bjet"]) == (3, 0, 2, 1)

    def mass(a, b, ma, mb):
        def p4(pt, eta, phi, m):
            x, y, z = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
            return x, y, z, math.sqrt(x * x + y * y + z * z + m * m)

        v = [s + t for s, t in zip(p4(*a, ma), p4(*b, mb), strict=False)]
        return math.sqrt(v[3] ** 2 - v[0] ** 2 - v[1] ** 2 - v[2] ** 2)

    # leading opposite-charge pair in pT order: 40 (+) with 25 (-)
    m_mumu = mass((40.0, 0.5, 1.0), (25.0, -0.5, -1.0), 0.1056584, 0.1056584)
    assert q["m_mumu"] == pytest.approx(m_mumu, rel=1e-6)
    assert q["m_jj"] == pytest.approx(mass((70.0, 1.0, 2.0), (50.0, 0.0, 0.0), 8.0, 5.0), rel=1e-6)
    np.testing.assert_array_equal(feats[1], [0.0, 44.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    ref, _ = _reference.build_features(batch, spec)
    np.testing.assert_allclose(feats, ref, rtol=1e-6)


def test_selection_and_missing_fields() -> None:
    batch = _batch([[(30.0, 0.0, 0.0), (2.0, 0.0, 0.0)]], [[]], [[(25.0, 0.0, 0.0)]], [0.0], [0.0])
    spec = FeatureSpec(
        slots=(("muon", 2), ("jet", 1)), fields=("pt",), event_quantities=("n_muon", "n_jet")
    )
    np.testing.assert_array_equal(
        poetml.build_features(batch, spec)[0], [[30.0, 0.0, 0.0, 1.0, 0.0]]
    )
    loose = FeatureSpec(
        slots=spec.slots,
        fields=spec.fields,
        event_quantities=spec.event_quantities,
        selection=Selection.none(),
    )
    np.testing.assert_array_equal(
        poetml.build_features(batch, loose)[0], [[30.0, 2.0, 25.0, 2.0, 1.0]]
    )
    no_id = EventBatch(1, {"muon": _coll([[(30.0, 0.0, 0.0)]], iso=[0.0])}, batch.met)
    with pytest.warns(UserWarning, match="no muon field 'tight_id'"):
        poetml.build_features(no_id, FeatureSpec(slots=(("muon", 1),)))
    with pytest.raises(ValueError, match="'n_bjet' needs the jet field 'btag'"):
        poetml.build_features(
            EventBatch(1, {"jet": _coll([[]])}, batch.met),
            FeatureSpec(slots=(), event_quantities=("n_bjet",)),
        )
    with pytest.raises(ValueError, match="'m_mumu' needs the muon field 'charge'"):
        poetml.build_features(batch, FeatureSpec(slots=(), event_quantities=("m_mumu",)))
    with pytest.raises(ValueError, match="no 'tau' collection"):
        poetml.build_features(batch, FeatureSpec(slots=(("tau", 2),)))


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="unknown slot collection 'muons'"):
        FeatureSpec(slots=(("muons", 2),))
    with pytest.raises(ValueError, match="at most 1"):
        FeatureSpec(slots=(("met", 2),))
    with pytest.raises(ValueError, match="unknown feature fields"):
        FeatureSpec(fields=("pt", "energy"))
    with pytest.raises(ValueError, match="unknown event quantities"):
        FeatureSpec(event_quantities=("mht",))
    assert FeatureSpec().n_features == 57


def test_empty_batch_threads_and_errors() -> None:
    empty = _batch([], [], [], [], [])
    feats, names = poetml.build_features(empty, FeatureSpec(event_quantities=("ht",)))
    assert feats.shape == (0, 58)
    assert feats.dtype == np.float32
    assert len(names) == 58
    batch = _batch(
        [[(30.0, 0.0, 0.0)]] * 5, [[]] * 5, [[(40.0, 0.0, 0.0)]] * 5, [1.0] * 5, [0.0] * 5
    )
    one = poetml.build_features(batch, n_threads=1)[0]
    np.testing.assert_array_equal(poetml.build_features(batch, n_threads=3)[0], one)
    with pytest.raises(ValueError, match="n_threads"):
        poetml.build_features(batch, n_threads=-2)
    bad = _batch([[(30.0, float("nan"), 0.0)], []], [[], []], [[], []], [1.0, 1.0], [0.0, 0.0])
    with pytest.raises(ValueError, match=r"collection 'muon', field 'eta': value nan at event 0"):
        poetml.build_features(bad)
    cols = _core.Columns(
        "muon", np.array([0, 1], np.int64), np.ones(1, np.float32), np.zeros(1, np.float32)
    )
    with pytest.raises(TypeError, match="float32"):
        _core.build_features([(cols, _core.Cuts())], 1, [(0, 1, [np.zeros(1, np.float64)])])
    with pytest.raises(ValueError, match="unknown event quantity 'x'"):
        _core.build_features([(cols, _core.Cuts())], 1, [], event_quantities=["x"])


def test_reads_fixture_file(poet_file) -> None:
    spec = FeatureSpec(event_quantities=tuple(EVENT_QUANTITIES))
    for b in poetml.iterate([str(poet_file)], step_size=4):
        feats, _names = poetml.build_features(b, spec)
        ref, _ = _reference.build_features(b, spec)
        np.testing.assert_allclose(feats, ref, rtol=1e-6)
        assert feats.shape == (b.n_events, 65)


def _out_batch(n: int = 7):
    rng = np.random.default_rng(5)

    def events():
        return [
            [
                (float(rng.exponential(30)), float(rng.uniform(-2, 2)), float(rng.uniform(-3, 3)))
                for _ in range(rng.poisson(2))
            ]
            for _ in range(n)
        ]

    muons = events()
    n_mu = sum(len(e) for e in muons)
    return _batch(
        muons,
        events(),
        events(),
        rng.exponential(20, n),
        rng.uniform(-3, 3, n),
        charge=list(rng.choice([-1.0, 1.0], n_mu)) or [1.0],
    )


def test_out_buffer_is_overwritten_and_returned() -> None:
    batch = _out_batch()
    spec = FeatureSpec(event_quantities=tuple(EVENT_QUANTITIES), selection=Selection.none())
    fresh, names = poetml.build_features(batch, spec, n_threads=1)
    assert fresh.any()
    assert (fresh == 0).any()  # zero padding must be written too
    for threads in (1, 2):
        for fill in (np.nan, 3.0):
            out = np.full(fresh.shape, fill, dtype=np.float32)
            got, got_names = poetml.build_features(batch, spec, n_threads=threads, out=out)
            assert got is out
            assert got_names == names
            np.testing.assert_array_equal(out, fresh)
    ref_out = np.full(fresh.shape, np.nan, dtype=np.float32)
    assert _reference.build_features(batch, spec, out=ref_out)[0] is ref_out
    np.testing.assert_allclose(ref_out, fresh, rtol=1e-6, atol=1e-6)
    empty = _batch([], [], [], [], [])
    out0 = np.zeros((0, 57), np.float32)
    assert poetml.build_features(empty, out=out0)[0] is out0


def test_out_buffer_errors() -> None:
    batch = _out_batch(3)
    for fn in (poetml.build_features, _reference.build_features):
        with pytest.raises(TypeError, match=r"dtype float32, got int32"):
            fn(batch, out=np.zeros((3, 57), np.int32))
        with pytest.raises(ValueError, match=r"shape \(3, 57\), got \(3, 58\)"):
            fn(batch, out=np.zeros((3, 58), np.float32))
        with pytest.raises(ValueError, match=r"shape \(3, 57\), got \(171,\)"):
            fn(batch, out=np.zeros(171, np.float32))
        with pytest.raises(ValueError, match="C-contiguous"):
            fn(batch, out=np.zeros((57, 3), np.float32).T)
    cols = _core.Columns(
        "muon", np.array([0, 1], np.int64), np.ones(1, np.float32), np.zeros(1, np.float32)
    )
    slots = [(0, 2, [None])]
    with pytest.raises(
        ValueError, match=r"build_features: out must have shape \(1, 2\), got \(2, 1\)"
    ):
        _core.build_features([(cols, _core.Cuts())], 1, slots, out=np.zeros((2, 1), np.float32))
    with pytest.raises(
        TypeError, match=r"build_features: out must have dtype float32, got float64"
    ):
        _core.build_features([(cols, _core.Cuts())], 1, slots, out=np.zeros((1, 2)))
    out = np.full((1, 2), np.nan, np.float32)
    assert _core.build_features([(cols, _core.Cuts())], 1, slots, out=out) is out
    np.testing.assert_array_equal(out, [[0.0, 0.0]])


def test_nanoaod_electrons_are_not_counted_twice_as_jets(shared_data):
    """The 2015 NanoAOD file: most selected electrons are also selected jets (NanoAOD jets
    contain the leptons); after the default cleaning (Delta R < 0.4) none is."""
    nano = shared_data / "nanoAOD_2015_CMS_Open_Data_ttbar.root"
    if not nano.exists():
        pytest.skip(f"real CMS file {nano} not found (the repo is cloned beside shared/)")
    import warnings

    from poetml.images import clean_jets, resolve_cuts
    from poetml.reading import read

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = read(nano)

    def overlapping(b):
        sel = Selection()
        el, jet = b["electron"], b["jet"]
        c = resolve_cuts(sel, "electron", el)
        e_ok = (
            (el["pt"] >= c.min_pt) & (np.abs(el["eta"]) <= c.max_abs_eta) & (el["tight_id"] > 0.5)
        )
        j_ok = (jet["pt"] >= sel.jet.min_pt) & (np.abs(jet["eta"]) <= sel.jet.max_abs_eta)
        e_ev = np.repeat(np.arange(b.n_events), el.counts)[e_ok]
        j_ev = np.repeat(np.arange(b.n_events), jet.counts)[j_ok]
        je, jp = jet["eta"][j_ok], jet["phi"][j_ok]
        n = 0
        for ev, eta, phi in zip(e_ev, el["eta"][e_ok], el["phi"][e_ok], strict=True):
            same = j_ev == ev
            dphi = np.abs((jp[same] - phi + np.pi) % (2 * np.pi) - np.pi)
            n += bool(np.any((je[same] - eta) ** 2 + dphi**2 < 0.16))
        return n, int(e_ok.sum())

    before, n_el = overlapping(batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        after, _ = overlapping(clean_jets(batch, Selection()))
    assert n_el == 31
    assert before == 22
    assert after == 0
