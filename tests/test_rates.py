"""poetml.rates: one threshold for a rate, shared by the evaluation's working points and the
firmware's trigger threshold; and the one JSON writer (NaN -> null, strict JSON)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from poetml import evaluation as ev
from poetml import rates
from poetml._atomic import write_json

BKG_EVENTS = 200_000
RATE_KHZ = 3.0  # at 40 MHz: FPR 7.5e-5, 7.5e-5 x 200 000 = 15 events


def test_rate_and_threshold_are_the_ones_evaluation_uses():
    assert ev.threshold_at_fpr is rates.threshold_at_fpr
    assert ev.efficiency_at_fpr is rates.efficiency_at_fpr
    assert ev.rate_to_fpr is rates.rate_to_fpr
    assert ev.binomial_interval is rates.binomial_interval


def test_floor_of_fpr_times_n_is_not_fooled_by_rounding():
    fpr = rates.rate_to_fpr(RATE_KHZ, 40.0)
    assert fpr * BKG_EVENTS < 15  # 14.999999999999998 in floating point
    assert rates.allowed_background(fpr, BKG_EVENTS) == 15


def test_evaluation_and_firmware_select_the_same_events_at_3khz():
    """The case of issue 12: 3 kHz at 40 MHz on 200 000 background events.  Both keep
    floor(7.5e-5 x 200 000) = 15 background events (one kept 15 and the other 14 before)."""
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (the learn extra)")
    trigger = pytest.importorskip("poetml.firmware.trigger")
    rng = np.random.default_rng(12)
    bkg = rng.normal(0.0, 1.0, BKG_EVENTS)
    sig = rng.normal(3.0, 1.0, 5_000)

    report = ev.anomaly_metrics(bkg, {"sig": sig}, fpr_targets=(), rate_khz=RATE_KHZ)
    wp = report["working_points"][0]
    eff = report["signals"]["sig"]["efficiency"][wp["name"]]
    firmware = trigger.threshold_for_rate(bkg, RATE_KHZ, collision_rate_mhz=40.0)

    assert wp["n_background_selected"] == 15
    assert firmware.n_pass == 15
    assert firmware.value == wp["threshold"] == eff["threshold"]
    assert firmware.value == rates.threshold_at_rate(bkg, RATE_KHZ)
    assert np.count_nonzero(bkg > firmware.value) == 15
    assert firmware.fpr == wp["achieved_fpr"] == 15 / BKG_EVENTS
    assert firmware.target_fpr == wp["fpr"]
    assert firmware.warning is None
    assert wp["warning"] is None


def test_small_sample_rule_is_shared():
    bkg = np.arange(10.0)
    firmware = pytest.importorskip("poetml.firmware.trigger").threshold_for_rate(bkg, 1.0)
    text = rates.small_sample_warning("rate=1 kHz", rates.rate_to_fpr(1.0), len(bkg))
    assert firmware.warning == text
    assert "cannot resolve" in text
    assert "need at least 400,000 background events" in text
    assert rates.small_sample_warning("x", 1e-3, 10_000) is None  # 10 expected: enough


def test_write_json_turns_nan_into_null_and_writes_strict_json(tmp_path):
    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    p = write_json(
        tmp_path / "r.json",
        {
            "nan": math.nan,
            "inf": np.float64(-np.inf),
            "arr": np.array([1.0, np.nan]),
            "n": np.int64(3),
            "ok": np.bool_(True),
            "nested": [{"x": np.float32(0.5)}],
        },
    )
    data = json.loads(p.read_text(), parse_constant=refuse)
    assert data == {
        "nan": None,
        "inf": None,
        "arr": [1.0, None],
        "n": 3,
        "ok": True,
        "nested": [{"x": 0.5}],
    }
