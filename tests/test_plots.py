"""poetml.plots: every plot function writes a readable, non-empty PNG of the expected size,
leaves no temporary file and no open pyplot figure, and rejects inconsistent inputs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="matplotlib is not installed (the learn extra)")
pytest.importorskip("mplhep", reason="mplhep is not installed (the learn extra)")

from matplotlib import image as mpimg

from poetml import evaluation as ev
from poetml import plots

NAMES = ["DY", "W+jets", "ttbar"]
MODELS = ("float", "quantized", "pruned")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 3, n)
    probs = {}
    for k, m in enumerate(MODELS):
        logits = rng.normal(0, 1 + 0.2 * k, (n, 3))
        logits[np.arange(n), y] += 2
        p = np.exp(logits)
        probs[m] = p / p.sum(axis=1, keepdims=True)
    bkg = {m: rng.exponential(1.0, 20_000) for m in MODELS[:2]}
    sig = {
        m: {"A->4l": rng.exponential(4.0, 500), "LQ->b tau": rng.exponential(2.0, 500)}
        for m in MODELS[:2]
    }
    images = rng.exponential(1, (60, 12, 12, 2)) * (rng.random((60, 12, 12, 2)) < 0.1)
    return {"y": y, "probs": probs, "bkg": bkg, "sig": sig, "images": images, "rng": rng}


def _check_png(path, min_w=300, min_h=300):
    assert path.is_file()
    assert path.stat().st_size > 5_000
    img = mpimg.imread(path)
    assert img.ndim == 3
    assert img.shape[0] >= min_h
    assert img.shape[1] >= min_w
    assert img[..., :3].std() > 0.01  # not a blank canvas
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temp file
    return img


def test_roc_curves_models_overlaid(tmp_path, data):
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (the learn extra)")
    p = plots.plot_roc_curves(data["y"], data["probs"], NAMES, tmp_path / "roc.png")
    _check_png(p)
    _check_png(
        plots.plot_roc_curves(
            data["y"], data["probs"]["float"], NAMES, tmp_path / "roc_log.png", log_fpr=True
        )
    )
    with pytest.raises(ValueError, match=r"shape \(600, 2\), expected \(600, 3\)"):
        plots.plot_roc_curves(data["y"], data["probs"]["float"][:, :2], NAMES, tmp_path / "bad.png")


def test_confusion_matrices(tmp_path, data):
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (the learn extra)")
    cms = {m: ev.confusion_matrix(data["y"], p.argmax(axis=1), 3) for m, p in data["probs"].items()}
    img = _check_png(
        plots.plot_confusion_matrix(cms, NAMES, tmp_path / "cm_norm.png", normalize=True)
    )
    assert img.shape[1] > 2 * img.shape[0]  # three panels side by side
    _check_png(
        plots.plot_confusion_matrix(
            cms["float"], NAMES, tmp_path / "cm.png", label="CMS Open Data", com=8
        )
    )
    with pytest.raises(ValueError, match="expected \\(3, 3\\)"):
        plots.plot_confusion_matrix(np.ones((2, 2)), NAMES, tmp_path / "bad.png")


def test_learning_curves(tmp_path):
    h = {
        "loss": [1.0, 0.7, 0.6],
        "val_loss": [0.9, 0.75, 0.7],
        "accuracy": [0.5, 0.7, 0.8],
        "val_accuracy": [0.55, 0.7, 0.78],
        "lr": [1e-3, 1e-3, 5e-4],
    }
    h2 = {k: [v * 1.1 for v in vs] for k, vs in h.items()}
    img = _check_png(plots.plot_learning_curves({"float": h, "quantized": h2}, tmp_path / "lc.png"))
    assert img.shape[1] > 1.5 * img.shape[0]  # loss and accuracy panels, no lr panel
    _check_png(plots.plot_learning_curves(h, tmp_path / "lc1.png", metrics=["loss"], log_loss=True))


def test_mean_and_example_images(tmp_path, data):
    y = data["y"][:60]
    kw = {"channel_names": ["muons", "jets"], "eta_range": (-2.5, 2.5)}
    img = _check_png(plots.plot_mean_images(data["images"], y, NAMES, tmp_path / "mean.png", **kw))
    assert img.shape[0] > 2 * 300  # three class rows
    _check_png(
        plots.plot_example_images(data["images"], y, NAMES, tmp_path / "ex.png", seed=1, **kw)
    )
    with pytest.raises(ValueError, match="1 channel names for 2 channels"):
        plots.plot_mean_images(data["images"], y, NAMES, tmp_path / "bad.png", channel_names=["a"])


def test_mean_and_example_images_of_sparse_images(tmp_path, data):
    """Sparse images (what poetml run's test split holds) plot as their dense images do,
    without being densified for the mean."""
    from poetml.images import SparseImages

    dense = data["images"].astype(np.float32)
    y = data["y"][:60]
    flat = dense.reshape(60, -1)
    event, pixel = np.nonzero(flat)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(event, minlength=60))]).astype(np.int64)
    sp = SparseImages(offsets, pixel.astype(np.int32), flat[event, pixel], dense.shape[1:])
    for c in range(3):
        np.testing.assert_allclose(
            plots._mean_image(sp, y == c), dense[y == c].astype(np.float64).mean(axis=0),
            rtol=1e-12, atol=1e-15,
        )  # fmt: skip
    kw = {"channel_names": ["muons", "jets"], "eta_range": (-2.5, 2.5)}
    for fn in (plots.plot_mean_images, plots.plot_example_images):
        a = _check_png(fn(sp, y, NAMES, tmp_path / "sparse.png", **kw))
        b = _check_png(fn(dense, y, NAMES, tmp_path / "dense.png", **kw))
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="labels have shape"):
        plots.plot_mean_images(sp, y[:5], NAMES, tmp_path / "bad.png")


def test_anomaly_roc_efficiency_rate_and_scores(tmp_path, data):
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (the learn extra)")
    _check_png(
        plots.plot_anomaly_roc(
            data["bkg"], data["sig"], tmp_path / "aroc.png", working_fpr=[1e-4, 2.5e-5]
        )
    )
    _check_png(
        plots.plot_efficiency_vs_rate(
            data["bkg"]["float"], data["sig"]["float"], tmp_path / "eff.png", rate_khz=4.0
        )
    )
    thr = {m: ev.threshold_at_fpr(b, 1e-3) for m, b in data["bkg"].items()}
    img = _check_png(
        plots.plot_score_distributions(
            data["bkg"], data["sig"], tmp_path / "s.png", thresholds=thr, log_x=True
        )
    )
    assert img.shape[1] > 1.5 * img.shape[0]  # one panel per model
    with pytest.raises(ValueError, match="same models"):
        plots.plot_anomaly_roc(data["bkg"], data["sig"]["float"], tmp_path / "bad.png")


def test_latent_space(tmp_path, data):
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (the learn extra)")
    rng = data["rng"]
    lat = np.r_[rng.normal(0, 1, (200, 6)), rng.normal(4, 1, (200, 6))]
    lab = np.repeat([0, 1], 200)
    km = ev.kmeans(lat, 2, seed=0)
    _check_png(plots.plot_latent_space(lat, lab, ["SM", "BSM"], km.labels, tmp_path / "lat.png"))
    fit = ev.pca(lat, 2)
    _check_png(
        plots.plot_latent_space(
            fit.scores,
            lab,
            ["SM", "BSM"],
            km.labels,
            tmp_path / "lat2.png",
            explained_variance_ratio=fit.explained_variance_ratio,
            max_points=100,
        )
    )


def test_dimuon_mass_plot(tmp_path, data):
    rng = data["rng"]
    m = np.r_[91.19 + 2.5 * rng.standard_cauchy(800), np.full(50, np.nan)]
    ref = np.r_[m, rng.uniform(0, 150, 800)]
    _check_png(
        plots.plot_dimuon_mass(
            {"float": m, "quantized": m[::-1]}, tmp_path / "mass.png", reference=ref
        )
    )
    _check_png(plots.plot_dimuon_mass(m, tmp_path / "mass_d.png", density=True, bins=20))


def test_no_pyplot_state_or_rcparams_leak(tmp_path):
    import sys

    import matplotlib

    before = dict(matplotlib.rcParams)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no font or layout warnings either
        plots.plot_dimuon_mass(np.array([91.0, 90.0, math.nan]), tmp_path / "m.png")
    assert dict(matplotlib.rcParams) == before  # CMS style applied in a context only
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []
