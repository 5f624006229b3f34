"""Shared pytest fixtures: tiny ntuples written with uproot in every layout poetml reads.

Fixtures (session-scoped, deterministic):

``poet_events``
    the content of the small files: ``{collection: {branch: array}}`` keyed by the POET
    collection names of :data:`poetml.schema.POET_COLLECTIONS` and holding every branch
    of every analyzer (jagged branches as awkward arrays, scalars as NumPy).  6 events;
    event 1 is empty (no muon, electron, jet or generator particle).
``poet_file``
    POET per-analyzer layout: ``mymuons/Events``, ``myelectrons/Events``, ``myjets/Events``,
    ``mymets/Events``, ``mygenparticles/Events``, every branch of every analyzer.
``poet_merged_file``
    the same branches in one ``events`` tree.
``nanoaod_file``
    the same events as NanoAOD (``Events``: ``nMuon``, ``Muon_pt`` ...): the subset of
    branches poetml reads (see :func:`nanoaod_arrays` for the mapping).
``shared_data``
    ``Path`` of the real CMS files in ``../shared/data`` (skips when absent).
``write_poet_file``
    ``write_poet_file(path, n_events, seed=0, layout="poet")``: a POET file of random
    events (about 2 muons, 0.5 electrons and 4 jets per event) for bigger tests.

uproot writes jagged branches as ROOT C arrays with a counter branch (``float[]`` counted
by ``numbermuon``), where the analyzers write ``std::vector<float>``; the names and element
types are those of the schema, and uproot reads both as the same jagged arrays.
The helpers below are plain functions so ``bench/`` can import this module too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from poetml import schema

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: objects per event in the small fixture files (event 1 is empty)
SMALL_COUNTS = {
    "muon": [2, 0, 1, 0, 3, 1],
    "electron": [1, 0, 0, 2, 0, 1],
    "jet": [3, 0, 2, 0, 1, 5],
    "genparticle": [4, 0, 2, 1, 3, 2],
}

_UPROOT_TYPES = {
    "int": "int32",
    "float": "float32",
    "std::vector<float>": "var * float32",
    "std::vector<int>": "var * int32",
}


def _jag(values: np.ndarray, counts: np.ndarray):  # -> ak.Array
    import awkward as ak

    return ak.unflatten(values, counts)


def make_poet_events(
    n_events: int | None = None,
    seed: int = 0,
    *,
    counts: dict[str, list[int]] | None = None,
    mean_muons: float = 2.0,
    mean_electrons: float = 0.5,
    mean_jets: float = 4.0,
    mean_genparticles: float = 5.0,
) -> dict[str, dict[str, object]]:
    """Random but physically consistent POET events: ``{collection: {branch: array}}``.

    Every branch of :data:`poetml.schema.POET_COLLECTIONS` is filled (the counters too),
    with the element type of its C++ type (int -> int32, float -> float32).  ``counts``
    fixes the number of objects per event per collection; otherwise Poisson numbers with
    the given means.
    """
    rng = np.random.default_rng(seed)
    if counts is None:
        if n_events is None:
            raise ValueError("give n_events or counts")
        means = {
            "muon": mean_muons,
            "electron": mean_electrons,
            "jet": mean_jets,
            "genparticle": mean_genparticles,
        }
        counts = {k: rng.poisson(m, n_events).tolist() for k, m in means.items()}
    n_events = len(next(iter(counts.values())))
    f32 = np.float32
    out: dict[str, dict[str, object]] = {}

    def kinematics(n: int, pt: np.ndarray, eta_max: float, mass: np.ndarray | float):
        eta = rng.uniform(-eta_max, eta_max, n)
        phi = rng.uniform(-np.pi, np.pi, n)
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        e = np.sqrt(px**2 + py**2 + pz**2 + np.asarray(mass) ** 2)
        return eta, phi, px, py, pz, e

    # muons
    c = np.asarray(counts["muon"], dtype=np.int64)
    n = int(c.sum())
    pt = 5.0 + rng.exponential(20.0, n)
    eta, phi, px, py, pz, e = kinematics(n, pt, 2.4, schema.MASSES["muon"])
    loose = rng.random(n) < 0.95
    medium = loose & (rng.random(n) < 0.9)
    tight = medium & (rng.random(n) < 0.85)
    dxy, dz = rng.normal(0, 0.01, n), rng.normal(0, 0.05, n)
    mu = {
        "muon_e": e, "muon_pt": pt, "muon_px": px, "muon_py": py, "muon_pz": pz,
        "muon_eta": eta, "muon_phi": phi,
        "muon_ch": rng.choice([-1, 1], n).astype(np.int32),
        "muon_isLoose": loose.astype(np.int32), "muon_isMedium": medium.astype(np.int32),
        "muon_isTight": tight.astype(np.int32),
        "muon_pfreliso03all": rng.exponential(0.08, n), "muon_pfreliso04all": rng.exponential(0.1, n),
        "muon_pfreliso04DBCorr": rng.exponential(0.08, n),
        "muon_dxy": dxy, "muon_dz": dz,
        "muon_dxyError": np.abs(rng.normal(0, 0.002, n)), "muon_dzError": np.abs(rng.normal(0, 0.01, n)),
        "muon_genpartidx": rng.integers(-1, 3, n).astype(np.int32),
    }  # fmt: skip
    out["muon"] = {"numbermuon": c.astype(np.int32)}
    out["muon"].update(
        {k: _jag(v if v.dtype == np.int32 else v.astype(f32), c) for k, v in mu.items()}
    )

    # electrons
    c = np.asarray(counts["electron"], dtype=np.int64)
    n = int(c.sum())
    pt = 7.0 + rng.exponential(20.0, n)
    eta, phi, px, py, pz, e = kinematics(n, pt, 2.5, schema.MASSES["electron"])
    loose = rng.random(n) < 0.9
    medium = loose & (rng.random(n) < 0.85)
    tight = medium & (rng.random(n) < 0.8)
    el = {
        "electron_e": e, "electron_pt": pt, "electron_px": px, "electron_py": py,
        "electron_pz": pz, "electron_eta": eta, "electron_phi": phi,
        "electron_ch": rng.choice([-1, 1], n).astype(np.int32),
        "electron_iso": rng.exponential(0.1, n),
        "electron_isLoose": loose.astype(np.int32), "electron_isMedium": medium.astype(np.int32),
        "electron_isTight": tight.astype(np.int32),
        "electron_dxy": rng.normal(0, 0.01, n), "electron_dz": rng.normal(0, 0.05, n),
        "electron_dxyError": np.abs(rng.normal(0, 0.002, n)),
        "electron_dzError": np.abs(rng.normal(0, 0.01, n)),
    }  # fmt: skip
    out["electron"] = {"numberelectron": c.astype(np.int32)}
    out["electron"].update(
        {k: _jag(v if v.dtype == np.int32 else v.astype(f32), c) for k, v in el.items()}
    )

    # jets
    c = np.asarray(counts["jet"], dtype=np.int64)
    n = int(c.sum())
    raw = 15.0 + rng.exponential(30.0, n)
    corr = raw * rng.uniform(1.0, 1.25, n)
    mass = rng.uniform(2.0, 20.0, n)
    eta, phi, px, py, pz, e = kinematics(n, raw, 4.7, mass)
    jet = {
        "jet_e": e, "jet_pt": raw, "jet_eta": eta, "jet_phi": phi, "jet_mass": mass,
        "jet_btag": rng.random(n), "jet_hflav": rng.choice([0, 4, 5], n).astype(np.int32),
        "jet_corrpt": corr, "jet_corre": e * corr / raw,
    }  # fmt: skip
    out["jet"] = {"numberjet": c.astype(np.int32)}
    out["jet"].update(
        {k: _jag(v if v.dtype == np.int32 else v.astype(f32), c) for k, v in jet.items()}
    )

    # MET (one value per event)
    pt = rng.exponential(30.0, n_events)
    phi = rng.uniform(-np.pi, np.pi, n_events)
    out["met"] = {
        "met_e": pt, "met_pt": pt, "met_px": pt * np.cos(phi), "met_py": pt * np.sin(phi),
        "met_phi": phi, "met_sumet": 200.0 + rng.exponential(300.0, n_events),
        "met_significance": rng.exponential(2.0, n_events),
    }  # fmt: skip
    out["met"] = {k: np.asarray(v, dtype=f32) for k, v in out["met"].items()}

    # generator particles
    c = np.asarray(counts["genparticle"], dtype=np.int64)
    n = int(c.sum())
    pt = rng.exponential(20.0, n)
    mass = rng.choice([0.0, 0.1056584, 80.4, 91.19], n)
    eta, phi, px, py, pz, _ = kinematics(n, pt, 5.0, mass)
    gen = {
        "GenPart_pt": pt, "GenPart_eta": eta, "GenPart_phi": phi, "GenPart_mass": mass,
        "GenPart_pdgId": rng.choice([-13, 13, 11, -11, 24, 23, 5, -5], n).astype(np.int32),
        "GenPart_status": rng.choice([1, 2, 62], n).astype(np.int32),
        "GenPart_px": px, "GenPart_py": py, "GenPart_pz": pz,
    }  # fmt: skip
    out["genparticle"] = {"numGenPart": c.astype(np.int32)}
    out["genparticle"].update(
        {k: _jag(v if v.dtype == np.int32 else v.astype(f32), c) for k, v in gen.items()}
    )
    out["genparticle"]["GenMET_pt"] = rng.exponential(20.0, n_events).astype(f32)
    out["genparticle"]["GenMET_phi"] = rng.uniform(-np.pi, np.pi, n_events).astype(f32)

    # the branch lists are exactly the schema's
    for name, pc in schema.POET_COLLECTIONS.items():
        assert tuple(out[name]) == pc.branch_names, (name, tuple(out[name]), pc.branch_names)
    return out


def _slice(arrays: dict[str, object], start: int, stop: int) -> dict[str, object]:
    return {k: v[start:stop] for k, v in arrays.items()}


def write_poet(
    path: str | Path,
    events: dict[str, dict[str, object]],
    layout: str = "poet",
    *,
    chunk: int = 100_000,
    compression: object = "default",
    collections: tuple[str, ...] | None = None,
) -> Path:
    """Write ``events`` (from :func:`make_poet_events`) as a POET file.

    ``layout="poet"``: one ``<directory>/Events`` tree per analyzer; ``"poet-merged"``: one
    ``events`` tree.  ``collections`` restricts which analyzers are written.
    """
    import uproot

    path = Path(path)
    names = [
        c
        for c in schema.POET_COLLECTIONS
        if c in events and (collections is None or c in collections)
    ]
    kw = {} if compression == "default" else {"compression": compression}
    n_events = len(events[names[0]][schema.POET_COLLECTIONS[names[0]].branches[0].name])

    def types_of(name: str) -> dict[str, str]:
        pc = schema.POET_COLLECTIONS[name]
        return {b.name: _UPROOT_TYPES[b.ctype] for b in pc.branches if b.name != pc.counter}

    with uproot.recreate(path, **kw) as f:
        if layout == "poet":
            for name in names:
                pc = schema.POET_COLLECTIONS[name]
                tree = f.mktree(
                    f"{pc.directory}/{schema.POET_TREE}",
                    types_of(name),
                    counter_name=lambda _counted, _c=pc.counter: _c,
                )
                data = {k: v for k, v in events[name].items() if k != pc.counter}
                for start in range(0, max(n_events, 1), chunk):
                    tree.extend(_slice(data, start, start + chunk))
        elif layout == "poet-merged":
            types: dict[str, str] = {}
            counter_of: dict[str, str] = {}
            data = {}
            for name in names:
                pc = schema.POET_COLLECTIONS[name]
                types.update(types_of(name))
                for b in pc.branches:
                    if b.name != pc.counter:
                        counter_of[b.name] = pc.counter or ""
                        data[b.name] = events[name][b.name]
            tree = f.mktree(schema.POET_MERGED_TREE, types, counter_name=counter_of.__getitem__)
            for start in range(0, max(n_events, 1), chunk):
                tree.extend(_slice(data, start, start + chunk))
        else:
            raise ValueError(f"unknown POET layout {layout!r}")
    return path


def nanoaod_arrays(events: dict[str, dict[str, object]]) -> dict[str, object]:
    """The NanoAOD branches of the same events.

    Muon_* from muon_* (Muon_mass = the muon mass, Muon_tightId bool); Electron_cutBased =
    4 tight, 3 medium, 2 loose, 0 otherwise; Jet_pt = jet_corrpt, Jet_rawFactor =
    1 - jet_pt / jet_corrpt, Jet_btagCSVV2 = jet_btag; MET_pt, MET_phi, MET_sumEt,
    MET_significance.
    """
    import awkward as ak

    mu, el, jet, met = events["muon"], events["electron"], events["jet"], events["met"]
    f32 = np.float32
    cut = (
        ak.values_astype(el["electron_isLoose"], np.int32) * 2
        + el["electron_isMedium"]
        + el["electron_isTight"]
    )
    return {
        "Muon_pt": mu["muon_pt"], "Muon_eta": mu["muon_eta"], "Muon_phi": mu["muon_phi"],
        "Muon_mass": ak.values_astype(ak.ones_like(mu["muon_pt"]) * schema.MASSES["muon"], f32),
        "Muon_charge": mu["muon_ch"],
        "Muon_tightId": ak.values_astype(mu["muon_isTight"], bool),
        "Muon_pfRelIso04_all": mu["muon_pfreliso04DBCorr"],  # NanoAOD: delta-beta corrected
        "Electron_pt": el["electron_pt"], "Electron_eta": el["electron_eta"],
        "Electron_phi": el["electron_phi"],
        "Electron_mass": ak.values_astype(ak.ones_like(el["electron_pt"]) * schema.MASSES["electron"], f32),
        "Electron_charge": el["electron_ch"],
        "Electron_cutBased": ak.values_astype(cut, np.int32),
        "Electron_pfRelIso03_all": el["electron_iso"],
        "Jet_pt": jet["jet_corrpt"], "Jet_eta": jet["jet_eta"], "Jet_phi": jet["jet_phi"],
        "Jet_mass": jet["jet_mass"], "Jet_btagCSVV2": jet["jet_btag"],
        "Jet_rawFactor": ak.values_astype(1.0 - jet["jet_pt"] / jet["jet_corrpt"], f32),
        "Jet_hadronFlavour": jet["jet_hflav"],
        "MET_pt": met["met_pt"], "MET_phi": met["met_phi"], "MET_sumEt": met["met_sumet"],
        "MET_significance": met["met_significance"],
    }  # fmt: skip


def write_nanoaod(path: str | Path, events: dict[str, dict[str, object]]) -> Path:
    """Write the events as a NanoAOD ``Events`` TTree (counters nMuon, nElectron, nJet)."""
    import awkward as ak
    import uproot

    path = Path(path)
    arrays = nanoaod_arrays(events)
    types = {}
    for k, v in arrays.items():
        t = ak.type(v).content
        types[k] = str(t)
    with uproot.recreate(path) as f:
        tree = f.mktree(
            schema.NANOAOD_TREE, types, counter_name=lambda counted: "n" + counted.split("_")[0]
        )
        tree.extend(arrays)
    return path


def write_poet_random(
    path: str | Path, n_events: int, seed: int = 0, layout: str = "poet", **kw
) -> Path:
    """A POET file of ``n_events`` random events (see :func:`make_poet_events`)."""
    return write_poet(path, make_poet_events(n_events, seed, **kw), layout)


# --------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def poet_events() -> dict[str, dict[str, object]]:
    return make_poet_events(counts=SMALL_COUNTS, seed=2012)


@pytest.fixture(scope="session")
def poet_file(tmp_path_factory: pytest.TempPathFactory, poet_events) -> Path:
    return write_poet(tmp_path_factory.mktemp("poet") / "poet.root", poet_events, "poet")


@pytest.fixture(scope="session")
def poet_merged_file(tmp_path_factory: pytest.TempPathFactory, poet_events) -> Path:
    return write_poet(
        tmp_path_factory.mktemp("poet_merged") / "poet_merged.root", poet_events, "poet-merged"
    )


@pytest.fixture(scope="session")
def nanoaod_file(tmp_path_factory: pytest.TempPathFactory, poet_events) -> Path:
    return write_nanoaod(tmp_path_factory.mktemp("nanoaod") / "nanoaod.root", poet_events)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real CMS test files not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def write_poet_file():
    return write_poet_random


@pytest.fixture(scope="session", autouse=True)
def _pileup_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory):
    """Pile-up pools generated by tests go to a session directory, never to ~/.cache."""
    import os

    old = os.environ.get("POETML_CACHE")
    os.environ["POETML_CACHE"] = str(tmp_path_factory.mktemp("poetml-cache"))
    yield
    if old is None:
        os.environ.pop("POETML_CACHE", None)
    else:
        os.environ["POETML_CACHE"] = old
