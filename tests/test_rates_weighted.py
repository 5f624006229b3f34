"""Weighted trigger rates on toys with analytically known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poetml import rates
from poetml.rates import Beam


def _toy(seed: int = 0):
    """Two processes: A (sigma 1e6 pb, 5000 events, score in [0, 1)) and B (sigma 50 pb,
    200 events, score in [2, 3)): every event of B above every event of A."""
    rng = np.random.default_rng(seed)
    sa, sb = rng.uniform(0, 1, 5000), rng.uniform(2, 3, 200)
    wa, wb = np.full(5000, 1e6 / 5000), np.full(200, 50.0 / 200)
    return np.concatenate([sa, sb]), np.concatenate([wa, wb])


def test_rate_of_a_process_is_luminosity_times_its_cross_section():
    s, w = _toy()
    beam = Beam(luminosity=2e34)
    # above 1.5: all of B and none of A -> 50 pb x 2e34 cm^-2 s^-1 = 1 Hz = 1e-3 kHz
    r = rates.rate_above(s, w, 1.5, beam)
    assert r.rate_khz == pytest.approx(50 * 1e-36 * 2e34 / 1e3)
    assert r.n_events == 200
    assert r.n_effective == pytest.approx(200)  # equal weights: every event counts once
    assert r.rate_khz_err == pytest.approx(r.rate_khz / math.sqrt(200))
    # everything: (1e6 + 50) pb
    assert rates.rate_above(s, w, -np.inf, beam).rate_khz == pytest.approx((1e6 + 50) * 2e-5)


def test_threshold_for_the_rate_of_one_process_separates_it_exactly():
    s, w = _toy()
    beam = Beam()
    target = 50 * beam.khz_per_pb  # the rate of B alone
    thr = rates.threshold_for_rate_weighted(s, w, target, beam)
    assert thr == s[:5000].max()  # the highest score of A: all of B passes, none of A
    assert rates.rate_above(s, w, thr, beam).rate_khz == pytest.approx(target)
    # half of B's rate: the threshold sits inside B, 100 of its 200 events pass
    thr2 = rates.threshold_for_rate_weighted(s, w, target / 2, beam)
    assert 2.0 <= thr2 < 3.0
    assert rates.rate_above(s, w, thr2, beam).n_events == 100


def test_efficiency_at_rate_and_small_stream_warning():
    s, w = _toy()
    beam = Beam()
    sig = np.linspace(1.0, 3.0, 1001)[:-1]  # uniform over [1, 3)
    target = 50 * beam.khz_per_pb / 2  # threshold at the median score of B (about 2.5)
    r = rates.efficiency_at_rate(s, w, sig, target, beam=beam, warn=False)
    assert r["efficiency"] == pytest.approx((3 - r["threshold"]) / 2, abs=2e-3)
    assert r["warning"] is None
    lo, hi = r["efficiency_interval"]
    assert lo < r["efficiency"] < hi
    with pytest.warns(rates.SmallSampleWarning, match="effective events"):
        rates.efficiency_at_rate(s, w, sig, 50 * beam.khz_per_pb * 0.02, beam=beam)


def test_unequal_weights_reduce_the_effective_count():
    s = np.arange(4.0)
    w = np.array([1.0, 1.0, 1.0, 3.0])
    r = rates.rate_above(s, w, -1.0, Beam())
    assert r.n_effective == pytest.approx(36 / 12)  # (sum w)^2 / sum w^2
    assert r.rate_khz_err == pytest.approx(math.sqrt(12) * Beam().khz_per_pb)


@settings(max_examples=200, deadline=None)
@given(
    scores=st.lists(st.integers(0, 20), min_size=1, max_size=60),
    fpr=st.floats(1e-3, 1.0),
)
def test_unit_weights_give_the_unweighted_threshold_rule(scores, fpr):
    """One threshold rule: unit weights and f N reproduce floor(f N) events above."""
    s = np.asarray(scores, float)
    thr = rates.threshold_at_fpr(s, fpr)
    assert thr == rates.threshold_for_weight(s, np.ones(len(s)), fpr * len(s))
    k = rates.allowed_background(fpr, len(s))
    assert np.count_nonzero(s > thr) <= k
    # the threshold is tight: lowering it to the next lower score would pass more than k
    lower = s[s < thr]
    if len(lower):
        assert np.count_nonzero(s > lower.max()) > k


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 30), st.floats(-2.0, 10.0, allow_nan=False)),
        min_size=1,
        max_size=50,
    ),
    frac=st.floats(0.0, 1.0),
)
def test_weighted_threshold_never_exceeds_the_target(data, frac):
    s = np.array([d[0] for d in data], float)
    w = np.array([d[1] for d in data], float)
    target = frac * max(w.sum(), 0.0)  # a negative target cannot be met (nothing: 0)
    thr = rates.threshold_for_weight(s, w, target)
    assert w[s > thr].sum() <= target * (1 + 1e-9) + 1e-9


def test_bad_weights_are_named():
    with pytest.raises(ValueError, match=r"non-finite weight.*index 1"):
        rates.rate_above([1.0, 2.0], [1.0, np.nan], 0.0)
    with pytest.raises(ValueError, match="one weight per score"):
        rates.threshold_for_weight([1.0, 2.0], [1.0], 1.0)
    with pytest.raises(ValueError, match="exceeds the rate of filled crossings"):
        rates.threshold_for_rate_weighted([1.0], [1.0], 1e6)
    with pytest.raises(ValueError, match="luminosity"):
        Beam(luminosity=0)


def test_beam_defaults_are_run3_conditions():
    b = Beam()
    assert b.crossing_rate_khz == pytest.approx(40e3 * 2544 / 3564)  # about 28.6 MHz
    assert 50 < b.pileup < 60  # 79.5 mb x 2e34 / 28.6 MHz: the Run 3 pile-up of ~55


def test_firmware_threshold_is_the_evaluation_working_point_on_a_weighted_stream():
    """One threshold: the firmware's trigger threshold for a rate on weighted background
    equals the evaluation's weighted working point, and reproduces its rate."""
    pytest.importorskip("sklearn", reason="the weighted AUC needs scikit-learn (learn extra)")
    from poetml.evaluation import weighted_rate_metrics
    from poetml.firmware.trigger import threshold_for_rate

    s, w = _toy(3)
    beam = Beam(luminosity=1e34)
    target = 30 * beam.khz_per_pb
    thr = threshold_for_rate(s, target, weights_pb=w, beam=beam)
    ev = weighted_rate_metrics(s, w, {"sig": np.linspace(0, 3, 100)}, [target], beam)
    wp = ev["working_points"][0]
    assert thr.value == wp["threshold"]
    assert thr.rate_khz == pytest.approx(wp["rate_khz"])
    assert thr.rate_khz <= target * (1 + 1e-12)
    assert thr.rate_khz_err == pytest.approx(wp["rate_khz_err"])
    assert thr.n_pass == 120  # 30 pb of B's 50 pb: 120 of its 200 events
    assert thr.warning is None
    assert 0.0 < ev["signals"]["sig"]["auc"] < 1.0
    assert ev["curve"]["rate_khz"][0] == pytest.approx((1e6 + 50) * beam.khz_per_pb, rel=1e-3)


def test_unbiased_check_agrees_with_a_correctly_stitched_tail_and_flags_a_wrong_one():
    """A stream of crossings with scores uniform in [0, 1): the unbiased sample is 20 000
    crossings (each crossing rate / 20 000); the weighted stream keeps its crossings below
    0.9 and replaces the tail by a separate sample of 5 000 events in [0.9, 1) weighted to
    the tail's 10 %.  At 5 % of the crossings (threshold 0.95) the two rates agree; with
    the tail weighted twice over they do not."""
    beam = Beam()
    per_pb = beam.crossing_rate_khz / beam.khz_per_pb  # the crossings [pb]
    rng = np.random.default_rng(3)
    n, m = 20_000, 5_000
    u = rng.random(n)
    tail = 0.9 + 0.1 * rng.random(m)
    soft = u < 0.9
    scores = np.concatenate([u, tail])
    w = np.concatenate([np.where(soft, per_pb / n, 0.0), np.full(m, 0.1 * per_pb / m)])
    brute = np.concatenate([np.full(n, beam.crossing_rate_khz / n), np.zeros(m)])
    target = 0.05 * beam.crossing_rate_khz
    c = rates.unbiased_rate_check(scores, w, brute, target, beam)
    assert c["threshold"] == pytest.approx(0.95, abs=0.005)
    assert c["weighted"]["rate_khz"] == pytest.approx(target, rel=0.01)
    assert c["unbiased"]["n"] == n
    k = int(np.count_nonzero(u > c["threshold"]))
    assert c["unbiased"]["k"] == k
    assert c["unbiased"]["rate_khz"] == pytest.approx(beam.crossing_rate_khz * k / n)
    assert c["unbiased"]["rate_khz"] == pytest.approx(target, rel=0.1)
    assert c["unbiased"]["rate_khz_err"] == pytest.approx(beam.crossing_rate_khz * math.sqrt(k) / n)
    assert abs(c["pull"]) < 3
    wrong = np.concatenate([w[:n], 2 * w[n:]])
    # the threshold moves up to keep the target on the weighted stream: brute force is lower
    assert rates.unbiased_rate_check(scores, wrong, brute, target, beam)["pull"] > 5
    with pytest.raises(ValueError, match="no unbiased event"):
        rates.unbiased_rate_check(scores, w, np.zeros(n + m), target, beam)


def test_unbiased_check_uncertainty_expects_the_replaced_events_it_cannot_see():
    """A sample of 1000 crossings whose 2 hard ones (each standing for a 20th of the
    crossings) the weighted stream replaces by 400 weighted events: when the threshold
    selects none of the sample's hard events, the difference is the replacement's rate and
    its uncertainty the Poisson variance the hard events would have had, not zero."""
    beam = Beam()
    f = beam.crossing_rate_khz
    per_pb = f / beam.khz_per_pb
    soft = np.linspace(0.0, 0.5, 998)
    hard_u = np.array([0.2, 0.3])  # the sample's hard crossings score low here
    repl = np.linspace(0.6, 1.0, 400)  # the replacement scores high
    scores = np.concatenate([soft, hard_u, repl])
    u = np.concatenate([np.full(998, 0.9 * f / 998), np.full(2, 0.05 * f), np.zeros(400)])
    w = np.concatenate(
        [np.full(998, 0.9 * per_pb / 998), np.zeros(2), np.full(400, 0.1 * per_pb / 400)]
    )
    c = rates.unbiased_rate_check(scores, w, u, 0.05 * f, beam)
    assert c["unbiased"]["rate_khz"] == 0.0
    assert c["unbiased"]["replaced_events"] == 0
    assert c["unbiased"]["replacement_khz"] == pytest.approx(0.05 * f, rel=0.01)
    # expected variance: mean replaced weight (0.05 f) x replacement rate (0.05 f)
    assert c["difference_err_khz"] >= 0.05 * f * 0.99
    assert abs(c["pull"]) < 1.1
