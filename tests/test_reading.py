"""poetml.reading: layouts, content, chunking, options and every error path."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from conftest import make_poet_events, write_poet

import poetml
from poetml import reading, schema
from poetml.exceptions import ReadError
from poetml.jagged import concatenate

LAYOUT_FIXTURES = [
    ("poet_file", "poet"),
    ("poet_merged_file", "poet-merged"),
    ("nanoaod_file", "nanoaod"),
]


def _flat(a) -> np.ndarray:
    return ak.to_numpy(ak.flatten(a)).astype(np.float32)


def _expected(events):
    """Canonical content of the small fixture files, from the POET branches."""
    mu, el, jet, met = events["muon"], events["electron"], events["jet"], events["met"]
    return {
        "muon": {
            "counts": ak.to_numpy(ak.num(mu["muon_pt"])),
            "pt": _flat(mu["muon_pt"]), "eta": _flat(mu["muon_eta"]), "phi": _flat(mu["muon_phi"]),
            "mass": np.full(int(ak.sum(ak.num(mu["muon_pt"]))), schema.MASSES["muon"], np.float32),
            "charge": _flat(mu["muon_ch"]), "tight_id": _flat(mu["muon_isTight"]),
            "iso": _flat(mu["muon_pfreliso04DBCorr"]),
        },
        "electron": {
            "counts": ak.to_numpy(ak.num(el["electron_pt"])),
            "pt": _flat(el["electron_pt"]), "eta": _flat(el["electron_eta"]),
            "phi": _flat(el["electron_phi"]),
            "mass": np.full(int(ak.sum(ak.num(el["electron_pt"]))), schema.MASSES["electron"], np.float32),
            "charge": _flat(el["electron_ch"]), "tight_id": _flat(el["electron_isTight"]),
            "iso": _flat(el["electron_iso"]),
        },
        "jet": {
            "counts": ak.to_numpy(ak.num(jet["jet_pt"])),
            "pt": _flat(jet["jet_corrpt"]), "eta": _flat(jet["jet_eta"]), "phi": _flat(jet["jet_phi"]),
            "mass": _flat(jet["jet_mass"]), "btag": _flat(jet["jet_btag"]),
        },
        "met": {"pt": met["met_pt"], "phi": met["met_phi"]},
    }  # fmt: skip


def _assert_batch_matches(batch, expected, start=0, stop=None):
    stop = len(expected["met"]["pt"]) if stop is None else stop
    assert batch.n_events == stop - start
    for coll in ("muon", "electron", "jet"):
        exp = expected[coll]
        c = batch[coll]
        offsets = np.concatenate([[0], np.cumsum(exp["counts"])])
        lo, hi = offsets[start], offsets[stop]
        np.testing.assert_array_equal(c.offsets, offsets[start : stop + 1] - lo)
        assert c.offsets.dtype == np.int64
        assert set(c.fields) == set(exp) - {"counts"}, coll
        for name, values in exp.items():
            if name == "counts":
                continue
            assert c[name].dtype == np.float32
            assert c[name].flags.c_contiguous
            np.testing.assert_allclose(
                c[name], values[lo:hi], rtol=2e-6, atol=1e-6, err_msg=f"{coll}.{name}"
            )
    assert set(batch.met) == {"pt", "phi"}
    for name in ("pt", "phi"):
        assert batch.met[name].dtype == np.float32
        np.testing.assert_array_equal(batch.met[name], expected["met"][name][start:stop])


# --------------------------------------------------------------------------------------
# the three layouts
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fixture", "layout"), LAYOUT_FIXTURES)
def test_detect_layout(request, fixture, layout):
    path = request.getfixturevalue(fixture)
    assert reading.detect_layout(path) == layout
    assert reading.num_entries(path) == 6


@pytest.mark.parametrize(("fixture", "layout"), LAYOUT_FIXTURES)
def test_read_gives_the_written_content(request, poet_events, fixture, layout):
    path = request.getfixturevalue(fixture)
    batch = reading.read(path)
    assert batch.layout == layout
    assert batch.source == os.fspath(path)
    assert batch.entry_start == 0
    assert set(batch.collections) == {"muon", "electron", "jet"}
    _assert_batch_matches(batch, _expected(poet_events))
    # event 1 is empty in every collection
    for coll in batch.collections.values():
        assert coll.counts[1] == 0


@pytest.mark.parametrize(("fixture", "layout"), LAYOUT_FIXTURES)
def test_iterate_chunks_equal_one_read(request, poet_events, fixture, layout):
    path = request.getfixturevalue(fixture)
    batches = list(poetml.iterate([path], step_size=4))
    assert [b.n_events for b in batches] == [4, 2]
    assert [b.entry_start for b in batches] == [0, 4]
    assert all(b.layout == layout and b.source == os.fspath(path) for b in batches)
    np.testing.assert_array_equal(batches[1].event_index, [4, 5])
    _assert_batch_matches(concatenate(batches), _expected(poet_events))


def test_baskets_decompressed_on_threads_give_the_same_batches(tmp_path):
    """Decompression on a pool of threads (the default) gives batch for batch what
    decompressing in the iterating thread gives, across baskets and files."""
    events = make_poet_events(3000, seed=7)
    paths = [write_poet(tmp_path / f"{i}.root", events, chunk=400) for i in range(2)]
    with uproot.open(paths[0]) as f:  # several baskets per branch: the pool has work
        assert f["mymuons/Events"]["muon_pt"].num_baskets >= 7
    serial = list(reading.iterate(paths, step_size=700, threads=1))
    for threads in (None, 3):
        pooled = list(reading.iterate(paths, step_size=700, threads=threads))
        assert [(b.source, b.entry_start, b.n_events) for b in pooled] == [
            (b.source, b.entry_start, b.n_events) for b in serial
        ]
        for a, b in zip(pooled, serial, strict=True):
            _assert_batch_matches(a, _expected(events), a.entry_start, a.entry_start + a.n_events)
            np.testing.assert_array_equal(a.met["pt"], b.met["pt"])
    with pytest.raises(ValueError, match="threads must be a positive number or None, got 0"):
        next(reading.iterate(paths, threads=0))


@pytest.mark.parametrize("step", [1, 2, 5, 100])
def test_step_sizes_and_entry_range(poet_file, poet_events, step):
    batches = list(reading.iterate(poet_file, step_size=step, entry_start=1, entry_stop=-1))
    assert all(0 < b.n_events <= step for b in batches)
    assert batches[0].entry_start == 1
    joined = concatenate(batches)
    _assert_batch_matches(joined, _expected(poet_events), 1, 5)


def test_read_entry_range(poet_merged_file, poet_events):
    batch = reading.read(poet_merged_file, 2, 5)
    assert batch.entry_start == 2
    np.testing.assert_array_equal(batch.event_index, [2, 3, 4])
    _assert_batch_matches(batch, _expected(poet_events), 2, 5)
    empty = reading.read(poet_merged_file, 3, 3)
    assert empty.n_events == 0
    assert empty["muon"].n_objects == 0
    assert list(reading.iterate(poet_merged_file, entry_start=4, entry_stop=4)) == []


def test_several_files_and_globs(poet_file, poet_merged_file, nanoaod_file, tmp_path):
    batches = list(reading.iterate([poet_file, poet_merged_file, nanoaod_file], step_size=10))
    assert [b.source for b in batches] == [
        os.fspath(p) for p in (poet_file, poet_merged_file, nanoaod_file)
    ]
    assert [b.layout for b in batches] == ["poet", "poet-merged", "nanoaod"]
    for i in range(3):
        shutil.copy(poet_file, tmp_path / f"part{i}.root")
    batches = list(reading.iterate(str(tmp_path / "part*.root")))
    assert [Path(b.source).name for b in batches] == ["part0.root", "part1.root", "part2.root"]
    pattern = str(tmp_path / "nothing*.root")
    with pytest.raises(ReadError, match="no file matches the pattern") as err:
        list(reading.iterate([poet_file, pattern]))
    assert pattern in str(err.value)


def test_explicit_fields_and_supplied_constants(poet_file, nanoaod_file, poet_events):
    jet = poet_events["jet"]
    fields = {"muon": ("pt", "dxy"), "jet": ("raw_pt", "charge", "hflav")}
    batch = reading.read(poet_file, fields=fields)
    assert list(batch["muon"].fields) == ["pt", "eta", "phi", "dxy"]
    np.testing.assert_array_equal(batch["muon"]["dxy"], _flat(poet_events["muon"]["muon_dxy"]))
    assert list(batch["jet"].fields) == ["pt", "eta", "phi", "raw_pt", "charge", "hflav"]
    np.testing.assert_array_equal(batch["jet"]["raw_pt"], _flat(jet["jet_pt"]))
    np.testing.assert_array_equal(batch["jet"]["charge"], np.zeros(batch["jet"].n_objects))
    np.testing.assert_array_equal(batch["jet"]["hflav"], _flat(jet["jet_hflav"]))
    # NanoAOD: raw pt = Jet_pt * (1 - Jet_rawFactor) through the schema's convert function
    nano = reading.read(nanoaod_file, fields={"jet": ("raw_pt",), "electron": ("loose_id",)})
    np.testing.assert_allclose(nano["jet"]["raw_pt"], _flat(jet["jet_pt"]), rtol=1e-5)
    np.testing.assert_array_equal(
        nano["electron"]["loose_id"], _flat(poet_events["electron"]["electron_isLoose"])
    )


def test_collections_option(poet_file, nanoaod_file):
    batch = reading.read(poet_file, collections=["muon"])
    assert list(batch.collections) == ["muon"]
    assert dict(batch.met) == {}
    batch = reading.read(nanoaod_file, collections=("jet", "met"), fields={"met": ("pt", "sumet")})
    assert list(batch.collections) == ["jet"]
    assert list(batch.met) == ["pt", "phi", "sumet"]


def test_missing_collections_empty_or_skip(tmp_path, poet_events):
    path = write_poet(tmp_path / "mu.root", poet_events, collections=("muon",))
    with pytest.raises(ReadError, match=r"no jet collection: no tree 'myjets/Events'") as err:
        reading.read(path, collections=["muon", "jet"])
    assert "mymuons/Events" in str(err.value)
    assert str(path) in str(err.value)
    batch = reading.read(path, collections=["muon", "jet", "met"], missing_collections="empty")
    assert batch["jet"].n_objects == 0
    assert batch["jet"].n_events == 6
    assert set(batch["jet"].fields) == set(schema.DEFAULT_READ_FIELDS["jet"])
    np.testing.assert_array_equal(batch.met["pt"], np.zeros(6, np.float32))
    batch = reading.read(path, collections=["muon", "jet"], missing_collections="skip")
    assert list(batch.collections) == ["muon"]
    only_missing = list(reading.iterate(path, 4, collections=["jet"], missing_collections="empty"))
    assert [b.n_events for b in only_missing] == [4, 2]
    assert reading.available_collections(path) == ["muon"]
    with pytest.raises(ValueError, match="missing_collections must be one of"):
        reading.read(path, missing_collections="ignore")


def test_progress_bar_on_stderr(poet_file, capsys):
    assert sum(b.n_events for b in reading.iterate(poet_file, 2, progress=True)) == 6
    err = capsys.readouterr().err
    assert "event" in err
    assert "100%" in err
    assert "6.00/6.00" in err


def test_inspect(poet_file, poet_merged_file, nanoaod_file):
    info = poetml.inspect(poet_file)
    assert info["layout"] == "poet"
    assert info["entries"] == 6
    assert set(info["trees"]) == {
        f"{pc.directory}/Events" for pc in schema.POET_COLLECTIONS.values()
    }
    for pc in schema.POET_COLLECTIONS.values():
        tree = info["trees"][f"{pc.directory}/Events"]
        assert tree["kind"] == "TTree"
        assert tree["entries"] == 6
        assert tuple(tree["branches"]) == pc.branch_names
    assert info["trees"]["mymuons/Events"]["branches"]["muon_pt"] == "float[]"
    assert info["collections"]["muon"]["pt"] == "mymuons/Events:muon_pt"
    assert info["collections"]["muon"]["mass"].startswith("(constant 0.105")
    assert info["collections"]["jet"]["pt"] == "myjets/Events:jet_corrpt"
    assert info["collections"]["met"]["phi"] == "mymets/Events:met_phi"
    merged = poetml.inspect(poet_merged_file)
    assert merged["layout"] == "poet-merged"
    assert list(merged["trees"]) == ["events"]
    nano = poetml.inspect(nanoaod_file)
    assert nano["collections"]["electron"]["tight_id"] == "Events:Electron_cutBased (cutBased >= 4)"
    assert nano["collections"]["jet"]["raw_pt"] == "Events:Jet_pt (raw_pt(Jet_pt, Jet_rawFactor))"


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.root"
    for call in (reading.read, reading.detect_layout, reading.num_entries, reading.inspect):
        with pytest.raises(ReadError, match=f"no such file: {path}"):
            call(path)
    with pytest.raises(ReadError, match="no such file"):
        list(reading.iterate([path]))
    with pytest.raises(ReadError, match="is a directory"):
        reading.read(tmp_path)


def test_missing_branch_names_branch_tree_file_and_lists_branches(tmp_path, poet_events):
    pc = schema.POET_COLLECTIONS["muon"]
    path = tmp_path / "no_eta.root"
    data = {k: v for k, v in poet_events["muon"].items() if k not in (pc.counter, "muon_eta")}
    with uproot.recreate(path) as f:
        f.mktree("mymuons/Events", {k: str(ak.type(v).content) for k, v in data.items()},
                 counter_name=lambda _: pc.counter).extend(data)  # fmt: skip
    with pytest.raises(ReadError) as err:
        reading.read(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "missing branch 'muon_eta' (muon.eta) in tree 'mymuons/Events'" in msg
    assert "muon_pt" in msg
    assert "muon_phi" in msg


def test_optional_default_fields_absent_are_left_out(tmp_path, poet_events):
    pc = schema.POET_COLLECTIONS["muon"]
    keep = ("muon_pt", "muon_eta", "muon_phi")
    data = {k: poet_events["muon"][k] for k in keep}
    path = tmp_path / "kin.root"
    with uproot.recreate(path) as f:
        f.mktree("mymuons/Events", {k: "var * float32" for k in keep},
                 counter_name=lambda _: pc.counter).extend(data)  # fmt: skip
    batch = reading.read(path)
    assert list(batch["muon"].fields) == ["pt", "eta", "phi", "mass"]
    # asked for explicitly, a missing field is an error
    with pytest.raises(ReadError, match=r"missing branch 'muon_dxy' \(muon.dxy\) in tree"):
        reading.read(path, fields={"muon": ("dxy",)})


def test_missing_tree_lists_trees(poet_file, nanoaod_file):
    with pytest.raises(ReadError, match=r"no tree 'events'; trees in the file: mymuons/Events"):
        reading.read(poet_file, layout="poet-merged")
    with pytest.raises(ReadError, match=r"layout 'nanoaod' needs a tree 'Events'.*mymuons/Events"):
        reading.read(poet_file, layout="nanoaod")
    with pytest.raises(ReadError, match=r"layout 'poet' needs at least one of the trees .*Events"):
        reading.read(nanoaod_file, layout="poet")


def test_poet_has_no_photons(poet_file):
    with pytest.raises(ReadError, match="the poet layout has no photon collection"):
        reading.read(poet_file, collections=["photon"])


def test_entry_count_mismatch_names_both_trees(tmp_path):
    mu = make_poet_events(
        counts={"muon": [1, 2, 0], "electron": [0] * 3, "jet": [1] * 3, "genparticle": [0] * 3}
    )
    jets = make_poet_events(
        counts={"muon": [0] * 2, "electron": [0] * 2, "jet": [2, 1], "genparticle": [0] * 2}
    )
    path = tmp_path / "mismatch.root"
    write_poet(path, mu, collections=("muon",))
    with uproot.update(path) as f:
        pc = schema.POET_COLLECTIONS["jet"]
        data = {k: v for k, v in jets["jet"].items() if k != pc.counter}
        f.mktree("myjets/Events", {k: str(ak.type(v).content) for k, v in data.items()},
                 counter_name=lambda _: pc.counter).extend(data)  # fmt: skip
    for call in (reading.read, reading.num_entries):
        with pytest.raises(ReadError) as err:
            call(path)
        msg = str(err.value)
        assert "'mymuons/Events' has 3 entries" in msg
        assert "'myjets/Events' has 2" in msg
        assert str(path) in msg


def _big_poet(tmp_path: Path) -> Path:
    return write_poet(tmp_path / "big.root", make_poet_events(3000, seed=5), chunk=500)


def test_truncated_file(tmp_path):
    path = _big_poet(tmp_path)
    size = path.stat().st_size
    for keep in (size // 2, size - 200, 300):
        cut = tmp_path / f"cut{keep}.root"
        cut.write_bytes(path.read_bytes()[:keep])
        with pytest.raises(ReadError) as err:
            for _ in reading.iterate(cut, step_size=1000):
                pass
        assert str(cut) in str(err.value)
        assert "truncated" in str(err.value)


def test_corrupt_file(tmp_path):
    path = _big_poet(tmp_path)
    data = bytearray(path.read_bytes())
    lo, hi = len(data) // 3, 2 * len(data) // 3
    rng = np.random.default_rng(1)
    data[lo:hi] = rng.integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
    bad = tmp_path / "corrupt.root"
    bad.write_bytes(bytes(data))
    with pytest.raises(ReadError, match="corrupt") as err:
        list(reading.iterate(bad, step_size=1000))
    assert str(bad) in str(err.value)
    header = bytearray(path.read_bytes())
    header[:4] = b"XXXX"
    bad.write_bytes(bytes(header))
    with pytest.raises(ReadError, match="not a readable ROOT file") as err:
        reading.read(bad)
    assert str(bad) in str(err.value)
    text = tmp_path / "text.root"
    text.write_text("not a ROOT file at all\n")
    with pytest.raises(ReadError, match="not a readable ROOT file"):
        reading.detect_layout(text)


def test_bad_options(poet_file):
    with pytest.raises(ValueError, match="unknown layout 'root'; valid: auto, poet"):
        reading.read(poet_file, layout="root")
    for step in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="step_size must be a positive number"):
            next(reading.iterate(poet_file, step_size=step))
    with pytest.raises(ValueError, match="unknown muon field 'ptt'; valid: pt, eta"):
        reading.read(poet_file, fields={"muon": ("ptt",)})
    with pytest.raises(ValueError, match="unknown collection 'muons'"):
        reading.read(poet_file, collections=["muons"])
    with pytest.raises(TypeError, match="fields must map a collection"):
        reading.read(poet_file, fields=("pt",))


# --------------------------------------------------------------------------------------
# prefetch
# --------------------------------------------------------------------------------------


def test_prefetch_keeps_order_and_reraises():
    assert list(reading.prefetch(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise ReadError("broken file X")

    it = reading.prefetch(failing())
    assert next(it) == 1
    with pytest.raises(ReadError, match="broken file X"):
        next(it)


def test_prefetch_close_stops_the_producer():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    before = threading.active_count()
    it = reading.prefetch(endless(), depth=2)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    it.close()
    n = len(produced)
    assert n <= 5 + 2 + 1
    assert threading.active_count() == before
    with pytest.raises(ValueError, match="depth"):
        next(reading.prefetch([], depth=0))


def test_prefetch_of_iterate(poet_file, poet_events):
    batches = list(reading.prefetch(reading.iterate(poet_file, step_size=4)))
    _assert_batch_matches(concatenate(batches), _expected(poet_events))


# --------------------------------------------------------------------------------------
# real CMS files
# --------------------------------------------------------------------------------------


def test_nanoaod_ttbar(shared_data):
    path = shared_data / "nanoAOD_2015_CMS_Open_Data_ttbar.root"
    batch = reading.read(path)
    assert batch.layout == "nanoaod"
    assert batch.n_events == 200
    assert set(batch.collections) == {"muon", "electron", "jet", "photon", "tau"}
    t = uproot.open(path)["Events"]
    raw = t.arrays(
        ["nMuon", "Muon_pt", "Muon_tightId", "nJet", "Jet_pt", "Electron_cutBased", "MET_pt"]
    )
    np.testing.assert_array_equal(batch["muon"].counts, ak.to_numpy(raw["nMuon"]))
    np.testing.assert_array_equal(batch["muon"]["pt"], _flat(raw["Muon_pt"]))
    np.testing.assert_array_equal(batch["muon"]["tight_id"], _flat(raw["Muon_tightId"]))
    np.testing.assert_array_equal(batch["jet"].counts, ak.to_numpy(raw["nJet"]))
    np.testing.assert_array_equal(batch["jet"]["pt"], _flat(raw["Jet_pt"]))
    np.testing.assert_array_equal(
        batch["electron"]["tight_id"], _flat(raw["Electron_cutBased"] >= 4)
    )
    np.testing.assert_array_equal(batch.met["pt"], ak.to_numpy(raw["MET_pt"]))
    chunks = list(reading.iterate(path, step_size=64))
    assert [b.n_events for b in chunks] == [64, 64, 64, 8]
    np.testing.assert_array_equal(concatenate(chunks)["jet"]["eta"], batch["jet"]["eta"])


def _dimuon_masses(batch) -> np.ndarray:
    """Invariant mass of events with exactly two opposite-charge muons."""
    m = batch["muon"]
    first = m.offsets[:-1][m.counts == 2]
    first = first[m["charge"][first] * m["charge"][first + 1] < 0]
    total = np.zeros((4, len(first)))
    for j in (first, first + 1):
        pt, eta, phi = (m[k][j].astype(np.float64) for k in ("pt", "eta", "phi"))
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        total += [np.sqrt(px**2 + py**2 + pz**2 + m["mass"][j].astype(np.float64) ** 2), px, py, pz]
    return np.sqrt(np.maximum(total[0] ** 2 - (total[1:] ** 2).sum(axis=0), 0))


def test_rntuple_doublemu_physics(shared_data):
    """The 2012 DoubleMuParked RNTuple: J/psi and Z medians of the data README."""
    path = shared_data / "Run2012BC_DoubleMuParked_Muons_1000evts_rntuple_v1-0-0-0.root"
    assert reading.detect_layout(path) == "nanoaod"
    assert reading.inspect(path)["trees"]["Events"]["kind"] == "RNTuple"
    batches = list(reading.iterate(path, step_size=300))
    assert [b.n_events for b in batches] == [300, 300, 300, 100]
    batch = concatenate(batches)
    assert list(batch.collections) == ["muon"]
    assert list(batch["muon"].fields) == ["pt", "eta", "phi", "mass", "charge"]
    mass = _dimuon_masses(batch)
    jpsi = mass[(mass > 2.9) & (mass < 3.3)]
    z = mass[(mass > 81) & (mass < 101)]
    assert len(jpsi) == 47
    assert np.median(jpsi) == pytest.approx(3.095, abs=0.002)
    assert np.median(z) == pytest.approx(90.94, abs=0.02)
    part = reading.read(path, 250, 650)
    np.testing.assert_array_equal(part["muon"]["pt"], batch.slice(250, 650)["muon"]["pt"])


def test_small_dy_without_eta_phi(shared_data):
    path = shared_data / "uproot-small-dy-withoffsets.root"
    assert reading.detect_layout(path) == "nanoaod"
    with pytest.raises(ReadError) as err:
        reading.read(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "missing branch 'Muon_eta' (muon.eta) in tree 'tree'" in msg
    assert "Muon_pt" in msg
    assert "Muon_charge" in msg


def test_unknown_layout_real_file(shared_data):
    path = shared_data / "uproot-Zmumu.root"
    with pytest.raises(ReadError, match="cannot tell the layout") as err:
        reading.read(path)
    assert "trees in the file: events" in str(err.value)
    info = reading.inspect(path)
    assert info["layout"] is None
    assert "cannot tell the layout" in info["layout_error"]
    assert info["trees"]["events"]["entries"] == 2304


def test_random_poet_files_from_the_shared_helper(write_poet_file, tmp_path):
    path = write_poet_file(tmp_path / "rand.root", 500, seed=7)
    counters = {
        "muon": ("mymuons/Events", "numbermuon"),
        "jet": ("myjets/Events", "numberjet"),
    }
    batches = list(reading.iterate(path, step_size=128))
    assert [b.n_events for b in batches] == [128, 128, 128, 116]
    batch = concatenate(batches)
    with uproot.open(path) as f:
        for coll, (tree, counter) in counters.items():
            np.testing.assert_array_equal(batch[coll].counts, f[tree][counter].array(library="np"))
    assert 1.5 < batch["muon"].n_objects / 500 < 2.5
    assert 3.5 < batch["jet"].n_objects / 500 < 4.5
    assert np.all(batch["jet"]["pt"] >= 15.0)


def test_isolation_is_delta_beta_corrected_and_falls_back_for_older_files(
    tmp_path, poet_events, monkeypatch
):
    """``iso`` is POET's muon_pfreliso04DBCorr (what CMS muon selections use); a POET file
    without that branch (older POET versions) gives muon_pfreliso04all instead."""
    new = write_poet(tmp_path / "new.root", poet_events)
    b = reading.read(new, collections=["muon"], fields={"muon": ["pt", "iso"]})
    want = ak.to_numpy(ak.flatten(poet_events["muon"]["muon_pfreliso04DBCorr"]))
    np.testing.assert_array_equal(b["muon"]["iso"], want)
    import dataclasses

    pc = schema.POET_COLLECTIONS["muon"]
    older = dataclasses.replace(
        pc, branches=tuple(b for b in pc.branches if b.name != "muon_pfreliso04DBCorr")
    )
    with monkeypatch.context() as m:  # a POET version that did not write the branch
        m.setitem(schema.POET_COLLECTIONS, "muon", older)
        old_events = dict(poet_events)
        old_events["muon"] = {
            k: v for k, v in poet_events["muon"].items() if k != "muon_pfreliso04DBCorr"
        }
        old = write_poet(tmp_path / "old.root", old_events)
    with uproot.open(old) as f:
        assert "muon_pfreliso04DBCorr" not in f["mymuons/Events"].keys()  # noqa: SIM118
    b = reading.read(old, collections=["muon"], fields={"muon": ["pt", "iso"]})
    want = ak.to_numpy(ak.flatten(poet_events["muon"]["muon_pfreliso04all"]))
    np.testing.assert_array_equal(b["muon"]["iso"], want)


def test_constant_id_branch_warns_once_naming_file_and_branch(shared_data):
    nano = shared_data / "nanoAOD_2015_CMS_Open_Data_ttbar.root"
    if not nano.exists():
        pytest.skip(f"real CMS file {nano} not found (the repo is cloned beside shared/)")
    with pytest.warns(reading.ConstantIDWarning, match=r"Muon_tightId.*all 41 muons") as rec:
        batches = list(reading.iterate(nano, 1000))
    assert sum(b.n_events for b in batches) == 200
    assert sum("Muon_tightId" in str(w.message) for w in rec) == 1


def test_nanoaod_jet_id_is_the_tight_bit_and_cuts_jets(shared_data):
    """``Jet_jetId`` bit 2 (tight) is the jets' ``tight_id``; the default selection applies it
    where it exists (POET has no jet-ID branch)."""
    nano = shared_data / "nanoAOD_2015_CMS_Open_Data_ttbar.root"
    if not nano.exists():
        pytest.skip(f"real CMS file {nano} not found (the repo is cloned beside shared/)")
    import warnings

    import poetml
    from poetml.features import FeatureSpec
    from poetml.selection import JetSelection, Selection

    with uproot.open(nano) as f:
        jid = ak.to_numpy(ak.flatten(f["Events"]["Jet_jetId"].array()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = reading.read(nano)
        np.testing.assert_array_equal(b["jet"]["tight_id"], ((jid & 2) != 0).astype(np.float32))
        assert int((b["jet"]["tight_id"] == 0).sum()) == 49
        spec = FeatureSpec(slots=(), event_quantities=("n_jet",))
        with_id = poetml.build_features(b, spec)[0].sum()
        without = poetml.build_features(
            b,
            FeatureSpec(
                slots=(),
                event_quantities=("n_jet",),
                selection=Selection(jet=JetSelection(jet_id=False)),
            ),
        )[0].sum()
    assert with_id < without
