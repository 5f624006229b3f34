"""poetml.generate: files, layouts, determinism, bad input, CLI (small samples, MPI off)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")
uproot = pytest.importorskip("uproot")

from poetml import schema
from poetml.generate import PROCESSES, generate, generate_default
from poetml.generate.writer import NtupleWriter


@pytest.fixture(scope="module")
def ttbar_poet(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "tt.root"
    summary = generate("ttbar", 120, path, seed=3, mpi=False, workers=1, progress=False)
    return path, summary


def _all_arrays(path, layout):
    out = {}
    with uproot.open(path) as f:
        for name, pc in schema.POET_COLLECTIONS.items():
            tree = f[
                f"{pc.directory}/{schema.POET_TREE}"
                if layout == "poet"
                else schema.POET_MERGED_TREE
            ]
            out[name] = tree.arrays(list(pc.branch_names), library="ak")
    return out


def test_poet_layout_has_every_schema_branch_with_its_type(ttbar_poet):
    path, summary = ttbar_poet
    assert summary["events"] == 120
    assert summary["sigma_pb"] > 0
    with uproot.open(path) as f:
        for pc in schema.POET_COLLECTIONS.values():
            tree = f[f"{pc.directory}/Events"]
            assert tree.num_entries == 120
            extra = (
                {
                    schema.WEIGHT_BRANCH_NAME,
                    schema.PTHAT_BRANCH_NAME,
                    schema.PILEUP_PTHAT_BRANCH_NAME,
                }
                if pc.name == "genparticle"
                else set()
            )
            assert set(tree.keys()) == set(pc.branch_names) | extra, pc.name
            for b in pc.branches:
                interp = str(tree[b.name].interpretation)
                want = "i4" if "int" in b.ctype else "f4"
                assert want in interp, (b.name, interp)
                if b.ctype.startswith("std::vector"):
                    assert "AsJagged" in interp, b.name


def test_every_file_carries_weights_summing_to_its_cross_section_and_its_metadata(ttbar_poet):
    from poetml.generate.writer import read_metadata

    path, summary = ttbar_poet
    with uproot.open(path) as f:
        w = f["mygenparticles/Events"][schema.WEIGHT_BRANCH_NAME].array(library="np")
    assert w.dtype == np.float64
    assert len(w) == 120
    assert np.all(w > 0)
    # ttbar has no filter and no forced decay outside resonances: sum = Pythia's sigma
    assert w.sum() == pytest.approx(summary["sigma_pb"], rel=1e-12)
    assert summary["sigma_filtered_pb"] == pytest.approx(w.sum(), rel=1e-12)
    meta = read_metadata(path)
    assert meta is not None
    assert meta["process"] == "ttbar"
    assert meta["events"] == meta["tried"] == 120
    assert meta["sigma_pb"] == pytest.approx(summary["sigma_pb"])
    assert meta["sigma_err_pb"] > 0
    assert meta["sigma_weighted_pb"] == pytest.approx(w.sum())
    assert meta["sigma_reference_pb"] == 832.0  # NNLO+NNLL, recorded beside Pythia's LO
    assert "Top:gg2ttbar = on" in meta["settings"]


def test_branches_are_physically_filled(ttbar_poet):
    a = _all_arrays(ttbar_poet[0], "poet")
    for name, pc in schema.POET_COLLECTIONS.items():
        for b in pc.branches:
            vals = (
                np.asarray(a[name][b.name])
                if not b.ctype.startswith("std")
                else np.asarray(__import__("awkward").flatten(a[name][b.name]))
            )
            assert len(vals) > 0, b.name
            assert np.all(np.isfinite(vals)), b.name
            if b.name not in ("muon_isLoose", "muon_isMedium", "muon_genpartidx"):
                assert np.any(vals != 0), f"{b.name} is all zeros"
    mu, jet, met, gen = a["muon"], a["jet"], a["met"], a["genparticle"]
    ak = pytest.importorskip("awkward")
    assert ak.all(ak.num(mu.muon_pt) == mu.numbermuon)
    assert ak.all(np.abs(mu.muon_eta) < 2.4)
    assert ak.all(mu.muon_pt >= 3.0)
    assert set(np.unique(ak.flatten(mu.muon_ch))) <= {-1, 1}
    assert ak.all(jet.jet_corrpt > jet.jet_pt)  # the correction undoes a response < 1
    assert set(np.unique(ak.flatten(jet.jet_hflav))) <= {0, 4, 5}
    assert ak.all(ak.flatten(jet.jet_hflav) >= 0)
    assert 5 in set(np.unique(ak.flatten(jet.jet_hflav)))
    # jets are pT-ordered
    cpt = jet.jet_corrpt
    assert ak.all(ak.flatten(cpt[:, 1:] <= cpt[:, :-1]))
    np.testing.assert_allclose(np.hypot(met.met_px, met.met_py), met.met_pt, rtol=1e-4)
    assert np.all(met.met_sumet > met.met_pt * 0.5)
    # tops appear in the stored generator record, muon_genpartidx points at a muon of
    # (almost) the same momentum
    assert ak.any(gen.GenPart_pdgId == 6)
    idx = mu.muon_genpartidx
    gpid = gen.GenPart_pdgId[idx]
    assert ak.all(np.abs(ak.flatten(gpid)) == 13)
    gpt = gen.GenPart_pt[idx]
    rel = ak.flatten(np.abs(gpt - mu.muon_pt) / gpt)
    assert np.median(np.asarray(rel)) < 0.05


def test_same_seed_same_file_for_any_worker_count(tmp_path):
    a = generate(
        "dy", 300, tmp_path / "a.root", seed=7, mpi=False, workers=1, chunk_size=100, progress=False
    )
    b = generate(
        "dy", 300, tmp_path / "b.root", seed=7, mpi=False, workers=2, chunk_size=100, progress=False
    )
    assert b["workers"] == 2
    c = generate(
        "dy", 300, tmp_path / "c.root", seed=8, mpi=False, workers=1, chunk_size=100, progress=False
    )
    aa, bb, cc = (_all_arrays(s["path"], "poet") for s in (a, b, c))
    for coll in schema.POET_COLLECTIONS:
        for br in aa[coll].fields:
            assert aa[coll][br].tolist() == bb[coll][br].tolist(), (coll, br)
    assert aa["muon"]["muon_pt"].tolist() != cc["muon"]["muon_pt"].tolist()


def test_merged_layout_and_poetml_reader(tmp_path):
    path = tmp_path / "m.root"
    generate("wjets", 60, path, seed=2, layout="merged", mpi=False, workers=1, progress=False)
    with uproot.open(path) as f:
        assert [k.split(";")[0] for k in f] == ["events", schema.GENERATION_METADATA_KEY]
        keys = set(f["events"].keys())
    every = {b for pc in schema.POET_COLLECTIONS.values() for b in pc.branch_names}
    gen = {schema.WEIGHT_BRANCH_NAME, schema.PTHAT_BRANCH_NAME, schema.PILEUP_PTHAT_BRANCH_NAME}
    assert keys == every | gen
    reading = pytest.importorskip("poetml.reading")
    batches = list(reading.iterate(str(path), step_size=25))
    assert sum(b.n_events for b in batches) == 60
    assert reading.detect_layout(str(path)) == "poet-merged"


def test_poet_file_is_read_by_poetml_iterate(ttbar_poet):
    reading = pytest.importorskip("poetml.reading")
    path = str(ttbar_poet[0])
    assert reading.detect_layout(path) == "poet"
    batch = reading.read(path)
    assert batch.n_events == 120
    with uproot.open(path) as f:
        njet = f["myjets/Events"]["numberjet"].array(library="np")
    np.testing.assert_array_equal(batch["jet"].counts, njet)


def test_bad_input_errors_before_work(tmp_path):
    with pytest.raises(ValueError, match="valid processes: dy, dy_ee"):
        generate("nosuch", 10, tmp_path / "x.root")
    with pytest.raises(ValueError, match="positive"):
        generate("dy", 0, tmp_path / "x.root")
    with pytest.raises(ValueError, match="positive"):
        generate("dy", -5, tmp_path / "x.root")
    with pytest.raises(ValueError, match="does not exist"):
        generate("dy", 10, tmp_path / "no" / "such" / "x.root")
    with pytest.raises(ValueError, match="is a directory"):
        generate("dy", 10, tmp_path)
    with pytest.raises(ValueError, match="valid layouts"):
        generate("dy", 10, tmp_path / "x.root", layout="nanoaod")
    with pytest.raises(ValueError, match="takes no pT-hat"):
        generate("dy", 10, tmp_path / "x.root", pthat_min=20.0)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_leaves_no_file(tmp_path, ttbar_poet):
    from poetml.generate import _Job, _run_chunk
    from poetml.generate.detector import DetectorConfig

    out = _run_chunk(_Job("dy", 0, 20, 1, False, 0.0, None, (), DetectorConfig())).out
    target = tmp_path / "part.root"

    def interrupted() -> None:
        with NtupleWriter(target, "poet") as w:
            w.write(out)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert list(tmp_path.iterdir()) == []


def test_pileup_adds_soft_activity(tmp_path):
    a = generate("dy", 40, tmp_path / "a.root", seed=4, mpi=False, workers=1, progress=False)
    cache = tmp_path / "cache"
    kw = {"seed": 4, "mpi": False, "workers": 1, "pileup": 5, "progress": False}
    kw["pileup_cache"] = cache
    b = generate("dy", 40, tmp_path / "b.root", pileup_pool=300, **kw)
    (pool,) = cache.iterdir()  # premixed: one pool of minimum-bias events, cached
    assert b["metadata"]["pileup_pool"]["events"] == 300
    assert b["metadata"]["pileup_pool"]["file"] == pool.name
    stamp = pool.stat().st_mtime_ns
    c = generate("dy", 40, tmp_path / "c.root", pileup_pool=300, **kw)
    assert pool.stat().st_mtime_ns == stamp  # reused, not regenerated
    with uproot.open(b["path"]) as fb, uproot.open(c["path"]) as fc:
        for tree in ("mymets/Events", "mymuons/Events", "myjets/Events"):
            for k in fb[tree].keys():  # noqa: SIM118 (a TTree iterates branches, not names)
                assert fb[tree][k].array().tolist() == fc[tree][k].array().tolist(), k
    with uproot.open(a["path"]) as fa, uproot.open(b["path"]) as fb:
        sa = fa["mymets/Events"]["met_sumet"].array(library="np")
        sb = fb["mymets/Events"]["met_sumet"].array(library="np")
        ia = fa["mymuons/Events"]["muon_pfreliso04all"].array()
        ib = fb["mymuons/Events"]["muon_pfreliso04all"].array()
    assert sb.mean() > sa.mean() + 20  # 5 minimum-bias events add tens of GeV of sum ET
    ak = pytest.importorskip("awkward")
    assert ak.mean(ak.flatten(ib)) > ak.mean(ak.flatten(ia))
    # each event records the largest pT-hat of its pile-up interactions (0 without any)
    from poetml.generate.pileup import read_pool
    from poetml.reading import read_pileup_pthat, read_pthat

    pool_pthat = read_pool(pool).pthat
    assert (pool_pthat > 0).any()
    assert np.all(np.isfinite(pool_pthat))
    pu = read_pileup_pthat(b["path"])
    assert pu is not None
    assert len(pu) == 40
    assert np.isin(pu.astype(np.float32), np.append(pool_pthat, 0.0)).all()
    assert pu.max() < 30  # the pool's soft events only
    assert (pu > 0).mean() > 0.5  # Poisson(5) draws: almost every event has pile-up
    np.testing.assert_array_equal(read_pileup_pthat(a["path"]), 0.0)
    assert read_pthat(a["path"]) is not None


def test_overlay_records_each_events_largest_pileup_pthat():
    """PileupPool.overlay draws only the pool's soft events (pT-hat below 30 GeV), and its
    per-event maximum pT-hat equals a plain loop over its draws."""
    from poetml.generate.pileup import PileupPool

    sizes = np.array([2, 1, 3, 1, 2])
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n = int(off[-1])
    pool = PileupPool(
        off, np.array([0.0, 3.0, 50.0, 7.0, 12.0], np.float32), np.full(n, 211, np.int32),
        *(np.ones(n, np.float32) for _ in range(4)), sigma_pb=1.0, path="toy",
    )  # fmt: skip
    counts = np.array([0, 3, 1, 4, 2])
    out = pool.overlay(counts, np.random.default_rng(9))
    soft = np.array([0, 1, 3, 4])  # event 2 (50 GeV) is hard: never overlaid
    picks = soft[np.random.default_rng(9).integers(0, 4, int(counts.sum()))]
    want, k = [], 0
    for c in counts:
        want.append(max([float(pool.pthat[p]) for p in picks[k : k + c]], default=0.0))
        k += c
    np.testing.assert_array_equal(out["pthat_max"], want)
    assert len(out["px"]) == int(sizes[picks].sum())
    assert out["pthat_max"].max() < 30


def test_every_process_initialises_and_lists():
    from poetml.generate import make_pythia
    from poetml.generate.processes import pythia_settings

    assert {
        "dy",
        "dy_ee",
        "wjets",
        "ttbar",
        "qcd",
        "jpsi",
        "hzz4l",
        "zprime",
        "zprime_ww",
        "a4l",
        "lq_btau",
        "h0_tautau",
        "hplus_taunu",
    } <= set(PROCESSES)
    for name in PROCESSES:
        p = make_pythia(pythia_settings(name, seed=1, mpi=False))
        assert len(p.nextBatch(2)) == 2, name


def test_documented_cross_section_is_what_pythia_measures():
    from poetml.generate import measure_cross_section

    sigma, err = measure_cross_section("dy", 400)
    assert abs(sigma - PROCESSES["dy"].sigma_pb) < 5 * err + 0.03 * sigma


def test_cli_list_and_errors(tmp_path):
    from poetml.cli import main

    exe = [sys.executable, "-m", "poetml", "generate"]
    r = subprocess.run([*exe, "--list"], capture_output=True, text=True, check=True)
    for name in PROCESSES:
        assert name in r.stdout
    assert "sigma" in r.stdout
    assert "HardQCD:all = on" in r.stdout
    assert main(["generate", "nosuch", "--events", "5", "-o", str(tmp_path / "x.root")]) == 1
    assert main(["generate", "dy", "--events", "0", "-o", str(tmp_path / "x.root")]) == 1
    r = subprocess.run(
        [*exe, "dy", "--events", "5", "-o", str(tmp_path / "x.root"), "--no-mpi", "--workers", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "FastJet" not in r.stdout + r.stderr  # the banner is kept out of the user's output
    assert "wrote 5 dy events" in r.stderr
    r = subprocess.run(
        [*exe, "nosuch", "--events", "5", "-o", str(tmp_path / "y.root")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 1
    assert "valid processes" in r.stderr


def test_default_dataset_manifest_and_reuse(tmp_path):
    events = {"dy": 20, "ttbar": 10}
    m1 = generate_default(tmp_path, events=events, mpi=False, workers=1, progress=False)
    assert m1["labels"] == {"dy": 0, "ttbar": 2}  # positions in DEFAULT_DATASET
    assert m1["processes"]["dy"]["events"] == 20
    assert m1["processes"]["ttbar"]["seed"] == 12345 + 2000
    f = tmp_path / m1["processes"]["dy"]["file"]
    mtime = f.stat().st_mtime_ns
    m2 = generate_default(tmp_path, events=events, mpi=False, workers=1, progress=False)
    assert m2 == m1
    assert f.stat().st_mtime_ns == mtime
    m3 = generate_default(
        tmp_path, events={"dy": 20, "ttbar": 11}, mpi=False, workers=1, progress=False
    )
    assert m3["processes"]["ttbar"]["settings_hash"] != m1["processes"]["ttbar"]["settings_hash"]
    assert m3["processes"]["dy"] == m1["processes"]["dy"]
    assert f.stat().st_mtime_ns == mtime  # only ttbar was regenerated
    assert m3["processes"]["ttbar"]["events"] == 11
    with uproot.open(tmp_path / "ttbar.root") as fh:
        assert fh["myjets/Events"].num_entries == 11


def _arrays(path):
    with uproot.open(path) as f:
        return {
            name: f[f"{d}/Events"].arrays(library="np")
            for name, d in (("mu", "mymuons"), ("jet", "myjets"), ("el", "myelectrons"))
        }


def test_default_dataset_generates_only_what_is_asked_and_caches_per_process(tmp_path):
    from poetml.generate import DEFAULT_DATASET

    a, b = tmp_path / "a", tmp_path / "b"
    kw = {"mpi": False, "workers": 1, "progress": False}
    m1 = generate_default(a, events={"dy": 5}, **kw)
    assert set(m1["processes"]) == {"dy"}
    assert not (a / "wjets.root").exists()
    dy = a / "dy.root"
    st = dy.stat()
    m2 = generate_default(a, events={"dy": 5, "wjets": 5}, **kw)
    assert (dy.stat().st_mtime_ns, dy.stat().st_ino) == (st.st_mtime_ns, st.st_ino)
    assert m2["processes"]["dy"] == m1["processes"]["dy"]
    labels = list(DEFAULT_DATASET)
    assert m2["labels"] == {"dy": labels.index("dy"), "wjets": labels.index("wjets")}
    assert m2["processes"]["wjets"]["label"] == labels.index("wjets")
    wj = (a / "wjets.root").stat()
    # a subset keeps the processes it does not name
    m3 = generate_default(a, events={"wjets": 5}, **kw)
    assert set(m3["processes"]) == {"dy", "wjets"}
    assert (dy.stat().st_mtime_ns, (a / "wjets.root").stat().st_mtime_ns) == (
        st.st_mtime_ns,
        wj.st_mtime_ns,
    )
    # changing dy's count regenerates dy only
    m4 = generate_default(a, events={"dy": 6, "wjets": 5}, **kw)
    assert m4["processes"]["dy"]["events"] == 6
    assert dy.stat().st_mtime_ns != st.st_mtime_ns
    assert (a / "wjets.root").stat().st_mtime_ns == wj.st_mtime_ns
    # the same process and settings give the same events whatever else is generated
    generate_default(b, events={"wjets": 5, "dy": 6}, **kw)
    x, y = _arrays(a / "wjets.root"), _arrays(b / "wjets.root")
    for k in x:
        assert x[k].keys() == y[k].keys()
        for col in x[k]:
            assert np.array_equal(
                np.concatenate(list(x[k][col])) if x[k][col].dtype == object else x[k][col],
                np.concatenate(list(y[k][col])) if y[k][col].dtype == object else y[k][col],
            ), (k, col)


def test_default_dataset_with_a_pthat_bias_regenerates_only_that_process(tmp_path):
    """``bias={qcd: 4}`` (``dataset.default_bias``) generates qcd with bias2Selection: its
    weights span orders of magnitude and still sum to Pythia's cross section; the bias is in
    qcd's cache key only (dy is reused), and taking it away regenerates qcd unbiased."""
    a = tmp_path / "a"
    kw = {"mpi": False, "workers": 1, "progress": False}
    m1 = generate_default(a, events={"dy": 5, "qcd": 200}, **kw)
    dy = (a / "dy.root").stat().st_mtime_ns
    m2 = generate_default(a, events={"dy": 5, "qcd": 200}, bias={"qcd": 4.0}, **kw)
    assert (a / "dy.root").stat().st_mtime_ns == dy
    assert m2["processes"]["dy"] == m1["processes"]["dy"]
    q = m2["processes"]["qcd"]
    assert q["bias_pow"] == 4.0
    assert q["settings_hash"] != m1["processes"]["qcd"]["settings_hash"]
    with uproot.open(a / "qcd.root") as f:
        w = f["mygenparticles/Events"]["weight"].array(library="np")
    assert w.max() / w.min() > 100  # biased: the tail events carry small weights
    assert w.sum() == pytest.approx(q["sigma_filtered_pb"], rel=1e-6)
    with uproot.open(a / "qcd.root") as f:
        assert f["mygenparticles/Events"].num_entries == 200
    m3 = generate_default(a, events={"dy": 5, "qcd": 200}, **kw)
    assert m3["processes"]["qcd"]["bias_pow"] is None
    assert m3["processes"]["qcd"]["settings_hash"] == m1["processes"]["qcd"]["settings_hash"]


def test_files_carry_each_events_pthat(tmp_path):
    """``pthat`` [GeV] beside ``weight``: above qcd's generation threshold (30 GeV) for qcd,
    the hardest interaction's for minimum bias (mostly a few GeV); the labelled dataset
    carries it per event (``gen_pthat``)."""
    from poetml.reading import read_pthat

    kw = {"seed": 4, "mpi": False, "workers": 1, "progress": False}
    q = generate("qcd", 40, tmp_path / "q.root", **kw)
    m = generate("minbias", 200, tmp_path / "m.root", **kw)
    pq, pm = read_pthat(q["path"]), read_pthat(m["path"])
    assert pq is not None
    assert pm is not None
    assert len(pq) == 40
    assert (pq >= 30.0).all()
    assert len(pm) == 200
    assert np.isfinite(pm).all()
    assert np.median(pm) < 10.0
    assert pm.max() > 0  # not all diffractive
    from poetml.datasets import labelled
    from poetml.features import FeatureSpec

    procs = (labelled.ProcessConfig("minbias"), labelled.ProcessConfig("qcd"))
    cfg = labelled.DatasetConfig(kind="features", processes=procs)
    data = labelled.build(cfg, FeatureSpec(), {"minbias": [m["path"]], "qcd": [q["path"]]},
                          progress=False)  # fmt: skip
    np.testing.assert_array_equal(
        data.aux[labelled.GEN_PTHAT], np.concatenate([pm, pq]).astype(np.float32)
    )


@pytest.mark.parametrize(("process", "n"), [("dy", 1), ("dy", 3), ("jpsi", 4)])
def test_tiny_chunks_without_some_objects(tmp_path, process, n):
    """Chunks with no electrons / jets / muons at all still give well-typed columns."""
    s = generate(process, n, tmp_path / "t.root", seed=5, mpi=False, workers=1, progress=False)
    with uproot.open(s["path"]) as f:
        assert f["myelectrons/Events"].num_entries == n
        iso = f["myelectrons/Events"]["electron_iso"].array()
        assert str(iso.type).endswith("float32")


def test_generate_modules_import_no_heavy_dependency():
    code = (
        "import sys, poetml.generate, poetml.cli.generate; "
        "bad = [m for m in ('pythia8mc', 'pythia8', 'fastjet', 'tensorflow') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_delta_beta_isolation_is_robust_against_pileup(tmp_path):
    """With 40 pile-up interactions the plain PF isolation of DY muons grows (neutral pile-up
    in the cone), the delta-beta corrected one (muon_pfreliso04DBCorr, what CMS selections
    use) stays close to its value without pile-up."""
    kw = {"seed": 8, "mpi": False, "workers": 1, "progress": False}
    a = generate("dy", 150, tmp_path / "a.root", **kw)
    b = generate(
        "dy", 150, tmp_path / "b.root", pileup=40, pileup_pool=400,
        pileup_cache=tmp_path / "cache", **kw,
    )  # fmt: skip
    ak = pytest.importorskip("awkward")

    def means(path):
        with uproot.open(path) as f:
            t = f["mymuons/Events"]
            return (
                float(ak.mean(ak.flatten(t["muon_pfreliso04all"].array()))),
                float(ak.mean(ak.flatten(t["muon_pfreliso04DBCorr"].array()))),
            )

    all0, db0 = means(a["path"])
    all40, db40 = means(b["path"])
    assert db0 <= all0 + 1e-9  # the correction never adds
    assert all40 - all0 > 3 * abs(db40 - db0), (all0, all40, db0, db40)
