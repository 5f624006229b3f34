"""poetml.report: Markdown/HTML reports with the models side by side, image links and
warnings, written atomically; bad sections are errors naming what is wrong."""

from __future__ import annotations

import html.parser
import warnings

import numpy as np
import pytest

from poetml import evaluation as ev
from poetml.report import (
    Image,
    Section,
    Table,
    anomaly_section,
    classification_section,
    format_value,
    write_report,
)

NAMES = ["DY", "W+jets", "ttbar"]


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    return path


@pytest.fixture(scope="module")
def results():
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (the learn extra)")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 500)
    out = {}
    for m, s in (("float", 2.0), ("quantized", 1.9)):
        logits = rng.normal(0, 1, (500, 3))
        logits[np.arange(500), y] += s
        out[m] = ev.classification_metrics(y, logits, NAMES)
    bkg = rng.normal(0, 1, 5000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ev.SmallSampleWarning)
        an = {
            m: ev.anomaly_metrics(bkg * k, {"A->4l": rng.normal(3, 1, 300)}, (1e-3, 1e-5))
            for m, k in (("float", 1.0), ("pruned", 1.05))
        }
    return out, an


def test_report_tables_links_and_warnings(tmp_path, results):
    clf, an = results
    roc = _png(tmp_path / "plots" / "roc.png")
    outside = _png(tmp_path.parent / f"{tmp_path.name}_elsewhere" / "cm.png")
    sections = [
        classification_section(
            clf, images=[Image(roc, "One-vs-rest ROC"), "plots/roc.png"], relative_to="float"
        ),
        anomaly_section(an, images=[{"path": str(outside), "caption": "outside"}]),
        {
            "title": "Firmware",
            "text": "Latency | II",
            "tables": [{"rows": [["metric", "value"], ["latency", 12]], "caption": "hls4ml"}],
        },
    ]
    md = write_report(tmp_path, "DTW test", sections, intro="Default dataset.")
    text = md.read_text()
    assert md == tmp_path / "report.md"
    # comparison table: header with the models side by side and the relative column
    assert "| metric | float | quantized | quantized vs float [%] |" in text
    acc = clf["float"]["accuracy"]
    assert f"| accuracy | {format_value(acc)} |" in text
    assert "Confusion matrix, quantized" in text
    assert "A->4l efficiency at FPR=0.001" in text
    # links relative to the report directory, captions shown
    assert "![One-vs-rest ROC](plots/roc.png)" in text
    assert f"](../{outside.parent.name}/cm.png)" in text
    # small-sample warning collected at the top and in its section
    assert text.index("**Warnings**") < text.index("## Classification")
    assert "FPR=1e-05: background sample too small" in text
    assert "## Firmware" in text
    assert "| latency | 12 |" in text
    # html: same content, well-formed enough to parse, images linked
    h = (tmp_path / "report.html").read_text()
    parser = html.parser.HTMLParser()
    parser.feed(h)
    assert '<img src="plots/roc.png"' in h
    assert "<th>quantized vs float [%]</th>" in h
    assert "Latency | II" in h
    assert "&gt;" in h
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots", "report.html", "report.md"]


def test_report_rewrites_atomically_and_without_html(tmp_path):
    write_report(tmp_path, "t", [Section("s", tables=[Table([["a", "b"], [1, 2.5]])])], html=False)
    assert not (tmp_path / "report.html").exists()
    first = (tmp_path / "report.md").read_text()
    write_report(tmp_path, "t2", [Section("s")], timestamp=False)
    second = (tmp_path / "report.md").read_text()
    assert first != second
    assert second.startswith("# t2\n")
    assert "Written" not in second
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("section", "exc", "match"),
    [
        ({"title": "x", "plots": []}, ValueError, r"unknown key\(s\) \['plots'\]; valid"),
        ({"text": "no title"}, ValueError, "needs a 'title'"),
        (
            Section("x", tables=[[["a", "b"], [1]]]),
            ValueError,
            "row 1 has 1 cells, the header has 2",
        ),
        (
            Section("x", images=["missing.png"]),
            FileNotFoundError,
            "image .*missing.png does not exist",
        ),
        ("x", TypeError, "Section or a dict"),
    ],
)
def test_report_bad_sections(tmp_path, section, exc, match):
    with pytest.raises(exc, match=match):
        write_report(tmp_path, "t", [section])
    assert not (tmp_path / "report.md").exists()


def test_format_value():
    assert format_value(None) == "–"
    assert format_value(float("nan")) == "–"
    assert format_value(3) == "3"
    assert format_value(np.float32(0.5)) == "0.5"
    assert format_value(0.912345) == "0.9123"
    assert format_value(12.3456) == "12.35"
    assert format_value(2.5e-5) == "2.5e-05"
    assert format_value(1.5e7) == "1.5e+07"
    assert format_value("0.9 +0.01/-0.01") == "0.9 +0.01/-0.01"


def test_evaluate_classifier_and_anomaly_end_to_end(tmp_path):
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (the learn extra)")
    import json

    from poetml.report import evaluate_anomaly, evaluate_classifier

    rng = np.random.default_rng(3)
    n = 400
    y = rng.integers(0, 3, n)
    probs = {}
    for m, s in (("float", 2.5), ("quantized", 2.3)):
        logits = rng.normal(0, 1, (n, 3))
        logits[np.arange(n), y] += s
        probs[m] = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    mass = np.where(y == 0, 91.19 + rng.normal(0, 2, n), rng.uniform(20, 200, n))
    metrics, sec = evaluate_classifier(tmp_path, y, probs, NAMES, dimuon_mass=mass)
    assert metrics["float"]["accuracy"] > metrics["float"]["macro"]["f1"] - 0.05
    saved = json.loads((tmp_path / "metrics_classification.json").read_text())
    assert saved["quantized"]["accuracy"] == metrics["quantized"]["accuracy"]
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == [
        "confusion_counts.png",
        "confusion_normalized.png",
        "dimuon_mass.png",
        "roc.png",
    ]

    bkg = {m: rng.exponential(1.0, 20_000) * k for m, k in (("float", 1.0), ("pruned", 1.02))}
    sig = {m: {"A->4l": rng.exponential(4.0, 400)} for m in bkg}
    with pytest.warns(ev.SmallSampleWarning):
        am, asec = evaluate_anomaly(tmp_path, bkg, sig, fpr_targets=(1e-3, 1e-5), rate_khz=40.0)
    assert am["float"]["working_points"][2]["fpr"] == pytest.approx(1e-3)
    # FPR=1e-5 is too small for 20k events: one warning naming both models (same background)
    assert len(asec.warnings) == 1
    assert asec.warnings[0].startswith("float, pruned: FPR=1e-05: background sample too small")
    md = write_report(tmp_path, "run", [sec, asec]).read_text()
    assert "| metric | float | quantized | quantized vs float [%] |" in md
    assert "| metric | float | pruned | pruned vs float [%] |" in md
    assert (
        "![Leading opposite-sign dimuon mass of events selected as DY](plots/dimuon_mass.png)" in md
    )
    assert "plots/efficiency_vs_rate.png" in md
    assert "Signal efficiencies and their uncertainties" in md
    with pytest.raises(ValueError, match="same models"):
        evaluate_anomaly(tmp_path, bkg, sig["float"])


def test_evaluate_anomaly_on_a_weighted_background_stream(tmp_path):
    """Weights [pb] on the background: the report gives each rate with its uncertainty and
    effective count, the rate-against-threshold plot, and the threshold of the weighted
    stream (background A: 1e6 pb below every event of B: 50 pb)."""
    pytest.importorskip("matplotlib", reason="plots need matplotlib (learn extra)")
    pytest.importorskip("sklearn", reason="ROC curves need scikit-learn (learn extra)")
    from poetml.rates import Beam
    from poetml.report import evaluate_anomaly, write_report

    rng = np.random.default_rng(2)
    bkg = np.concatenate([rng.uniform(0, 1, 4000), rng.uniform(2, 3, 400)])
    w = np.concatenate([np.full(4000, 1e6 / 4000), np.full(400, 50 / 400)])
    sig = {"s": rng.uniform(1.5, 3.5, 500)}
    beam = Beam(luminosity=2e34)
    rate = 50 * beam.khz_per_pb  # all of B passes: 1e-3 kHz
    m, sec = evaluate_anomaly(
        tmp_path,
        {"float": bkg},
        {"float": sig},
        rate_khz=[rate],
        bkg_weights=w,
        beam=beam,
        bkg_process=np.repeat([0, 1], [4000, 400]),
        process_names=["A", "B"],
    )
    wp = m["float"]["weighted"]["working_points"][0]
    assert wp["rate_khz"] == pytest.approx(rate)
    assert wp["rate_khz_err"] == pytest.approx(rate / np.sqrt(400))
    assert wp["n_effective_background_selected"] == pytest.approx(400)
    assert wp["threshold"] == bkg[:4000].max()
    eff = m["float"]["weighted"]["signals"]["s"]["efficiency"][wp["name"]]["efficiency"]
    assert eff == pytest.approx(np.mean(sig["s"] > wp["threshold"]))
    md = write_report(tmp_path, "run", [sec]).read_text()
    assert "plots/rate_vs_threshold.png" in md
    assert "plots/score_by_process.png" in md
    assert (tmp_path / "plots" / "rate_vs_threshold.png").stat().st_size > 1000
    assert "Trigger rates of the weighted background stream" in md
    assert f"{wp['rate_khz']:.3g} +- {wp['rate_khz_err']:.2g}" in md


def test_zero_bias_report_shows_the_stream_and_its_brute_force_check(tmp_path):
    """With the unbiased sample's weights and the stream's info, the report holds the
    stream table and the brute-force check at each check rate, in the metrics too."""
    pytest.importorskip("matplotlib", reason="plots need matplotlib (learn extra)")
    pytest.importorskip("sklearn", reason="ROC curves need scikit-learn (learn extra)")
    from poetml.rates import Beam
    from poetml.report import evaluate_anomaly, write_report

    beam = Beam()
    f, per_pb = beam.crossing_rate_khz, beam.crossing_rate_khz / beam.khz_per_pb
    rng = np.random.default_rng(5)
    bkg = rng.uniform(0, 1, 5000)
    w = np.full(5000, per_pb / 5000)
    unbiased = np.full(5000, f / 5000)  # the same crossings, counted once each
    stream = {
        "unit": "bunch crossings", "crossing_rate_khz": f, "crossings_pb": per_pb,
        "pileup_beam": beam.pileup, "hard_sigma_pb": 0.1 * per_pb,
        "stitching": {"processes": ["qcd"], "pthat_threshold_gev": 30.0,
                      "minbias_events_vetoed": 7, "minbias_sigma_above_pb": 1.4e8,
                      "stitched_sigma_pb": 1.6e8},
    }  # fmt: skip
    m, sec = evaluate_anomaly(
        tmp_path, {"q": bkg}, {"q": {"s": rng.uniform(0.5, 1.5, 300)}}, rate_khz=[1000.0],
        bkg_weights=w, beam=beam, unbiased=unbiased, check_rate_khz=[2000.0], stream=stream,
    )  # fmt: skip
    (c,) = m["q"]["weighted"]["unbiased_checks"]
    assert c["unbiased"]["rate_khz"] == pytest.approx(c["weighted"]["rate_khz"])
    assert c["pull"] == 0.0
    md = write_report(tmp_path, "run", [sec]).read_text()
    assert "The zero-bias stream: every event a bunch crossing" in md
    assert "| pile-up of the beam (mean interactions per crossing) | 55.7 |" in md
    assert "The weighted stream against brute force" in md
