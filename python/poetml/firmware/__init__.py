"""Firmware: trained QKeras models -> hls4ml trigger projects with bit-exact C simulation.

``import poetml.firmware`` is light: hls4ml, TensorFlow and QKeras load when a function
needs them.

Modules: :mod:`.config` (``FirmwareConfig``), :mod:`.score_model` (the network to deploy:
an autoencoder's anomaly score, a classifier's logit), :mod:`.convert` (hls4ml conversion,
supported layers), :mod:`.csim` (batched, parallel C simulation), :mod:`.trigger` (threshold
for a rate, ``trigger_decision`` HLS function), :mod:`.validate` (agreement report, layer trace),
:mod:`.cost` (resource estimate), :mod:`.emulate` (bit-exact C++ emulator of the firmware),
:mod:`.scoring` (events -> a model directory's inputs -> firmware-exact scores and trigger bit,
for ``poetml score --firmware`` and ``poetml batch score``), :mod:`.standalone`
(the emulator as a header and a C++ program for C++ users), :mod:`.synth` (vendor synthesis, report parsing),
:mod:`.build` (all steps: :func:`build_firmware`, :func:`build_from_model_dir`;
:func:`load_firmware_inputs` reads a model directory and its test events).  The
``firmware`` stage of ``poetml run`` is :mod:`poetml.pipeline.firmware` (this package knows
nothing of runs).
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import FirmwareConfig

_LAZY = {
    "build_firmware": "build",
    "build_from_model_dir": "build",
    "load_firmware_inputs": "build",
    "make_score_model": "score_model",
    "ScoreModel": "score_model",
    "convert": "convert",
    "check_supported": "convert",
    "FirmwareError": "convert",
    "UnsupportedLayerError": "convert",
    "CSim": "csim",
    "build_csim_library": "csim",
    "threshold_for_rate": "trigger",
    "write_trigger": "trigger",
    "FirmwareValidationError": "validate",
    "parse_csynth_xml": "synth",
    "run_synthesis": "synth",
    "SynthesisUnavailable": "synth",
    "estimate_cost": "cost",
    "emulate": "emulate",
    "export_network": "emulate",
    "EmulatorExport": "emulate",
    "FirmwareScorer": "scoring",
    "load_scorer": "scoring",
}

__all__ = [  # noqa: RUF022
    "FirmwareConfig",
    "build_firmware",
    "build_from_model_dir",
    "load_firmware_inputs",
    "make_score_model",
    "ScoreModel",
    "convert",
    "check_supported",
    "FirmwareError",
    "UnsupportedLayerError",
    "CSim",
    "build_csim_library",
    "threshold_for_rate",
    "write_trigger",
    "FirmwareValidationError",
    "parse_csynth_xml",
    "run_synthesis",
    "SynthesisUnavailable",
    "estimate_cost",
    "emulate",
    "export_network",
    "EmulatorExport",
    "FirmwareScorer",
    "load_scorer",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'poetml.firmware' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
