"""poetml.evaluation: metric values on hand-made inputs, agreement with scikit-learn,
working points and their uncertainties, small-sample warnings, PCA/k-means, dimuon mass."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

from poetml import evaluation as ev
from poetml.jagged import Collection, EventBatch

sklearn_metrics = pytest.importorskip(
    "sklearn.metrics", reason="scikit-learn is not installed (the learn extra)"
)

NAMES = ["DY", "W+jets", "ttbar"]


def _probs(y, n_classes, strength, rng):
    logits = rng.normal(0.0, 1.0, (len(y), n_classes))
    logits[np.arange(len(y)), y] += strength
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------------------
# ROC / AUC
# --------------------------------------------------------------------------------------


def test_perfect_and_reversed_classifier_auc():
    labels = np.r_[np.zeros(50), np.ones(50)].astype(int)
    scores = np.r_[np.linspace(0, 0.4, 50), np.linspace(0.6, 1, 50)]
    assert ev.roc_auc(labels, scores) == 1.0
    assert ev.roc_auc(labels, -scores) == 0.0
    fpr, tpr, thr = ev.roc_curve(labels, scores)
    assert (fpr[0], tpr[0], thr[0]) == (0.0, 0.0, math.inf)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0)
    assert np.all(np.diff(tpr) >= 0)


def test_random_classifier_auc_near_half():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 200_000)
    scores = rng.random(200_000)
    # standard deviation of the AUC of a random classifier ~ sqrt((n0+n1+1)/(12 n0 n1))
    assert abs(ev.roc_auc(labels, scores) - 0.5) < 0.005


def test_ties_count_one_half():
    # all scores equal: one diagonal step, AUC exactly 0.5
    assert ev.roc_auc([0, 1, 0, 1, 1], [0.3] * 5) == 0.5
    # Mann-Whitney with a tie: pairs (s, b): s=2 beats b=1; s=1 ties b=1 -> (1 + 0.5)/2
    assert ev.roc_auc([0, 1, 1], [1.0, 2.0, 1.0]) == pytest.approx(0.75)
    _, _, thr = ev.roc_curve([0, 1, 1], [1.0, 2.0, 1.0])
    assert thr.tolist() == [math.inf, 2.0, 1.0]  # one point per distinct score


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_agrees_with_sklearn_including_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 3000)
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # rounding makes many ties
    assert ev.roc_auc(labels, scores) == pytest.approx(
        sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12
    )
    fpr, tpr, thr = ev.roc_curve(labels, scores)
    sf, st, sthr = sklearn_metrics.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sf)
    np.testing.assert_allclose(tpr, st)
    np.testing.assert_allclose(thr[1:], sthr[1:])


def test_roc_with_weights_matches_sklearn():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    scores = rng.normal(labels, 1.0)
    w = rng.random(500)
    assert ev.roc_auc(labels, scores, w) == pytest.approx(
        sklearn_metrics.roc_auc_score(labels, scores, sample_weight=w), abs=1e-12
    )


def test_roc_errors():
    with pytest.raises(ValueError, match="at least one signal"):
        ev.roc_curve([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="at least one background"):
        ev.roc_curve([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"non-finite.*index 1"):
        ev.roc_curve([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="0 \\(background\\) or 1"):
        ev.roc_curve([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="monotonic"):
        ev.auc([0, 1, 0.5], [0, 1, 1])


def test_thin_curve_keeps_ends_and_log_region():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(100_000), np.ones(1000)].astype(int)
    scores = np.r_[rng.normal(0, 1, 100_000), rng.normal(2, 1, 1000)]
    fpr, tpr, thr = ev.roc_curve(labels, scores)
    f, t, _ = ev.thin_curve(fpr, tpr, thr, max_points=200)
    assert len(f) <= 420
    assert f[0] == 0
    assert f[-1] == 1
    assert t[-1] == 1
    assert np.any((f > 0) & (f < 1e-4))  # the low-FPR region survives
    assert np.all(np.diff(f) >= 0)


# --------------------------------------------------------------------------------------
# classification metrics
# --------------------------------------------------------------------------------------


def test_perfect_classifier():
    y = np.array([0, 1, 2, 0, 1, 2, 2])
    probs = np.eye(3)[y] * 0.9 + 0.05
    m = ev.classification_metrics(y, probs, NAMES)
    assert m["accuracy"] == 1.0
    assert m["macro"]["auc"] == 1.0
    assert m["macro"]["f1"] == 1.0
    assert all(m["per_class"][n]["auc"] == 1.0 for n in NAMES)
    assert m["confusion_matrix"]["counts"] == [[2, 0, 0], [0, 2, 0], [0, 0, 3]]
    json.dumps(m, allow_nan=False)


def test_known_confusion_matrix_and_scores():
    # true:  0 0 0 0 1 1 1 2 2 2
    # pred:  0 0 1 2 1 1 0 2 2 1
    y = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    p = np.array([0, 0, 1, 2, 1, 1, 0, 2, 2, 1])
    m = ev.classification_metrics(y, p, NAMES)
    assert m["confusion_matrix"]["counts"] == [[2, 1, 1], [1, 2, 0], [0, 1, 2]]
    np.testing.assert_allclose(
        m["confusion_matrix"]["normalized"],
        [[0.5, 0.25, 0.25], [1 / 3, 2 / 3, 0], [0, 1 / 3, 2 / 3]],
    )
    assert m["accuracy"] == pytest.approx(0.6)
    dy = m["per_class"]["DY"]
    assert dy["precision"] == pytest.approx(2 / 3)
    assert dy["recall"] == pytest.approx(0.5)
    assert dy["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert dy["support"] == 4
    assert dy["auc"] is None
    assert m["roc"] is None
    assert m["macro"]["auc"] is None


def test_classification_agrees_with_sklearn():
    rng = np.random.default_rng(11)
    y = rng.integers(0, 3, 4000)
    probs = _probs(y, 3, 1.5, rng)
    m = ev.classification_metrics(y, probs, NAMES)
    pred = probs.argmax(axis=1)
    prec, rec, f1, sup = sklearn_metrics.precision_recall_fscore_support(y, pred, zero_division=0)
    for i, n in enumerate(NAMES):
        assert m["per_class"][n]["precision"] == pytest.approx(prec[i], abs=1e-12)
        assert m["per_class"][n]["recall"] == pytest.approx(rec[i], abs=1e-12)
        assert m["per_class"][n]["f1"] == pytest.approx(f1[i], abs=1e-12)
        assert m["per_class"][n]["support"] == sup[i]
        assert m["per_class"][n]["auc"] == pytest.approx(
            sklearn_metrics.roc_auc_score(y == i, probs[:, i]), abs=1e-12
        )
    macro = sklearn_metrics.precision_recall_fscore_support(
        y, pred, average="macro", zero_division=0
    )
    assert [m["macro"][k] for k in ("precision", "recall", "f1")] == pytest.approx(
        list(macro[:3]), abs=1e-12
    )
    weighted = sklearn_metrics.f1_score(y, pred, average="weighted")
    assert m["weighted"]["f1"] == pytest.approx(weighted, abs=1e-12)
    assert m["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(y, pred), abs=1e-12)
    assert m["macro"]["auc"] == pytest.approx(
        sklearn_metrics.roc_auc_score(y, probs, multi_class="ovr", average="macro"), abs=1e-12
    )
    np.testing.assert_array_equal(
        m["confusion_matrix"]["counts"], sklearn_metrics.confusion_matrix(y, pred)
    )
    json.dumps(m, allow_nan=False)  # JSON-serialisable, no inf/NaN


def test_binary_probability_vector_and_missing_class_warning():
    y = np.array([0, 1, 1, 0])
    m = ev.classification_metrics(y, np.array([0.2, 0.9, 0.6, 0.4]), ["bkg", "sig"])
    assert m["accuracy"] == 1.0
    assert m["per_class"]["sig"]["auc"] == 1.0
    m3 = ev.classification_metrics(np.array([0, 1, 0]), np.eye(3)[[0, 1, 1]], NAMES)
    assert m3["per_class"]["ttbar"]["auc"] is None
    assert any("ttbar" in w for w in m3["warnings"])


@pytest.mark.parametrize(
    ("y", "pred", "match"),
    [
        ([0, 1, 3], [0, 1, 2], "class index 3 outside 0..2"),
        ([0, 1, 2], np.ones((3, 2)), "2 columns but 3 class names"),
        ([0, 1], [0, 1, 2], "2 entries but predictions have 3"),
        ([0, 1, 2], np.array([[1, 0, 0], [0, np.nan, 1], [0, 0, 1]]), "non-finite.*row 1"),
        ([0.5, 1, 2], [0, 1, 2], "integer class indices"),
    ],
)
def test_classification_bad_input(y, pred, match):
    with pytest.raises(ValueError, match=match):
        ev.classification_metrics(np.asarray(y), np.asarray(pred), NAMES)


# --------------------------------------------------------------------------------------
# working points, rates, uncertainties
# --------------------------------------------------------------------------------------


def test_rate_fpr_conversion():
    assert ev.rate_to_fpr(1.0) == pytest.approx(2.5e-5)  # 1 kHz at 40 MHz
    assert ev.rate_to_fpr(0.4) == pytest.approx(1e-5)
    assert ev.fpr_to_rate(1e-5) == pytest.approx(0.4)
    assert ev.rate_to_fpr(10.0, collision_rate_mhz=28.6) == pytest.approx(10 / 28_600)
    assert ev.fpr_to_rate(ev.rate_to_fpr(3.7, 31.0), 31.0) == pytest.approx(3.7)
    with pytest.raises(ValueError, match="exceeds the collision rate"):
        ev.rate_to_fpr(50_000.0)
    with pytest.raises(ValueError, match="positive"):
        ev.rate_to_fpr(-1.0)


def test_threshold_at_fpr_exact():
    bkg = np.arange(1000, dtype=float)  # 0..999
    thr = ev.threshold_at_fpr(bkg, 0.01)  # 10 events above
    assert np.count_nonzero(bkg > thr) == 10
    assert thr == 989.0
    assert ev.threshold_at_fpr(bkg, 1e-4) == 999.0  # k = 0: nothing passes
    assert ev.threshold_at_fpr(bkg, 1.0) == -math.inf


def test_efficiency_at_fpr_known_distributions():
    rng = np.random.default_rng(5)
    bkg = rng.normal(0.0, 1.0, 400_000)
    sig = rng.normal(3.0, 1.0, 50_000)
    r = ev.efficiency_at_fpr(bkg, sig, 1e-3)
    # threshold = Phi^-1(1 - 1e-3) = 3.0902; efficiency = 1 - Phi(0.0902) = 0.4641
    assert r["threshold"] == pytest.approx(3.0902, abs=0.03)
    assert r["achieved_fpr"] == pytest.approx(1e-3, rel=1e-9)
    assert r["efficiency"] == pytest.approx(0.4641, abs=0.015)
    lo, hi = r["efficiency_interval"]
    assert lo < r["efficiency"] < hi
    sigma = math.sqrt(r["efficiency"] * (1 - r["efficiency"]) / len(sig))
    assert r["efficiency_err_low"] == pytest.approx(sigma, rel=0.05)
    assert r["efficiency_err_high"] == pytest.approx(sigma, rel=0.05)
    assert r["warning"] is None
    band = r["efficiency_fpr_band"]  # efficiency at the FPR interval ends brackets it
    assert band[0] <= r["efficiency"] <= band[1]
    assert band[1] - band[0] < 0.05
    json.dumps(ev.to_jsonable(r), allow_nan=False)


def test_binomial_intervals_sane():
    lo, hi = ev.binomial_interval(0, 20)
    assert lo == 0.0
    assert 0.0 < hi < 0.1
    lo, hi = ev.binomial_interval(20, 20)
    assert hi == 1.0
    assert 0.9 < lo < 1.0
    for method in ("clopper-pearson", "wilson"):
        lo, hi = ev.binomial_interval(500, 1000, method=method)
        assert lo == pytest.approx(0.5 - 0.0158, abs=1e-3)
        assert hi == pytest.approx(0.5 + 0.0158, abs=1e-3)
    # Clopper-Pearson covers Wilson (it is conservative)
    cp, wi = ev.binomial_interval(3, 50), ev.binomial_interval(3, 50, method="wilson")
    assert cp[0] <= wi[0]
    assert cp[1] >= wi[1]
    with pytest.raises(ValueError, match="0 <= k <= n"):
        ev.binomial_interval(5, 3)


def test_small_background_warning():
    rng = np.random.default_rng(1)
    bkg, sig = rng.normal(0, 1, 50_000), rng.normal(2, 1, 1000)
    with pytest.warns(ev.SmallSampleWarning, match="need at least 1,000,000 background events"):
        r = ev.efficiency_at_fpr(bkg, sig, 1e-5)
    assert "too small" in r["warning"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ev.efficiency_at_fpr(bkg, sig, 1e-3)["warning"] is None  # 50 expected: fine


def test_anomaly_metrics():
    rng = np.random.default_rng(2)
    bkg = rng.normal(0, 1, 200_000)
    sigs = {"easy": rng.normal(4, 1, 3000), "hard": rng.normal(0.5, 1, 3000)}
    with pytest.warns(ev.SmallSampleWarning) as rec:
        a = ev.anomaly_metrics(bkg, sigs, fpr_targets=(1e-3, 1e-5), rate_khz=[10.0])
    assert len(rec) == 1  # one warning for the one small working point, not per signal
    assert [w["name"] for w in a["working_points"]] == ["FPR=0.001", "FPR=1e-05", "rate=10 kHz"]
    assert a["working_points"][2]["fpr"] == pytest.approx(2.5e-4)
    assert len(a["warnings"]) == 1
    assert a["warnings"][0].startswith("FPR=1e-05")
    assert a["signals"]["easy"]["auc"] > 0.99 > a["signals"]["hard"]["auc"] > 0.6
    labels = np.r_[np.zeros(len(bkg)), np.ones(3000)]
    assert a["signals"]["hard"]["auc"] == pytest.approx(
        sklearn_metrics.roc_auc_score(labels, np.r_[bkg, sigs["hard"]]), abs=1e-12
    )
    e = a["signals"]["easy"]["efficiency"]
    assert (
        e["FPR=0.001"]["efficiency"] > e["rate=10 kHz"]["efficiency"] > e["FPR=1e-05"]["efficiency"]
    )
    assert e["FPR=1e-05"]["warning"] is not None
    json.dumps(a, allow_nan=False)
    with pytest.raises(ValueError, match="non-empty mapping"):
        ev.anomaly_metrics(bkg, {})


def test_compare_models_side_by_side():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 1000)
    res = {
        "float": ev.classification_metrics(y, _probs(y, 3, 2.0, rng), NAMES),
        "quantized": ev.classification_metrics(y, _probs(y, 3, 1.8, rng), NAMES),
    }
    rows = ev.compare_models(res, relative_to="float")
    assert rows[0] == ["metric", "float", "quantized", "quantized vs float [%]"]
    acc = next(r for r in rows if r[0] == "accuracy")
    assert acc[1] == res["float"]["accuracy"]
    assert acc[2] == res["quantized"]["accuracy"]
    assert acc[3] == pytest.approx(100 * (acc[2] / acc[1] - 1))
    assert any(r[0] == "ttbar f1" for r in rows)

    bkg = rng.normal(0, 1, 20_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ev.SmallSampleWarning)
        an = {
            m: ev.anomaly_metrics(bkg * s, {"A": rng.normal(3, 1, 500)}, (1e-3,))
            for m, s in (("float", 1), ("pruned", 1.1))
        }
    rows = ev.compare_models(an)
    assert rows[0] == ["metric", "float", "pruned"]
    assert rows[2][0] == "A efficiency at FPR=0.001"
    assert "+" in rows[2][1]
    assert "/-" in rows[2][1]
    with pytest.raises(ValueError, match="cannot compare classification and anomaly"):
        ev.compare_models({"a": res["float"], "b": an["float"]})
    with pytest.raises(ValueError, match="relative_to='x' is not one of"):
        ev.compare_models(res, relative_to="x")


def test_write_json_atomic(tmp_path):
    p = ev.write_json(
        tmp_path / "sub" / "m.json", {"a": np.float32(1.5), "b": np.arange(3), "c": math.inf}
    )
    assert json.loads(p.read_text()) == {"a": 1.5, "b": [0, 1, 2], "c": None}
    assert [f.name for f in p.parent.iterdir()] == ["m.json"]


# --------------------------------------------------------------------------------------
# latent space
# --------------------------------------------------------------------------------------


def _blobs(rng, n=300):
    centers = np.array([[0, 0, 0, 0], [8, 0, 0, 0], [0, 8, 0, 0]], dtype=float)
    y = np.repeat(np.arange(3), n)
    return centers[y] + rng.normal(0, 1, (3 * n, 4)), y


def test_pca_matches_sklearn():
    decomposition = pytest.importorskip(
        "sklearn.decomposition", reason="scikit-learn is not installed (the learn extra)"
    )
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (500, 5)) @ rng.normal(0, 1, (5, 5))
    fit = ev.pca(x, 3)
    sk = decomposition.PCA(3).fit(x)
    np.testing.assert_allclose(fit.explained_variance, sk.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(
        fit.explained_variance_ratio, sk.explained_variance_ratio_, rtol=1e-10
    )
    np.testing.assert_allclose(np.abs(fit.components), np.abs(sk.components_), atol=1e-10)
    np.testing.assert_allclose(np.abs(fit.scores), np.abs(sk.transform(x)), atol=1e-8)
    np.testing.assert_allclose(fit.transform(x), fit.scores, atol=1e-10)
    with pytest.raises(ValueError, match=r"n_components must be in 1\.\.min"):
        ev.pca(x, 6)


def test_kmeans_separates_blobs():
    rng = np.random.default_rng(1)
    x, y = _blobs(rng)
    km = ev.kmeans(x, 3, seed=0)
    # each true blob maps to exactly one cluster
    table = ev.cluster_table(y, km.labels, ["a", "b", "c"])
    assert all(row[-1] == 1.0 for row in table[1:])
    assert sorted(np.bincount(km.labels).tolist()) == [300, 300, 300]
    np.testing.assert_array_equal(km.predict(x), km.labels)
    cluster = pytest.importorskip(
        "sklearn.cluster", reason="scikit-learn is not installed (the learn extra)"
    )
    sk = cluster.KMeans(3, n_init=4, random_state=0).fit(x)
    assert km.inertia == pytest.approx(sk.inertia_, rel=1e-6)
    # the same seed gives the same clustering
    np.testing.assert_array_equal(ev.kmeans(x, 3, seed=0).labels, km.labels)
    # PCA of the blobs keeps them separable in 2-D
    km2 = ev.kmeans(ev.pca(x, 2).scores, 3, seed=2)
    assert all(row[-1] > 0.99 for row in ev.cluster_table(y, km2.labels, ["a", "b", "c"])[1:])


# --------------------------------------------------------------------------------------
# dimuon mass
# --------------------------------------------------------------------------------------

MZ = 91.19


def _z_pair(eta=0.0):
    # back-to-back massless muons of pT = MZ/2 at equal eta: m = 2 pT cosh(0) = MZ
    return [MZ / 2, MZ / 2], [eta, eta], [0.3, 0.3 - math.pi]


def test_dimuon_mass_known_pair():
    pt, eta, phi = _z_pair(1.2)
    m = ev.dimuon_mass(pt, eta, phi, [1, -1], [0, 2], mass=0.0)
    assert m[0] == pytest.approx(MZ, rel=1e-9)
    # with the muon mass: E = sqrt(p^2 + m^2) for each, m = 2E at eta1 = eta2
    p = MZ / 2 * math.cosh(1.2)
    expected = math.sqrt(
        (2 * math.sqrt(p**2 + ev.MUON_MASS**2)) ** 2 - (2 * MZ / 2 * math.sinh(1.2)) ** 2
    )
    assert ev.dimuon_mass(pt, eta, phi, [1, -1], [0, 2])[0] == pytest.approx(expected, rel=1e-12)


def test_dimuon_mass_jagged_choice_and_empty_events():
    # event 0: Z pair + a softer muon; event 1: empty; event 2: one muon;
    # event 3: same-sign leading pair, the opposite-sign partner is the third muon;
    # event 4: two same-sign muons only
    pt = [5.0, MZ / 2, MZ / 2, 30.0, 50.0, 40.0, MZ / 2, 20.0, 10.0]
    eta = [0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.2]
    phi = [1.0, 0.0, math.pi, 0.0, 0.0, 1.0, math.pi, 0.0, 1.0]
    q = [1, 1, -1, 1, 1, 1, -1, -1, -1]
    off = [0, 3, 3, 4, 7, 9]
    m = ev.dimuon_mass(pt, eta, phi, q, off, mass=0.0)
    assert m[0] == pytest.approx(MZ)
    assert math.isnan(m[1])
    assert math.isnan(m[2])
    assert math.isnan(m[4])
    assert m[3] == pytest.approx(
        2 * math.sqrt(50.0 * MZ / 2)
    )  # leading (50) + OS (45.6), back to back
    m_any = ev.dimuon_mass(pt, eta, phi, None, off, mass=0.0, opposite_sign=False)
    assert m_any[4] == pytest.approx(math.sqrt(2 * 20 * 10 * (math.cosh(0.1) - math.cos(1.0))))
    # min_pt removes the soft muon of event 4 -> no pair
    assert math.isnan(ev.dimuon_mass(pt, eta, phi, q, off, opposite_sign=False, min_pt=15.0)[4])


def test_dimuon_mass_from_event_batch_and_padded_and_features():
    pt, eta, phi = _z_pair()
    coll = Collection(
        np.array([0, 2, 2]),
        {"pt": pt, "eta": eta, "phi": phi, "charge": [-1, 1], "mass": [0.0, 0.0]},
    )
    batch = EventBatch(n_events=2, collections={"muon": coll})
    m = ev.dimuon_mass(batch)
    assert m[0] == pytest.approx(MZ, rel=1e-6)
    assert math.isnan(m[1])
    padded = ev.dimuon_mass(
        np.array([[*pt, 0.0], [0.0] * 3]),
        np.array([[*eta, 0.0], [0.0] * 3]),
        np.array([[*phi, 0.0], [0.0] * 3]),
        np.array([[1, -1, 0], [0, 0, 0]]),
        mass=0.0,
    )
    assert padded[0] == pytest.approx(MZ)
    assert math.isnan(padded[1])
    names = [
        "met_0_pt",
        "muon_0_pt",
        "muon_0_eta",
        "muon_0_phi",
        "muon_1_pt",
        "muon_1_eta",
        "muon_1_phi",
    ]
    feats = np.array([[10.0, pt[0], eta[0], phi[0], pt[1], eta[1], phi[1]]])
    assert ev.dimuon_mass_from_features(feats, names, mass=0.0)[0] == pytest.approx(MZ, rel=1e-6)
    with pytest.raises(ValueError, match="no muon charge given"):
        ev.dimuon_mass(pt, eta, phi, None, [0, 2])
    with pytest.raises(ValueError, match="offsets end at 2 muons"):
        ev.dimuon_mass(pt, eta, phi, [1, -1, 1], [0, 2])


def test_evaluation_and_report_imports_stay_light():
    code = (
        "import sys, json, poetml.evaluation, poetml.plots, poetml.report\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('matplotlib', 'mplhep', 'tensorflow', 'sklearn'))))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []


# --------------------------------------------------------------------------------------
# real CMS data
# --------------------------------------------------------------------------------------

SHARED_DATA = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data"


def _shared(name):
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"real CMS test file {path} is missing (see shared/data/README.md)")
    return path


def test_dimuon_mass_matches_cms_2010_zmumu_file():
    uproot = pytest.importorskip("uproot")
    path = _shared("uproot-Zmumu.root")
    a = uproot.open(path)["events"].arrays(library="np")
    n = len(a["M"])
    # the file's M and E come from (px, py, pz) (its pt/eta/phi columns use another track
    # fit for some rows), so feed dimuon_mass the pt/eta/phi of those momenta
    cols: dict[str, list[np.ndarray]] = {"pt": [], "eta": [], "phi": [], "q": []}
    for i in ("1", "2"):
        px, py, pz = a[f"px{i}"], a[f"py{i}"], a[f"pz{i}"]
        pt = np.hypot(px, py)
        cols["pt"].append(pt)
        cols["eta"].append(np.arcsinh(pz / pt))
        cols["phi"].append(np.arctan2(py, px))
        cols["q"].append(a[f"Q{i}"])
    flat = {k: np.stack(v, axis=1).ravel() for k, v in cols.items()}
    offsets = np.arange(0, 2 * n + 1, 2)
    m = ev.dimuon_mass(flat["pt"], flat["eta"], flat["phi"], flat["q"], offsets)
    os_pair = a["Q1"] * a["Q2"] < 0
    assert os_pair.sum() > 2000
    assert np.all(np.isnan(m[~os_pair]))
    np.testing.assert_allclose(m[os_pair], a["M"][os_pair], rtol=1e-5)
    z = m[(m > 81) & (m < 101)]
    assert abs(np.median(z) - 90.8) < 0.5  # shared/data/README.md: peak 90.72 +- 0.14 GeV


def test_dimuon_mass_z_and_jpsi_peaks_in_cms_2012_nanoaod():
    reading = pytest.importorskip("poetml.reading")
    batch = reading.read(_shared("Run2012BC_DoubleMuParked_Muons_1000evts_rntuple_v1-0-0-0.root"))
    m = ev.dimuon_mass(batch)
    z = m[(m > 81) & (m < 101)]
    jpsi = m[(m > 2.9) & (m < 3.3)]
    assert len(z) > 50
    assert len(jpsi) > 30
    assert abs(np.median(z) - 90.94) < 0.5  # shared/data/README.md reference
    assert abs(np.median(jpsi) - 3.095) < 0.01
