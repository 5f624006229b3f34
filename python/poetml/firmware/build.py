"""The firmware stage end to end: model -> validated hls4ml trigger project + report.

:func:`build_firmware` takes arrays (a notebook can call it); :func:`load_firmware_inputs`
reads a trained model directory and its test events for the CLI and ``poetml run``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import write_json, write_text
from .._optional import require
from ..datasets.scalers import Preprocessing  # light (NumPy); a real import, so docs resolve hints
from ..exceptions import FirmwareError
from .config import ANOMALY_SCORES, FirmwareConfig
from .convert import choose_io_type, convert, load_qkeras_model
from .emulate import EmulatorExport
from .score_model import make_score_model

__all__ = [
    "FirmwareResult",
    "ModelInputs",
    "build_firmware",
    "load_firmware_inputs",
    "split_events",
]

EVENT_FILES = ("firmware_events.npz", "test_events.npz", "test.npz")
META_FILES = ("model.json", "metadata.json", "meta.json")


class _Steps:
    """One progress bar over the steps of :func:`build_firmware` (on stderr).  hls4ml's write
    and g++ report no progress of their own, so the bar counts steps, names the one running
    and shows the time spent; the C simulations draw their own event bars beneath it."""

    def __init__(self, names: tuple[str, ...], enabled: bool):
        self.bar: Any = None
        self.started = False
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=len(names), unit="step", file=sys.stderr, leave=False,
                bar_format="firmware: step {n_fmt}/{total_fmt} done [{elapsed}] {desc}",
            )  # fmt: skip

    def start(self, name: str) -> None:
        """Mark the step running so far done and show ``name`` as running."""
        if self.bar is not None:
            self.bar.set_description_str(name, refresh=False)
            self.bar.update(1 if self.started else 0)
            self.bar.refresh()  # hls4ml and g++ run for seconds before the next update
        self.started = True

    def close(self) -> None:
        if self.bar is not None:
            if self.started:
                self.bar.update(1)
            self.bar.close()


#: the steps :func:`build_firmware` shows in its progress bar, in order
FIRMWARE_STEPS = (
    "score model and hls4ml write",
    "compile C simulation (g++)",
    "bit-exact emulator",
    "C simulation",
    "threshold and agreement",
    "compile trigger (g++)",
    "trigger C simulation",
    "report",
)


@dataclass(frozen=True)
class ModelInputs:
    """A trained model and labelled test events, as read from a model directory."""

    model: Any
    model_path: Path
    x: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...]
    background_label: int = 0
    feature_names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FirmwareResult:
    """What :func:`build_firmware` produced: the project folder, the report dict (also in
    ``firmware.json``), the Markdown section (``firmware.md``) and whether validation passed."""

    out_dir: Path
    project_dir: Path
    report: dict[str, Any]
    markdown: str
    passed: bool


def _read_meta(d: Path) -> dict[str, Any]:
    for name in META_FILES:
        p = d / name
        if p.exists():
            try:
                data = json.loads(p.read_text())
            except (OSError, ValueError) as exc:
                raise FirmwareError(f"cannot read {p}: {exc}") from exc
            return data if isinstance(data, dict) else {}
    return {}


def _pick_model_file(d: Path, meta: dict[str, Any]) -> Path:
    for key in ("firmware_model", "quantized_model", "qmodel", "model_file"):
        if isinstance(meta.get(key), str):
            return d / meta[key]
    files = sorted(p for p in d.iterdir() if p.suffix in (".keras", ".h5") and p.is_file())
    if not files:
        raise FirmwareError(f"{d}: no Keras model file (*.keras or *.h5)")
    for pattern in ("quant", "qkeras", "q_", "qmodel"):
        hits = [p for p in files if pattern in p.name.lower()]
        if hits:
            # a quantized *and* pruned model is what the trigger deploys
            pruned = [p for p in hits if "prun" in p.name.lower()]
            return (pruned or hits)[0]
    if len(files) > 1:
        raise FirmwareError(
            f"{d}: several model files ({', '.join(p.name for p in files)}) and none named as the "
            'quantized model; name it in model.json as {"firmware_model": FILE}'
        )
    return files[0]


def load_events(path: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read ``x``, ``labels`` (and ``label_names``) from an ``.npz`` of test events.

    ``x`` holds the model inputs exactly as the model sees them (scaled, quantized).
    (An optional ``feature_names`` array is read by :func:`load_firmware_inputs`.)
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            if "x" not in keys or "labels" not in keys:
                raise FirmwareError(f"{path}: needs arrays 'x' and 'labels', has {sorted(keys)}")
            x = np.asarray(f["x"], np.float32)
            labels = np.asarray(f["labels"]).astype(np.int64)
            names = tuple(str(n) for n in f["label_names"]) if "label_names" in keys else ()
    except (OSError, ValueError) as exc:
        raise FirmwareError(f"cannot read test events {path}: {exc}") from exc
    if len(x) != len(labels):
        raise FirmwareError(f"{path}: {len(x)} events in 'x' but {len(labels)} labels")
    if not names:
        names = tuple(f"class{i}" for i in range(int(labels.max()) + 1 if len(labels) else 0))
    return x, labels, names


def load_firmware_inputs(
    path: str | Path, events: str | Path | None = None, *, trust_model: bool = False
) -> ModelInputs:
    """Read a trained model directory for the firmware: the model file to deploy and
    labelled test events (:func:`poetml.training.load_model_dir` reads a directory for
    training and evaluation).

    Model: the file named by ``firmware_model`` in ``model.json`` (or ``metadata.json``), else
    the ``*.keras``/``*.h5`` whose name marks it quantized (a quantized+pruned one first), else
    the only model file.  ``path`` may also be the model file itself.
    Events: ``events`` or ``firmware_events.npz``/``test_events.npz`` in the directory, with
    arrays ``x`` (model inputs), ``labels`` (int) and optionally ``label_names``;
    ``background_label`` in the metadata (default 0) marks the Standard Model background.
    ``trust_model``: load a model file that holds code (see :func:`poetml.models.load_model`).
    """
    path = Path(path)
    if not path.exists():
        raise FirmwareError(f"model directory {path} does not exist")
    d = path if path.is_dir() else path.parent
    meta = _read_meta(d)
    model_path = path if path.is_file() else _pick_model_file(d, meta)
    if events is None:
        cands = [d / n for n in EVENT_FILES if (d / n).exists()]
        if isinstance(meta.get("test_events"), str):
            cands.insert(0, d / meta["test_events"])
        if not cands:
            raise FirmwareError(
                f"{d}: no test events ({' or '.join(EVENT_FILES)}) for validation and the trigger "
                "threshold; pass --events-file FILE.npz with arrays x and labels"
            )
        events = cands[0]
    x, labels, names = load_events(events)
    if isinstance(meta.get("label_names"), list) and len(meta["label_names"]) >= len(names):
        names = tuple(map(str, meta["label_names"]))
    features: tuple[str, ...] | None = None
    if isinstance(meta.get("feature_names"), list):
        features = tuple(map(str, meta["feature_names"]))
    else:
        with np.load(events, allow_pickle=False) as f:
            if "feature_names" in f.files:
                features = tuple(str(n) for n in f["feature_names"])
    model = load_qkeras_model(model_path, trust_model=trust_model)
    return ModelInputs(
        model, model_path, x, labels, names, int(meta.get("background_label", 0)), features
    )


def split_events(
    inputs: ModelInputs, kind: str, score_index: int, n_classes: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Background and per-signal inputs.

    Anomaly scores: background = the background label, one signal per other label.
    Classifier logits: background = events not of the trigger class, signal = that class.
    """
    lab, names = inputs.labels, inputs.label_names

    def name(i: int) -> str:
        return names[i] if i < len(names) else f"class{i}"

    if kind in ANOMALY_SCORES:
        bkg = inputs.x[lab == inputs.background_label]
        sig = {name(i): inputs.x[lab == i] for i in np.unique(lab) if i != inputs.background_label}
    else:
        bkg = inputs.x[lab != score_index]
        sig = {name(score_index): inputs.x[lab == score_index]}
    if len(bkg) == 0:
        raise FirmwareError("the test events hold no background events for the trigger threshold")
    return bkg, {k: v for k, v in sig.items() if len(v)}


def build_firmware(
    model: Any,
    out_dir: str | Path,
    config: FirmwareConfig | None = None,
    *,
    background: np.ndarray,
    signals: dict[str, np.ndarray] | None = None,
    feature_names: tuple[str, ...] | list[str] | None = None,
    progress: bool = True,
    raise_on_mismatch: bool = True,
    background_weights: np.ndarray | None = None,
    beam: Any = None,
    model_dir: str | Path | None = None,
    preprocessing: Preprocessing | None = None,
) -> FirmwareResult:
    """Convert ``model`` into a validated hls4ml trigger project in ``out_dir``.

    ``model_dir``: the poetml model directory ``model`` was read from; its fingerprint
    (:func:`poetml.training.model_dir_fingerprint`) goes into the report and into
    ``emulator.npz``, which ``poetml score --firmware`` reads.

    ``background_weights`` (pb per background event) with ``beam``
    (:class:`poetml.rates.Beam`): the background is a weighted stream and the threshold is
    set for ``config.rate_khz`` at that luminosity, by the function the evaluation's
    weighted working points use (:func:`poetml.rates.threshold_for_rate_weighted`).

    ``background`` also sizes the quantizers of an autoencoder's score; ``feature_names``
    (the model's input features) let its reconstruction score skip absent objects.

    Steps: deployable score model; hls4ml project in ``out_dir/hls`` with compiled C simulation;
    batched C simulation of background and signal events; trigger threshold for
    ``config.rate_khz`` on the C-simulated background; ``trigger_decision`` written, compiled and
    C-simulated; agreement with QKeras (plus a per-layer trace of the first disagreeing event);
    cost estimate; vendor synthesis if ``config.synth``.  Writes ``firmware.json`` and
    ``firmware.md``; raises :class:`~poetml.firmware.validate.FirmwareValidationError` (after
    writing them) when the agreement is worse than the configured tolerance.  When synthesis
    cannot run, ``report["synthesis"]`` says why (status ``not run: ...``).  With ``progress``
    one bar on stderr names the step running (hls4ml's write, the g++ builds, the C
    simulations with their own event bars).

    When the bit-exact emulator runs the network and agrees with the C simulation, also
    writes ``out_dir/emulator/``: ``emulator.hpp`` (network, trigger threshold and rule, and
    with ``preprocessing`` the model's scaler and input quantizer, so C++ programs start from
    raw features), ``score_features.cpp`` (scores the features of a POET file given as
    ``.npy``) and ``README.txt`` (see :mod:`poetml.firmware.standalone`).
    """
    steps = _Steps(FIRMWARE_STEPS, progress)
    try:
        return _build_firmware(
            model, out_dir, config, background=background, signals=signals,
            feature_names=feature_names, progress=progress, raise_on_mismatch=raise_on_mismatch,
            background_weights=background_weights, beam=beam, steps=steps, model_dir=model_dir,
            preprocessing=preprocessing,
        )  # fmt: skip
    finally:
        steps.close()


def _build_firmware(
    model: Any,
    out_dir: str | Path,
    config: FirmwareConfig | None,
    *,
    background: np.ndarray,
    signals: dict[str, np.ndarray] | None,
    feature_names: tuple[str, ...] | list[str] | None,
    progress: bool,
    raise_on_mismatch: bool,
    background_weights: np.ndarray | None,
    beam: Any,
    steps: _Steps,
    model_dir: str | Path | None,
    preprocessing: Preprocessing | None,
) -> FirmwareResult:
    from . import csim as cs
    from .cost import estimate_cost
    from .trigger import ratio_threshold, threshold_for_rate, write_trigger
    from .validate import (
        FirmwareValidationError,
        agreement,
        layer_trace,
        rank_auc,
        to_markdown,
        trace_text,
        within_tolerance,
    )

    hls4ml = require("hls4ml", "firmware conversion")
    config = config or FirmwareConfig()
    signals = dict(signals or {})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    project_dir = out_dir / "hls"
    timings: dict[str, float] = {}
    background = np.asarray(background, np.float32)
    if background_weights is not None:
        background_weights = np.asarray(background_weights, np.float64)
        if background_weights.shape != (len(background),):
            raise FirmwareError(
                f"{len(background_weights)} background weights for {len(background)} events"
            )
    if config.events:
        background = background[: config.events]
        if background_weights is not None:
            # the first events stand for the whole stream
            head = background_weights[: config.events]
            background_weights = head * (background_weights.sum() / head.sum())
        signals = {k: np.asarray(v, np.float32)[: config.events] for k, v in signals.items()}

    steps.start(FIRMWARE_STEPS[0])
    t0 = time.perf_counter()
    score = make_score_model(model, config, calibration=background, feature_names=feature_names)
    hls_model = convert(score.model, project_dir, config, compile=False)
    timings["convert_s"] = time.perf_counter() - t0

    out_var = hls_model.get_output_variables()[0]
    precision = out_var.type.precision
    frac = int(precision.width - precision.integer)
    lsb = 2.0**-frac
    sig = cs.top_signature(
        project_dir,
        config.project_name,
        int(hls_model.get_input_variables()[0].size()),
        int(out_var.size()),
    )

    steps.start(FIRMWARE_STEPS[1])
    t0 = time.perf_counter()
    lib = cs.build_csim_library(project_dir, sig)
    timings["batched_lib_compile_s"] = time.perf_counter() - t0

    # C simulation and QKeras on all events: background first, then each signal
    names = ["background", *signals]
    arrays = [background, *signals.values()]
    x_all = np.concatenate(arrays) if len(arrays) > 1 else background
    bounds = np.cumsum([0, *map(len, arrays)])
    workers = config.workers or cs.default_workers()
    # The bit-exact emulator (when it can run this network) scores every event; the C
    # simulation, the referee, scores a validation sample (all events up to
    # config.referee_events) and the emulator must equal it there bit for bit.
    steps.start(FIRMWARE_STEPS[2])
    y_e, emulator, export = _emulate_events(hls_model, x_all, workers)
    ref_idx = _referee_sample(len(x_all), y_e is not None, config.referee_events)
    steps.start(FIRMWARE_STEPS[3])
    with cs.CSim(lib, workers=workers) as sim:
        t0 = time.perf_counter()
        y_ref = sim.predict(x_all[ref_idx], progress=progress)
        t_csim = time.perf_counter() - t0
    if y_e is not None:
        ag_e = agreement(y_ref, y_e[ref_idx], lsb)
        emulator.update(
            n_referee_events=len(ref_idx),
            exact_fraction=ag_e["exact_fraction"],
            exact_event_fraction=ag_e["exact_event_fraction"],
            max_diff_lsb=ag_e["max_diff_lsb"],
            csim_events_per_s=len(ref_idx) / t_csim if t_csim > 0 else float("inf"),
        )
        emulator["agrees"] = ag_e["exact_fraction"] == 1.0
    if y_e is not None and emulator["agrees"]:
        y_c = y_e
    elif len(ref_idx) == len(x_all):
        y_c = y_ref
    else:  # the emulator disagrees: the C simulation scores everything
        with cs.CSim(lib, workers=workers) as sim:
            y_c = sim.predict(x_all, progress=progress)
    y_q = np.asarray(score.model.predict(x_all, batch_size=8192, verbose=0), np.float64).reshape(
        len(x_all), -1
    )
    timings["csim_s"] = t_csim

    def rows(y: np.ndarray, i: int) -> np.ndarray:
        return y[bounds[i] : bounds[i + 1]]

    def part(y: np.ndarray, i: int) -> np.ndarray:
        return score.scores(rows(y, i))

    def working_point(y: np.ndarray) -> Any:
        kw = {"weights_pb": background_weights, "beam": beam}
        if score.denominator_index is None:
            return threshold_for_rate(part(y, 0), config.rate_khz, config.collision_rate_mhz, **kw)
        b = rows(y, 0)
        return ratio_threshold(b[:, score.score_index], b[:, score.denominator_index],
                               config.rate_khz, config.collision_rate_mhz, **kw)  # fmt: skip

    def efficiency(y: np.ndarray, i: int, threshold: float) -> float:
        fires = score.fires(rows(y, i), threshold)
        return float(fires.mean()) if len(fires) else float("nan")

    steps.start(FIRMWARE_STEPS[4])
    thr = working_point(y_c)
    thr_q = working_point(y_q)
    ag = agreement(y_q, y_c, lsb)
    signal_rows = {}
    for i, name in enumerate(names[1:], start=1):
        auc_q = rank_auc(part(y_q, 0), part(y_q, i))
        auc_c = rank_auc(part(y_c, 0), part(y_c, i))
        eff_q = efficiency(y_q, i, thr_q.value)
        eff_c = efficiency(y_c, i, thr.value)
        signal_rows[name] = {
            "n_events": int(bounds[i + 1] - bounds[i]),
            "auc_qkeras": auc_q,
            "auc_csim": auc_c,
            "auc_shift": auc_c - auc_q,
            "eff_qkeras": eff_q,
            "eff_csim": eff_c,
            "eff_shift": eff_c - eff_q,
        }
    passed = within_tolerance(ag, config.min_exact_fraction, config.tolerance_lsb)
    if emulator.get("available") and not emulator.get("agrees"):
        passed = False
    trace_rows = None
    text = None
    if ag["first_disagreeing_event"] is not None:
        ev = ag["first_disagreeing_event"]
        trace_rows = layer_trace(score.model, hls_model, x_all[ev : ev + 1])
        text = trace_text(trace_rows, ev)

    # trigger decision: threshold as a constant of the score type, top function, C simulation
    write_trigger(
        project_dir,
        sig,
        thr,
        precision.definition_cpp(),
        frac,
        score.score_index,
        part=config.part,
        clock_period=config.clock_period,
        denominator_index=score.denominator_index,
    )
    steps.start(FIRMWARE_STEPS[5])
    t0 = time.perf_counter()
    trig_lib = cs.build_csim_library(project_dir, sig, with_trigger=True)
    timings["trigger_compile_s"] = time.perf_counter() - t0
    steps.start(FIRMWARE_STEPS[6])
    with cs.CSim(trig_lib, workers=workers) as sim:
        fire, t_score = sim.trigger(x_all[ref_idx], progress=progress)
    bkg_ref = ref_idx < bounds[1]
    trigger_csim = {
        "n_events": len(ref_idx),
        "fire_matches": bool(np.array_equal(fire, score.fires(y_c[ref_idx], thr.value))),
        "score_matches": bool(np.array_equal(t_score, y_c[ref_idx, score.score_index])),
        "background_fire_fraction": float(fire[bkg_ref].mean()) if bkg_ref.any() else 0.0,
        **_csim_trigger_rate(
            fire[bkg_ref], ref_idx[bkg_ref], len(background), background_weights, beam, config
        ),
    }
    if not (trigger_csim["fire_matches"] and trigger_csim["score_matches"]):
        passed = False
    if export is not None and emulator.get("agrees"):
        emulator.update(
            _write_standalone(
                out_dir / "emulator", export, config.project_name, score, thr, preprocessing
            )
        )
    elif export is not None:
        emulator["standalone"] = "not written: the emulator disagrees with the C simulation"

    steps.start(FIRMWARE_STEPS[7])
    report: dict[str, Any] = {
        "hls4ml_version": hls4ml.__version__,
        "project_dir": str(project_dir),
        "project_name": config.project_name,
        "io_type": choose_io_type(score.model, config),
        "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "score_kind": score.kind,
        "score_index": score.score_index,
        "denominator_index": score.denominator_index,
        "trigger_rule": (
            "score > threshold"
            if score.denominator_index is None
            else f"output {score.score_index} > threshold x output {score.denominator_index} "
            f"(score = output {score.score_index} / output {score.denominator_index})"
        ),
        "notes": list(score.notes),
        "output_precision": str(precision),
        "output_lsb": lsb,
        "threshold": thr.to_dict(),
        "threshold_qkeras": thr_q.to_dict(),
        "trigger_header": str(project_dir / "firmware" / "trigger.h"),
        "trigger_csim": trigger_csim,
        "validation": {
            "passed": passed,
            "min_exact_fraction": config.min_exact_fraction,
            "tolerance_lsb": config.tolerance_lsb,
            "agreement": ag,
            "signals": signal_rows,
            "trace": trace_rows,
            "trace_text": text,
        },
        "emulator": emulator,
        "csim_speed": {
            "n_events": len(ref_idx),
            "seconds": t_csim,
            "workers": workers,
            "events_per_s": len(ref_idx) / t_csim if t_csim > 0 else float("inf"),
        },
        "cost_estimate": estimate_cost(hls_model),
        "timings": timings,
        "build_script": str(project_dir / "build_prj.tcl"),
    }
    if config.synth:
        from .synth import run_synthesis

        try:
            report["synthesis"] = {
                "status": "done",
                **run_synthesis(project_dir, config.project_name, config.backend),
            }
        except FirmwareError as exc:  # the project stays complete; the caller decides
            report["synthesis"] = {"status": f"not run: {exc}", "error": str(exc)}
    if model_dir is not None:
        from ..exceptions import ReadError
        from ..training import model_dir_fingerprint

        try:
            report["model_dir"] = model_dir_fingerprint(model_dir)
        except ReadError:  # a model file without poetml's preprocessing: nothing to pair
            report["model_dir"] = None
    if export is not None and emulator.get("agrees"):
        emulator["export"] = str(
            _save_emulator(export, out_dir / "emulator" / "emulator.npz", report, thr.value)
        )
    md = to_markdown(report)
    write_json(out_dir / "firmware.json", report)
    write_text(out_dir / "firmware.md", md + "\n")
    if not passed and raise_on_mismatch:
        why = (
            f"C simulation disagrees with QKeras beyond tolerance: exact fraction "
            f"{ag['exact_fraction']:.6f} (required {config.min_exact_fraction}), max diff "
            f"{ag['max_diff_lsb']:g} LSB (allowed {config.tolerance_lsb:g})"
        )
        if not (trigger_csim["fire_matches"] and trigger_csim["score_matches"]):
            why = f"trigger_decision() C simulation does not reproduce the network score/threshold; {why}"
        raise FirmwareValidationError(f"{why}; report in {out_dir / 'firmware.json'}\n{text or ''}")
    return FirmwareResult(out_dir, project_dir, report, md, passed)


def _csim_trigger_rate(
    fire: np.ndarray,
    idx: np.ndarray,
    n_background: int,
    weights_pb: np.ndarray | None,
    beam: Any,
    config: FirmwareConfig,
) -> dict[str, Any]:
    """The trigger rate that the C simulation's ``trigger_decision`` gives on the background
    events it ran (``idx``, their fire bits ``fire``): weighted by cross section at ``beam``
    when there are weights, else fired fraction x the collision rate.  When the C simulation
    ran a sample of the background, the sample's weights are scaled to the whole stream's
    sum (unweighted: its fraction stands for the stream), so the figure estimates the
    threshold's rate with the sample's statistics."""
    from .. import rates

    fire = np.asarray(fire, bool)
    out: dict[str, Any] = {
        "rate_sample": "all" if len(idx) == n_background else "referee",
        "n_background_events": len(idx),
    }
    if weights_pb is not None:
        w = weights_pb[idx]
        scale = float(weights_pb.sum() / w.sum()) if w.sum() > 0 else math.nan
        r = rates.rate_above(fire.astype(np.float64), w * scale, 0.5, beam or rates.Beam())
        out.update(rate_khz=r.rate_khz, rate_khz_err=r.rate_khz_err, weighted=True)
    else:
        k, n = int(fire.sum()), max(len(fire), 1)
        khz = config.collision_rate_mhz * 1e3
        out.update(rate_khz=k / n * khz, rate_khz_err=math.sqrt(max(k, 1)) / n * khz,
                   weighted=False)  # fmt: skip
    return out


def _referee_sample(n: int, emulated: bool, limit: int) -> np.ndarray:
    """Indices of the events the C simulation scores: all of them without the emulator (or
    with ``limit`` 0), else at most ``limit``, evenly spread (background and every signal)."""
    if not emulated or limit <= 0 or n <= limit:
        return np.arange(n)
    return np.arange(0, n, -(-n // limit))


def _emulate_events(
    hls_model: Any, x: np.ndarray, workers: int
) -> tuple[np.ndarray | None, dict[str, Any], EmulatorExport | None]:
    """The bit-exact emulator's outputs for ``x``, what the report says of it and the exported
    network; ``None`` (and the reason) when the network has a layer the emulator does not
    reproduce."""
    from .emulate import emulate, export_network

    try:
        export = export_network(hls_model)
    except (FirmwareError, ValueError, KeyError, AttributeError, TypeError) as exc:
        # UnsupportedLayerError (a FirmwareError) names what the emulator cannot reproduce;
        # anything else is reported too, and the C simulation then scores every event
        return None, {"available": False, "reason": f"{type(exc).__name__}: {exc}"}, None
    t0 = time.perf_counter()
    y = np.asarray(emulate(export, x, n_threads=workers))
    seconds = time.perf_counter() - t0
    return (
        y,
        {
            "available": True,
            "n_events": len(x),
            "seconds": seconds,
            "threads": workers,
            "events_per_s": len(x) / seconds if seconds > 0 else float("inf"),
        },
        export,
    )


def _write_standalone(
    out: Path,
    export: EmulatorExport,
    namespace: str,
    score: Any,
    threshold: Any,
    preprocessing: Preprocessing | None,
) -> dict[str, Any]:
    """``out/emulator.hpp``, ``score_features.cpp`` and ``README.txt`` (see
    :func:`poetml.firmware.standalone.write_standalone`) and the report's entries on them."""
    from .emulate import TriggerRule
    from .standalone import write_standalone

    if preprocessing is not None and int(np.prod(preprocessing.input_shape)) != export.n_inputs:
        raise FirmwareError(
            f"the preprocessing is for inputs of shape {tuple(preprocessing.input_shape)}, the "
            f"network reads {export.n_inputs} values"
        )
    t = threshold
    trigger = TriggerRule(
        float(t.value),
        score.score_index,
        score.denominator_index,
        f"{score.kind} score; threshold set for {t.target_rate_khz:g} kHz on {t.n_background} "
        f"background events\n(the sample gives {t.rate_khz:.4g} +- {t.rate_khz_err:.3g} kHz, "
        f"{t.n_pass} events pass; see firmware.json)",
    )
    if not namespace.isidentifier():  # a project name that is no C++ identifier
        namespace = "poetml_network"
    paths = write_standalone(out, export, namespace, trigger=trigger, preprocessing=preprocessing)
    return {
        "header": str(paths["header"]),
        "program": str(paths["program"]),
        "readme": str(paths["readme"]),
        "preprocessing_in_header": preprocessing is not None,
    }


def _save_emulator(
    export: EmulatorExport, path: Path, report: dict[str, Any], threshold: float
) -> Path:
    """``emulator.npz``: the network as the emulator runs it plus the trigger rule (score
    output, denominator, threshold) and the model directory's fingerprint, for
    ``poetml score --firmware`` (:func:`poetml.pipeline.scoring.score`)."""
    from .emulate import save_export

    meta = {
        "score_kind": report["score_kind"],
        "score_index": report["score_index"],
        "denominator_index": report["denominator_index"],
        "trigger_rule": report["trigger_rule"],
        "threshold": float(threshold),
        "rate_khz": report["threshold"].get("rate_khz"),
        "model_dir": report.get("model_dir"),
        "hls4ml_version": report["hls4ml_version"],
    }
    return save_export(export, path, meta)


def _require_quantized(model: Any, path: Path) -> None:
    from .convert import is_quantized

    if not is_quantized(model):
        raise FirmwareError(
            f"{path} is a float model (no QKeras layer): firmware is made from the quantized "
            "twin; pass RUN/models/quantized (or quantized_pruned), or a QKeras model file"
        )


def is_run_model_dir(model_dir: str | Path) -> bool:
    """Whether ``model_dir`` was written by ``poetml run`` (``config.json``) and holds no events
    of its own: its events are its run's test split (see
    :func:`poetml.pipeline.firmware.build_from_model_dir`)."""
    path = Path(model_dir)
    d = path if path.is_dir() else path.parent
    has_events = any((d / n).exists() for n in EVENT_FILES) or "test_events" in _read_meta(d)
    return not has_events and (d / "config.json").is_file()


def load_quantized_model_dir(
    model_dir: str | Path, *, trust_model: bool = False
) -> tuple[Any, Path]:
    """The QKeras model of a model directory (or model file) and its directory; a float model
    and a model file that holds code (unless ``trust_model``) are refused."""
    path = Path(model_dir)
    d = path if path.is_dir() else path.parent
    model_file = path if path.is_file() else _pick_model_file(d, _read_meta(d))
    model = load_qkeras_model(model_file, trust_model=trust_model)
    _require_quantized(model, model_file)
    return model, d


def build_from_model_dir(
    model_dir: str | Path,
    out_dir: str | Path,
    config: FirmwareConfig | None = None,
    events_file: str | Path | None = None,
    progress: bool = True,
    *,
    trust_model: bool = False,
) -> FirmwareResult:
    """:func:`build_firmware` on a trained model directory whose events come from
    ``events_file`` or an ``.npz`` in the directory (see :func:`load_firmware_inputs`); a
    model directory of ``poetml run`` uses its run's test split through
    :func:`poetml.pipeline.firmware.build_from_model_dir`.  Nothing is written outside
    ``out_dir``.  A model that is not quantized (no QKeras layer) is refused before any data is
    read, and so is a model file that holds code (a ``Lambda`` layer, an unknown custom object)
    unless ``trust_model``, which runs that code."""
    config = config or FirmwareConfig()
    if events_file is None and is_run_model_dir(model_dir):
        raise FirmwareError(
            f"{model_dir} is a model directory of 'poetml run' without events of its own: its "
            "events are its run's test split (poetml.pipeline.firmware.build_from_model_dir, "
            "'poetml firmware'), or pass events_file"
        )
    inputs = load_firmware_inputs(model_dir, events_file, trust_model=trust_model)
    _require_quantized(inputs.model, inputs.model_path)
    from .convert import is_autoencoder

    if is_autoencoder(inputs.model):
        kind, index, n_classes = "latent", 0, 1
    else:
        n_out = int(np.prod(inputs.model.outputs[0].shape[1:]))
        kind, index, n_classes = "logits", config.trigger_class % max(n_out, 1), n_out
    bkg, sigs = split_events(inputs, kind, index, n_classes)
    return build_firmware(
        inputs.model,
        out_dir,
        config,
        background=bkg,
        signals=sigs,
        feature_names=inputs.feature_names,
        progress=progress,
        model_dir=d
        if (d := inputs.model_path.parent).joinpath("preprocessing.json").is_file()
        else None,
        preprocessing=_model_dir_preprocessing(inputs.model_path.parent, inputs.feature_names),
    )


def _model_dir_preprocessing(
    d: Path, feature_names: tuple[str, ...] | None
) -> Preprocessing | None:
    """The ``preprocessing.json`` of a trained model directory (see :mod:`poetml.training`),
    for the standalone emulator's header; None when there is none or it does not describe
    these inputs (other feature names)."""
    from ..datasets.scalers import Preprocessing

    path = d / "preprocessing.json"
    if not path.is_file():
        return None
    try:
        pre = Preprocessing.from_json(path.read_text())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FirmwareError(f"cannot read {path}: {exc}") from exc
    names = pre.feature_names
    if feature_names is not None and names is not None and tuple(names) != tuple(feature_names):
        return None
    return pre
