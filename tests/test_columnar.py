"""Awkward records of events -> EventBatch (poetml.jagged.from_awkward), and images and
features over eager awkward arrays, dask-awkward collections and a coffea processor
(poetml.columnar), checked against the file readers and ``poetml images`` / ``features``."""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np
import pytest

import poetml
from poetml import columnar, reading
from poetml.cli import main
from poetml.jagged import from_awkward, record_columns

NANO_FILE = "nanoAOD_2015_CMS_Open_Data_ttbar.root"


def _nano_flat(poet_events):
    from conftest import nanoaod_arrays

    return ak.zip(nanoaod_arrays(poet_events), depth_limit=1)


def _nano_nested(poet_events):
    """The same events shaped as coffea's NanoEvents: events.Muon.pt, events.MET.pt."""
    groups: dict[str, dict[str, object]] = {}
    for branch, values in __import__("conftest").nanoaod_arrays(poet_events).items():
        coll, name = branch.split("_", 1)
        groups.setdefault(coll, {})[name] = values
    return ak.zip(
        {c: ak.zip(f) if c != "MET" else ak.zip(f, depth_limit=1) for c, f in groups.items()},
        depth_limit=1,
    )


def _poet_flat(poet_events):
    return ak.zip(
        {b: v for coll in ("muon", "electron", "jet", "met") for b, v in poet_events[coll].items()},
        depth_limit=1,
    )


def _canonical(batch):
    """poetml's own names, built from a batch: events.muon.pt, events.met.pt."""
    out = {}
    for name, coll in batch.collections.items():
        out[name] = ak.zip(
            {f: ak.unflatten(v, coll.counts) for f, v in coll.fields.items()}, depth_limit=2
        )
    out["met"] = ak.zip(dict(batch.met), depth_limit=1)
    return ak.zip(out, depth_limit=1)


def _assert_batches_equal(got, want, collections=None):
    for name in collections or want.collections:
        np.testing.assert_array_equal(got[name].offsets, want[name].offsets, err_msg=name)
        assert set(got[name].fields) == set(want[name].fields), name
        for f, v in want[name].fields.items():
            np.testing.assert_array_equal(got[name][f], v, err_msg=f"{name}.{f}")
            assert got[name][f].dtype == np.float32
    assert set(got.met) == set(want.met)
    for f, v in want.met.items():
        np.testing.assert_array_equal(got.met[f], v, err_msg=f"met.{f}")


@pytest.mark.parametrize("shape", ["nanoaod-nested", "nanoaod-flat"])
def test_from_awkward_nanoaod_equals_the_file_reader(poet_events, nanoaod_file, shape):
    events = _nano_nested(poet_events) if shape == "nanoaod-nested" else _nano_flat(poet_events)
    batch = from_awkward(events, collections=("muon", "electron", "jet", "met"))
    want = reading.read(nanoaod_file, collections=("muon", "electron", "jet", "met"))
    assert batch.layout == "nanoaod"
    assert batch.n_events == want.n_events == 6
    _assert_batches_equal(batch, want)
    # Electron.cutBased >= 4 became tight_id, as the reader does it
    assert set(np.unique(batch["electron"]["tight_id"])) <= {0.0, 1.0}


def test_from_awkward_poet_and_canonical_equal_the_file_reader(poet_events, poet_file):
    want = reading.read(poet_file, collections=("muon", "electron", "jet", "met"))
    poet = from_awkward(_poet_flat(poet_events))
    assert poet.layout == "poet"
    _assert_batches_equal(poet, want)
    canonical = from_awkward(_canonical(want), source="x.root", entry_start=10)
    assert canonical.layout == "canonical"
    assert canonical.event_index.tolist() == list(range(10, 16))
    _assert_batches_equal(canonical, want)


def test_from_awkward_supplies_masses_and_chooses_fields(poet_events):
    events = _nano_nested(poet_events)
    events = ak.with_field(events, events.Muon[["pt", "eta", "phi"]], "Muon")
    batch = from_awkward(events, collections="muon", fields={"muon": ("pt", "eta", "phi", "mass")})
    assert list(batch.collections) == ["muon"]
    assert batch.met == {}
    np.testing.assert_array_equal(batch["muon"]["mass"], np.float32(poetml.schema.MASSES["muon"]))


def test_from_awkward_errors_name_what_is_there(poet_events):
    events = _nano_nested(poet_events)
    with pytest.raises(
        ValueError, match=r"no tau\.pt \(looked for Tau\.pt or Tau_pt\); the record has: Muon, "
    ):
        from_awkward(events, collections=("muon", "tau"))
    with pytest.raises(ValueError, match=r"no muon\.dxy .*Muon has: pt, eta, phi"):
        from_awkward(events, fields={"muon": ("dxy",)})
    with pytest.raises(ValueError, match=r"cannot tell how the events name.*the record has: a, b"):
        from_awkward(ak.zip({"a": [1, 2], "b": [3, 4]}))
    with pytest.raises(ValueError, match="unknown record layout 'cms'; valid: auto, nanoaod"):
        from_awkward(events, layout="cms")
    with pytest.raises(ValueError, match="unknown collection 'muons'; valid: muon"):
        from_awkward(events, collections=("muons",))
    with pytest.raises(ValueError, match="unknown muon field 'ptt'; valid: pt"):
        from_awkward(events, fields={"muon": "ptt"})


def test_record_columns_does_not_convert(poet_events):
    cols = record_columns(_nano_nested(poet_events), collections=("electron", "met"))
    tight = cols["electron"]["tight_id"]
    assert tight.convert is not None
    assert tight.convert.__doc__ == "cutBased >= 4"
    assert set(cols["met"]) == {"pt", "phi"}


def test_kernel_fields_follow_the_spec():
    assert columnar.kernel_fields("images", poetml.ImageSpec()) == {
        "muon": ("pt", "eta", "phi", "tight_id", "iso"),
        "electron": ("pt", "eta", "phi", "tight_id"),
        "jet": ("pt", "eta", "phi", "tight_id"),  # the jet ID, where the events have it
        "met": ("pt", "phi"),
    }
    spec = poetml.FeatureSpec(
        slots=(("muon", 2), ("jet", 2)), event_quantities=("m_mumu", "n_bjet")
    )
    fields = columnar.kernel_fields("features", spec)
    assert fields["muon"] == ("pt", "eta", "phi", "mass", "charge", "tight_id", "iso")
    assert fields["jet"] == ("pt", "eta", "phi", "btag", "tight_id")
    # no electron slot, but lepton-jet cleaning needs the selected electrons
    assert fields["electron"] == ("pt", "eta", "phi", "tight_id")


def test_columnar_eager_equals_batch_kernels(poet_events, nanoaod_file):
    events = _nano_nested(poet_events)
    batch = reading.read(nanoaod_file)
    spec = poetml.ImageSpec(n_eta=16, n_phi=16, mode="gaussian")
    np.testing.assert_array_equal(columnar.rasterize(events, spec), poetml.rasterize(batch, spec))
    for fspec in (
        poetml.FeatureSpec(),
        poetml.FeatureSpec(event_quantities=("ht", "n_bjet", "m_mumu", "m_jj", "n_muon")),
    ):
        features, names = columnar.build_features(events, fspec)
        want, want_names = poetml.build_features(batch, fspec)
        assert names == want_names
        np.testing.assert_array_equal(features, want)
    assert not columnar.is_dask(events)


def test_columnar_over_dask_awkward_partitions(poet_events, nanoaod_file):
    dak = pytest.importorskip(
        "dask_awkward",
        reason="dask-awkward is not installed (the coffea extra, NumPy 2 only: CI runs this in .venv-np2)",
    )
    events = _nano_nested(poet_events)
    lazy_events = dak.from_awkward(events, npartitions=3)
    assert columnar.is_dask(lazy_events)
    with pytest.raises(TypeError, match=r"dask-awkward collection; use poetml\.columnar"):
        from_awkward(lazy_events)
    batch = reading.read(nanoaod_file)
    images = columnar.rasterize(lazy_events)
    assert columnar.is_dask(images)
    # only what the kernel reads is marked as needed: kinematics and the selection's inputs
    needed = set().union(*dak.report_necessary_columns(images).values())
    assert {"Muon.pt", "Jet.eta", "MET.phi", "Muon.tightId", "Muon.pfRelIso04_all"} <= needed
    assert not {"Jet.hadronFlavour", "Jet.btagCSVV2", "Muon.mass", "Muon.charge"} & needed
    glyphs = columnar.rasterize(lazy_events, poetml.ImageSpec(mode="glyph"))
    assert "Muon.charge" in set().union(*dak.report_necessary_columns(glyphs).values())
    np.testing.assert_array_equal(ak.to_numpy(images.compute()), poetml.rasterize(batch))
    features, names = columnar.build_features(lazy_events)
    np.testing.assert_array_equal(ak.to_numpy(features.compute()), poetml.build_features(batch)[0])
    assert names == poetml.build_features(batch)[1]


def _cli_output(tmp_path, kind, path):
    from poetml.datasets.hdf5 import load

    out = tmp_path / f"{kind}.h5"
    assert main([kind, str(path), "-o", str(out), "--no-progress"]) == 0
    ds = load(out)  # either image layout (the CLI writes sparse images by default)
    return ds.data, ds.event_index


def test_coffea_processor_equals_poetml_images_and_features(shared_data, tmp_path):
    pytest.importorskip(
        "coffea",
        reason="coffea is not installed (the coffea extra, NumPy 2 only: CI runs this in .venv-np2)",
    )
    from coffea import processor
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    path = shared_data / NANO_FILE

    class Images(processor.ProcessorABC):
        """What an analyst writes: images and features of every chunk of NanoEvents."""

        def process(self, events):
            images = columnar.rasterize(events)
            features, _ = columnar.build_features(events)
            return {"chunks": [(events.metadata["entrystart"], images, features)]}

        def postprocess(self, accumulator):
            return accumulator

    with warnings.catch_warnings():  # coffea's notes on this old file's cross-references
        warnings.simplefilter("ignore", RuntimeWarning)
        runner = processor.Runner(
            executor=processor.IterativeExecutor(), schema=NanoAODSchema, chunksize=64
        )
        result = runner({"ttbar": {"files": {str(path): "Events"}}}, processor_instance=Images())
        lazy = NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=NanoAODSchema, mode="dask"
        ).events()
        lazy_images = columnar.rasterize(lazy).compute()
    chunks = sorted(result["chunks"], key=lambda c: c[0])
    assert [c[0] for c in chunks] == [0, 67, 134]  # 200 events in chunks of about 64
    images = np.concatenate([c[1] for c in chunks])
    features = np.concatenate([c[2] for c in chunks])

    want_images, index = _cli_output(tmp_path, "images", path)
    want_features, _ = _cli_output(tmp_path, "features", path)
    np.testing.assert_array_equal(index, np.arange(200))
    assert images.shape == want_images.shape == (200, 32, 32, 4)
    assert want_images.sum() > 0
    assert np.count_nonzero(want_features[:, 0]) > 100
    np.testing.assert_array_equal(images, want_images)
    np.testing.assert_array_equal(features, want_features)
    np.testing.assert_array_equal(ak.to_numpy(lazy_images), want_images)
