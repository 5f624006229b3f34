"""The L1-like single-lepton menu, the anomaly trigger's pure rate and efficiency gain over
it, and the weighted efficiency-against-rate curve, on a toy whose answers are known exactly.

Toy background stream (L = 2e34 cm^-2 s^-1, so 1 pb = 2e-5 kHz):

* process A: 1e6 pb in 1000 events of 1000 pb each, scores in [0, 0.9]; the menu fires on
  10 of them (5 by the muon seed at exactly 22 GeV, 5 by the electron seed at exactly 30 GeV);
* process B: 100 pb in 100 events of 1 pb each, scores 2.00, 2.01, ..., 2.99 (all above A);
  the menu fires on the 50 with an even index (half by each seed).

Signal: 200 unweighted events; 120 score above A (the anomaly trigger fires at both working
points below), 80 below; the menu fires on 50 of the 120 and on 30 of the 80.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from poetml.evaluation import menu_fires, trigger_menu_metrics, weighted_rate_metrics
from poetml.rates import Beam, rate_above

BEAM = Beam(luminosity=2e34)
KHZ = 2e-5  # kHz per pb at 2e34


def _toy():
    sa = np.linspace(0.0, 0.9, 1000)
    sb = 2.0 + np.arange(100) / 100
    s = np.concatenate([sa, sb])
    w = np.concatenate([np.full(1000, 1000.0), np.full(100, 1.0)])
    mu = np.full(1100, 21.99)  # just below the muon seed everywhere ...
    el = np.full(1100, 29.99)  # ... and the electron seed
    mu[:5] = 22.0  # A: five exactly at the muon threshold (>= fires)
    el[5:10] = 30.0
    b_even = 1000 + np.arange(0, 100, 2)
    mu[b_even[:25]] = 40.0
    el[b_even[25:]] = 45.0
    sig = np.concatenate([np.linspace(1.5, 3.5, 120), np.linspace(0.0, 0.5, 80)])
    smu = np.zeros(200)
    sel = np.zeros(200)
    sel[:50] = 50.0  # 50 of the 120 AD-selected events fire the electron seed
    smu[120:150] = 25.0  # 30 of the 80 others fire the muon seed
    return s, w, menu_fires(mu, el), sig, menu_fires(smu, sel)


def test_menu_fires_at_or_above_its_thresholds_and_not_without_a_lepton():
    got = menu_fires([0.0, 22.0, 21.9, 0.0, 0.0], [0.0, 0.0, 0.0, 30.0, 29.9])
    assert got.tolist() == [False, True, False, True, False]
    assert menu_fires([25.0], [0.0], muon_pt=26.0).tolist() == [False]
    with pytest.raises(ValueError, match="muon_pt must be a pT threshold > 0"):
        menu_fires([1.0], [1.0], muon_pt=0.0)
    with pytest.raises(ValueError, match="differ in length"):
        menu_fires([1.0, 2.0], [1.0])


def test_menu_rate_pure_rate_and_overlap_are_the_known_cross_sections():
    s, w, bm, sig, sm = _toy()
    thr_all_b = 0.9  # everything of B and nothing of A passes
    thr_half_b = 2.495  # the top 50 of B: 2.50 ... 2.99
    r = trigger_menu_metrics(
        s, w, bm, {"x": sig}, {"x": sm}, {"all B": thr_all_b, "half B": thr_half_b}, BEAM
    )
    menu = r["menu"]
    assert menu["rate_khz"] == pytest.approx((10 * 1000 + 50) * KHZ)
    assert menu["rate_khz_err"] == pytest.approx(math.sqrt(10 * 1000**2 + 50) * KHZ)
    assert menu["n_events"] == 60
    wp_all, wp_half = r["working_points"]
    # AD at "all B": 100 pb; 50 of them (odd index) are not in the menu
    assert wp_all["rate_khz"] == pytest.approx(100 * KHZ)
    assert wp_all["pure_rate_khz"] == pytest.approx(50 * KHZ)
    assert wp_all["pure_rate_khz_err"] == pytest.approx(math.sqrt(50) * KHZ)
    assert wp_all["n_pure"] == 50
    assert wp_all["n_effective_pure"] == pytest.approx(50)
    assert wp_all["overlap_rate_khz"] == pytest.approx(50 * KHZ)
    assert wp_all["total_rate_khz"] == pytest.approx((10 * 1000 + 100) * KHZ)
    # AD at "half B": the top 50 of B, 25 of them (odd index) outside the menu
    assert wp_half["rate_khz"] == pytest.approx(50 * KHZ)
    assert wp_half["pure_rate_khz"] == pytest.approx(25 * KHZ)
    assert wp_half["total_rate_khz"] == pytest.approx((10 * 1000 + 50 + 25) * KHZ)
    assert r["warnings"] == []


def test_signal_efficiencies_gain_and_relative_gain():
    s, w, bm, sig, sm = _toy()
    r = trigger_menu_metrics(s, w, bm, {"x": sig}, {"x": sm}, {"wp": 0.9}, BEAM)
    x = r["signals"]["x"]
    assert x["n_events"] == 200
    assert x["menu"]["efficiency"] == pytest.approx(80 / 200)
    e = x["efficiency"]["wp"]
    assert e["ad"]["efficiency"] == pytest.approx(120 / 200)
    assert e["gain"]["efficiency"] == pytest.approx(70 / 200)  # AD and not the menu
    assert e["total"]["efficiency"] == pytest.approx(150 / 200)
    assert e["relative_gain"] == pytest.approx(70 / 80)
    # unit weights: the intervals are the plain binomial ones (Clopper-Pearson, one sigma)
    from poetml.rates import binomial_interval

    assert e["gain"]["interval"] == pytest.approx(list(binomial_interval(70, 200)))
    assert x["menu"]["interval"] == pytest.approx(list(binomial_interval(80, 200)))


def test_relative_gain_is_none_when_the_menu_selects_no_signal():
    s, w, bm, sig, _ = _toy()
    r = trigger_menu_metrics(s, w, bm, {"x": sig}, {"x": np.zeros(200, bool)}, {"wp": 0.9})
    assert r["signals"]["x"]["efficiency"]["wp"]["relative_gain"] is None


def test_a_pure_rate_on_few_effective_events_warns():
    from poetml.rates import SmallSampleWarning

    s, w, bm, sig, sm = _toy()
    with pytest.warns(SmallSampleWarning, match="pure rate"):
        r = trigger_menu_metrics(s, w, bm, {"x": sig}, {"x": sm}, {"wp": 2.95}, BEAM)
    assert r["working_points"][0]["n_pure"] == 2  # 2.97 and 2.99
    assert len(r["warnings"]) == 1


def test_bad_menu_inputs_are_named():
    s, w, bm, sig, sm = _toy()
    with pytest.raises(ValueError, match="bkg_menu must be boolean"):
        trigger_menu_metrics(s, w, bm.astype(int), {"x": sig}, {"x": sm}, {"wp": 0.9})
    with pytest.raises(ValueError, match="no menu decisions for signal 'x'"):
        trigger_menu_metrics(s, w, bm, {"x": sig}, {}, {"wp": 0.9})
    with pytest.raises(ValueError, match=r"signal_menu\['x'\] must hold one"):
        trigger_menu_metrics(s, w, bm, {"x": sig}, {"x": sm[:5]}, {"wp": 0.9})


def test_weighted_rate_metrics_carries_the_menu_and_the_efficiency_curve():
    pytest.importorskip("sklearn", reason="the weighted AUC needs scikit-learn (learn extra)")
    s, w, bm, sig, sm = _toy()
    r = weighted_rate_metrics(
        s, w, {"x": sig}, [100 * KHZ, 50 * KHZ], BEAM, bkg_menu=bm, signal_menu={"x": sm}
    )
    # the menu comparison is made at the working points' own thresholds
    thr = [wp["threshold"] for wp in r["working_points"]]
    assert thr[0] == pytest.approx(0.9)  # the highest score of A
    assert [wp["threshold"] for wp in r["menu"]["working_points"]] == thr
    assert r["menu"]["working_points"][0]["pure_rate_khz"] == pytest.approx(50 * KHZ)
    assert r["menu"]["working_points"][1]["pure_rate_khz"] == pytest.approx(25 * KHZ)

    c = r["efficiency_curve"]
    rate, eff = np.array(c["rate_khz"]), np.array(c["signals"]["x"]["efficiency"])
    assert len(rate) >= 20
    assert np.all(np.diff(rate) > 0)
    assert rate[0] == pytest.approx(1 * KHZ)
    assert rate[-1] < (1e6 + 100) * KHZ  # the lowest score is never above a threshold
    for t, rk, e, lo, hi in zip(
        c["threshold"], rate, eff, c["signals"]["x"]["low"], c["signals"]["x"]["high"], strict=True
    ):
        assert rk == pytest.approx(rate_above(s, w, t, BEAM).rate_khz)
        assert e == pytest.approx(np.mean(sig > t))
        assert lo <= e <= hi
    # below B's 100 pb the stream holds B alone: every rate is a whole number of its 1-pb
    # events, and the threshold is the next score down (A's highest once all of B passes)
    inside_b = rate <= 100 * KHZ * (1 + 1e-9)
    n_b = rate[inside_b] / KHZ
    np.testing.assert_allclose(n_b, np.round(n_b), atol=1e-6)
    for t, n in zip(np.array(c["threshold"])[inside_b], np.round(n_b).astype(int), strict=True):
        assert t == pytest.approx(2.0 + (99 - n) / 100 if n < 100 else 0.9)
    # above it, the rate jumps by A's 1000-pb events: all of B (120 signal events) passes
    assert np.all(eff[~inside_b] >= 120 / 200)


def test_report_has_the_menu_tables_baselines_plot_and_explains_auc_below_half(tmp_path):
    """evaluate_anomaly on the toy: the weighted efficiency-vs-rate plot, the menu tables
    with the toy's exact pure rate, the ADC2021 baseline table (its reference column
    marked missing) and a line explaining a signal with AUC < 0.5."""
    pytest.importorskip("matplotlib", reason="plots need matplotlib (learn extra)")
    pytest.importorskip("sklearn", reason="ROC curves need scikit-learn (learn extra)")
    from poetml.evaluation.anomaly import ADC2021_BASELINE_MISSING
    from poetml.report import evaluate_anomaly, write_report

    s, w, bm, sig, sm = _toy()
    soft = np.linspace(0.0, 0.3, 100)  # below most of the background: AUC < 0.5
    m, sec = evaluate_anomaly(
        tmp_path,
        {"float": s},
        {"float": {"a4l": sig, "hplus_taunu": soft}},
        fpr_targets=(0.1,),
        rate_khz=[100 * KHZ],
        bkg_weights=w,
        beam=BEAM,
        bkg_menu=bm,
        signal_menu={"a4l": sm, "hplus_taunu": np.zeros(100, bool)},
    )
    menu = m["float"]["weighted"]["menu"]
    assert menu["working_points"][0]["pure_rate_khz"] == pytest.approx(50 * KHZ)
    assert menu["signals"]["a4l"]["efficiency"]["rate=0.002 kHz"]["gain"][
        "efficiency"
    ] == pytest.approx(70 / 200)
    assert "efficiency_curve" in m["float"]["weighted"]
    md = write_report(tmp_path, "run", [sec]).read_text()
    assert "plots/efficiency_vs_rate_weighted.png" in md
    assert (tmp_path / "plots" / "efficiency_vs_rate_weighted.png").stat().st_size > 1000
    assert "AD pure rate [kHz]" in md
    assert f"{50 * KHZ:.3g} +- {math.sqrt(50) * KHZ:.2g}" in md  # the pure rate
    assert "gain (AD, not menu)" in md
    assert "n/a (menu selects none)" in md  # hplus_taunu: the menu selects none of it
    assert "ADC2021 dense AE AUC" in md
    assert ADC2021_BASELINE_MISSING in md
    assert "hplus_taunu: AUC" in md
    assert "ranks the signal as more typical than the background" in md
    assert "a4l: AUC" not in md  # above 0.5: no line


def test_pipeline_menu_decisions_follow_the_config_and_the_dataset_aux():
    from types import SimpleNamespace

    from poetml.datasets.labelled import ProcessConfig
    from poetml.evaluation.config import EvaluationConfig, MenuConfig
    from poetml.pipeline.evaluation import menu_decisions

    procs = (ProcessConfig("bkg"), ProcessConfig("sig", role="signal"))
    aux = {
        "lead_muon_pt": np.array([25.0, 0.0, 0.0, 23.0, 10.0], np.float32),
        "lead_electron_pt": np.array([0.0, 31.0, 0.0, 0.0, 40.0], np.float32),
    }
    data = SimpleNamespace(aux=aux, processes=procs, process=np.array([0, 0, 0, 1, 1]))
    test = SimpleNamespace(aux={k: v[:3] for k, v in aux.items()})
    prep = SimpleNamespace(data=data, test=test, signals={"sig": None})
    b, sg = menu_decisions(prep, EvaluationConfig())  # type: ignore[arg-type]
    assert b.tolist() == [True, True, False]
    assert sg["sig"].tolist() == [True, True]
    b, sg = menu_decisions(prep, EvaluationConfig(menu=MenuConfig(24.0, 45.0)))  # type: ignore[arg-type]
    assert b.tolist() == [True, False, False]
    assert sg["sig"].tolist() == [False, False]
    assert menu_decisions(prep, EvaluationConfig(menu=MenuConfig(enabled=False))) == (None, None)  # type: ignore[arg-type]
    data.aux = {}
    assert menu_decisions(prep, EvaluationConfig()) == (None, None)  # type: ignore[arg-type]


def test_leading_muon_and_electron_pt_make_the_leading_lepton_pt(poet_file, poet_events):
    import awkward as ak

    from poetml.pipeline.data import AUX, DATASET_FORMAT
    from poetml.reading import read

    batch = read(poet_file)
    mu, el = AUX["lead_muon_pt"](batch), AUX["lead_electron_pt"](batch)
    want_mu = ak.to_numpy(ak.fill_none(ak.max(poet_events["muon"]["muon_pt"], axis=1), 0.0))
    want_el = ak.to_numpy(ak.fill_none(ak.max(poet_events["electron"]["electron_pt"], axis=1), 0.0))
    np.testing.assert_allclose(mu, want_mu, rtol=1e-6)
    np.testing.assert_allclose(el, want_el, rtol=1e-6)
    np.testing.assert_array_equal(np.maximum(mu, el), AUX["lead_lepton_pt"](batch))
    assert DATASET_FORMAT >= 4  # caches without these quantities are rebuilt
