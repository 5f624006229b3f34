"""Bit-exact emulation of an hls4ml firmware network in the C++ core.

:func:`export_network` reads a converted hls4ml ``ModelGraph`` (its layers, the precisions
hls4ml gives every variable, and the weights exactly as its writer prints them and the C
simulation parses them) into an :class:`EmulatorExport`: integer weights and biases and
per-tensor fixed-point formats.  :func:`emulate` scores a batch of events with it in C++
(:func:`poetml._core.emulate`, the loop over events on threads with the GIL released); its
outputs equal hls4ml's C simulation bit for bit.  A layer, activation, precision or mode the
emulator cannot reproduce exactly is an :class:`~poetml.exceptions.UnsupportedLayerError`
naming it, never an approximation.

The NumPy twin of the integer arithmetic is :mod:`._emulate_reference`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import FirmwareError, UnsupportedLayerError

__all__ = [
    "EmulatorExport",
    "Format",
    "TriggerRule",
    "cpp_header",
    "emulate",
    "export_network",
    "format_of",
    "load_export",
    "save_export",
]

#: hls4ml rounding-mode names -> emulator names
QUANTIZATION = {
    "TRN": "trn",
    "RND": "rnd",
    "RND_CONV": "rnd_conv",
    "TRN_ZERO": "trn_zero",
    "RND_ZERO": "rnd_zero",
    "RND_MIN_INF": "rnd_min_inf",
    "RND_INF": "rnd_inf",
}
#: hls4ml saturation-mode names -> emulator names
OVERFLOW = {"WRAP": "wrap", "SAT": "sat", "SAT_ZERO": "sat_zero", "SAT_SYM": "sat_sym"}

#: (width, integer, signed, quantization, overflow): the tuple form the C++ core takes
Format = tuple[int, int, bool, str, str]


@dataclasses.dataclass(frozen=True)
class EmulatorExport:
    """A network ready for the emulator: ``tensors`` ``[(name, shape, format)]``, ``layers``
    (dicts of :class:`poetml._core.EmuNetwork`), the input and output tensor indices.
    Plain values (NumPy int64 arrays, tuples), so it can be pickled and sent to workers."""

    tensors: tuple[tuple[str, tuple[int, ...], Format], ...]
    layers: tuple[dict[str, Any], ...]
    input: int
    output: int
    name: str = "network"

    @property
    def n_inputs(self) -> int:
        return math.prod(self.tensors[self.input][1])

    @property
    def n_outputs(self) -> int:
        return math.prod(self.tensors[self.output][1])

    @property
    def output_format(self) -> Format:
        return self.tensors[self.output][2]

    def network(self) -> Any:
        """The compiled :class:`poetml._core.EmuNetwork` (checked by the C++ core)."""
        from .. import _core

        try:
            return _core.EmuNetwork(
                [(n, list(s), f) for n, s, f in self.tensors],
                [dict(layer) for layer in self.layers],
                self.input,
                self.output,
            )
        except ValueError as exc:
            raise UnsupportedLayerError(f"{self.name}: the emulator cannot run it: {exc}") from exc


def format_of(precision: Any, what: str) -> Format:
    """The emulator format of an hls4ml precision type (``FixedPrecisionType`` or
    ``IntegerPrecisionType``); anything else is an :class:`UnsupportedLayerError`."""
    cls = type(precision).__name__
    width = getattr(precision, "width", None)
    if width is None:
        raise UnsupportedLayerError(f"{what}: precision {precision} ({cls}) has no width")
    signed = bool(getattr(precision, "signed", True))
    if cls.endswith("FixedPrecisionType") or hasattr(precision, "rounding_mode"):
        if not hasattr(precision, "integer"):
            raise UnsupportedLayerError(f"{what}: precision {precision} ({cls}) is not fixed point")
        q = getattr(precision.rounding_mode, "name", str(precision.rounding_mode))
        o = getattr(precision.saturation_mode, "name", str(precision.saturation_mode))
        nbits = int(getattr(precision, "saturation_bits", 0) or 0)
        if q not in QUANTIZATION:
            raise UnsupportedLayerError(f"{what}: rounding mode {q} of {precision} is not emulated")
        if o not in OVERFLOW:
            raise UnsupportedLayerError(
                f"{what}: saturation mode {o} of {precision} is not emulated"
            )
        if nbits:
            raise UnsupportedLayerError(
                f"{what}: {precision} has {nbits} saturation bits (AP_WRAP with N > 0), not emulated"
            )
        return (int(width), int(precision.integer), signed, QUANTIZATION[q], OVERFLOW[o])
    if cls.endswith("IntegerPrecisionType"):
        return (int(width), int(width), signed, "trn", "wrap")
    raise UnsupportedLayerError(f"{what}: precision {precision} ({cls}) is not emulated")


def _weights(layer: Any, key: str) -> tuple[np.ndarray, Format] | None:
    """Raw integer weights of ``layer.weights[key]``: each value printed as hls4ml's writer
    prints it, parsed as a double (as the C simulation's loader does) and converted into the
    weight type as ap_fixed does."""
    from .. import _core

    var = layer.weights.get(key) if hasattr(layer, "weights") else None
    if var is None:
        return None
    fmt = format_of(var.type.precision, f"layer {layer.name!r} {key}")
    text = list(var)  # the strings written to firmware/weights/*.txt
    values = np.array([float(t) for t in text], np.float64)
    if not np.all(np.isfinite(values)):
        raise FirmwareError(f"layer {layer.name!r}: {key} holds non-finite values")
    return _core.emu_from_double(values, fmt), fmt


def _tensor_format(var: Any, layer: Any) -> Format:
    return format_of(var.type.precision, f"layer {layer.name!r} output {var.name!r}")


def _check_product(layer: Any, in_fmt: Format, w_fmt: Format, w_raw: np.ndarray) -> None:
    wp = layer.weights["weight"].type.precision
    cls = type(wp).__name__
    if "Xnor" in cls or "Exponent" in cls:
        raise UnsupportedLayerError(
            f"layer {layer.name!r} ({layer.class_name}): {cls} weights (binary / power-of-two "
            "products) are not emulated"
        )
    if cls.endswith("IntegerPrecisionType") and w_fmt[0] == 2 and w_fmt[2] and np.any(w_raw == -2):
        raise UnsupportedLayerError(
            f"layer {layer.name!r}: ternary weights hold -2, which hls4ml's weight_ternary "
            "product maps to +1; not emulated"
        )


def export_network(hls_model: Any) -> EmulatorExport:
    """Read a converted hls4ml ``ModelGraph`` into an :class:`EmulatorExport`.

    Every tensor's format is the precision hls4ml gave its variable; weights and biases are
    the integers the C simulation holds; accumulators are each layer's ``accum_t``.
    """
    inputs = hls_model.get_input_variables()
    outputs = hls_model.get_output_variables()
    if len(inputs) != 1 or len(outputs) != 1:
        raise UnsupportedLayerError(
            f"the emulator runs networks of one input and one output, not {len(inputs)} and "
            f"{len(outputs)}"
        )
    tensors: list[tuple[str, tuple[int, ...], Format]] = []
    index: dict[str, int] = {}
    layers: list[dict[str, Any]] = []

    def add_tensor(var: Any, layer: Any) -> int:
        # layers name their inputs by the output names of earlier layers
        key = layer.outputs[0] if getattr(layer, "outputs", None) else var.name
        index[key] = len(tensors)
        shape = tuple(int(d) for d in var.shape)
        tensors.append((key, shape, _tensor_format(var, layer)))
        return index[key]

    def tensor_of(name: str, layer: Any) -> int:
        if name not in index:
            raise UnsupportedLayerError(
                f"layer {layer.name!r} reads {name!r}, which no earlier layer writes"
            )
        return index[name]

    for layer in hls_model.get_layers():
        cls = layer.class_name
        kind = type(layer).__name__
        if cls in ("Input", "InputLayer") or kind.endswith("Input"):
            add_tensor(layer.get_output_variable(), layer)
            continue
        ins = [tensor_of(n, layer) for n in layer.inputs]
        if kind.endswith("Clone"):  # io_stream fan-out: each output is a copy of the input
            for name in layer.outputs:
                var = layer.get_output_variable(name)
                if _tensor_format(var, layer) != tensors[ins[0]][2]:
                    raise UnsupportedLayerError(
                        f"layer {layer.name!r} (Clone) changes the precision of its copies"
                    )
                index[name] = ins[0]
            continue
        out_var = layer.get_output_variable()
        entry: dict[str, Any] = {"name": layer.name, "inputs": ins}
        in_fmt = tensors[ins[0]][2]
        in_shape = tensors[ins[0]][1]
        base = kind.replace("Vitis", "").replace("Vivado", "")
        if base == "Dense" or base == "Conv2D":
            w = _weights(layer, "weight")
            b = _weights(layer, "bias")
            if w is None:
                raise UnsupportedLayerError(f"layer {layer.name!r} ({cls}) has no weights")
            w_raw, w_fmt = w
            _check_product(layer, in_fmt, w_fmt, w_raw)
            accum = format_of(layer.get_attr("accum_t").precision, f"layer {layer.name!r} accum_t")
            strategy = str(layer.get_attr("strategy", "latency")).lower()
            if strategy != "latency" and accum[4] != "wrap":
                raise UnsupportedLayerError(
                    f"layer {layer.name!r}: strategy {strategy!r} with a saturating accumulator "
                    "sums in an order the emulator does not reproduce"
                )
            n_out = int(out_var.shape[-1])
            if b is None:
                b_raw, b_fmt = np.zeros(n_out, np.int64), (1, 1, True, "trn", "wrap")
            else:
                b_raw, b_fmt = b
            entry.update(
                op="dense" if base == "Dense" else "conv2d",
                weights=np.ascontiguousarray(w_raw, np.int64),
                weight_frac=w_fmt[0] - w_fmt[1],
                weight_width=w_fmt[0],
                bias=np.ascontiguousarray(b_raw, np.int64),
                bias_frac=b_fmt[0] - b_fmt[1],
                accum=accum,
            )
            if base == "Conv2D":
                for attr in ("pad_top", "pad_bottom", "pad_left", "pad_right"):
                    if int(layer.get_attr(attr, 0) or 0):
                        raise UnsupportedLayerError(
                            f"layer {layer.name!r}: padded Conv2D ({attr}) is not emulated (io_stream "
                            "pads with a ZeroPadding2D layer, which is)"
                        )
                if (
                    int(layer.get_attr("dilation_height", 1) or 1) != 1
                    or int(layer.get_attr("dilation_width", 1) or 1) != 1
                ):
                    raise UnsupportedLayerError(
                        f"layer {layer.name!r}: dilated Conv2D is not emulated"
                    )
                entry.update(
                    kernel=[int(layer.get_attr("filt_height")), int(layer.get_attr("filt_width"))],
                    stride=[
                        int(layer.get_attr("stride_height")),
                        int(layer.get_attr("stride_width")),
                    ],
                )
        elif base in ("Activation", "ReLU", "ParametrizedActivation"):
            act = str(layer.get_attr("activation", "")).lower()
            if act == "relu":
                entry["op"] = "relu"
            elif act == "linear":
                entry["op"] = "linear"
            else:
                raise UnsupportedLayerError(
                    f"layer {layer.name!r} ({cls}): activation {act!r} is computed by hls4ml "
                    "with a lookup table or a function the emulator does not reproduce; it "
                    "emulates relu and linear (quantizer) activations"
                )
        elif base in ("Reshape", "Flatten"):
            entry["op"] = "linear"
        elif base == "Pooling2D":
            op = str(layer.get_attr("pool_op", ""))
            if op != "Max":
                raise UnsupportedLayerError(
                    f"layer {layer.name!r} ({cls}): {op} pooling is not emulated (max pooling is)"
                )
            for attr in ("pad_top", "pad_bottom", "pad_left", "pad_right"):
                if int(layer.get_attr(attr, 0) or 0):
                    raise UnsupportedLayerError(
                        f"layer {layer.name!r}: padded pooling ({attr}) is not emulated"
                    )
            entry.update(
                op="max_pool2d",
                kernel=[int(layer.get_attr("pool_height")), int(layer.get_attr("pool_width"))],
                stride=[int(layer.get_attr("stride_height")), int(layer.get_attr("stride_width"))],
            )
        elif base == "ZeroPadding2D":
            entry.update(
                op="zero_pad2d",
                pad=[int(layer.get_attr("pad_top")), int(layer.get_attr("pad_left"))],
            )
        elif base == "BatchNormalization":
            s = _weights(layer, "scale")
            b = _weights(layer, "bias")
            if s is None or b is None:
                raise UnsupportedLayerError(f"layer {layer.name!r} ({cls}) has no scale or bias")
            entry.update(
                op="batchnorm",
                weights=np.ascontiguousarray(s[0], np.int64),
                weight_frac=s[1][0] - s[1][1],
                weight_width=s[1][0],
                bias=np.ascontiguousarray(b[0], np.int64),
                bias_frac=b[1][0] - b[1][1],
            )
        elif base == "Resize":
            if str(layer.get_attr("algorithm", "nearest")) != "nearest":
                raise UnsupportedLayerError(
                    f"layer {layer.name!r}: {layer.get_attr('algorithm')} resizing is not emulated"
                )
            entry["op"] = "upsampling2d"
        elif base == "Merge":
            op = str(layer.get_attr("op", "")).lower()
            if op not in ("add", "subtract", "multiply"):
                raise UnsupportedLayerError(
                    f"layer {layer.name!r}: merge operation {op!r} is not emulated (add, "
                    "subtract, multiply are)"
                )
            entry["op"] = op
        elif base == "Concatenate":
            axis = int(layer.get_attr("axis", -1))
            rank = len(in_shape)
            if axis not in (-1, rank - 1, rank):
                raise UnsupportedLayerError(
                    f"layer {layer.name!r}: concatenation along axis {axis} is not emulated "
                    "(the last axis is)"
                )
            entry["op"] = "concatenate"
        else:
            raise UnsupportedLayerError(
                f"layer {layer.name!r} ({cls}, {kind}) is not emulated; the emulator runs Dense, "
                "Conv2D, ReLU and linear activations, MaxPooling2D, BatchNormalization, "
                "UpSampling2D, ZeroPadding2D, Reshape/Flatten, Add/Subtract/Multiply, "
                "Concatenate and io_stream Clone"
            )
        entry["output"] = add_tensor(out_var, layer)
        layers.append(entry)
    in_name, out_name = hls_model.inputs[0], hls_model.outputs[0]
    if in_name not in index or out_name not in index:
        raise UnsupportedLayerError("the network's input or output variable is not a layer's")
    export = EmulatorExport(
        tuple(tensors),
        tuple(layers),
        index[in_name],
        index[out_name],
        str(hls_model.config.get_project_name()),
    )
    export.network()  # checked by the C++ core now, not at the first call
    return export


def emulate(
    model: Any, x: np.ndarray, *, n_threads: int = 0, raw: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Score the events ``x`` (n, ...) bit-exactly as the firmware does.

    ``model``: an hls4ml ``ModelGraph``, an :class:`EmulatorExport` or a compiled
    :class:`poetml._core.EmuNetwork`.  Returns float64 outputs ``(n, n_outputs)`` (the
    fixed-point values, exact), or with ``raw`` also their raw int64 integers.  ``n_threads``:
    0 uses all cores.
    """
    from .. import _core

    if isinstance(model, _core.EmuNetwork):
        net = model
    elif isinstance(model, EmulatorExport):
        net = model.network()
    else:
        net = export_network(model).network()
    x = np.asarray(x)
    flat = np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float64)
    if flat.shape[1] != net.n_inputs:
        raise FirmwareError(
            f"the emulated network takes {net.n_inputs} input values per event, got "
            f"{flat.shape[1]} (input shape {x.shape})"
        )
    try:
        return _core.emulate(net, flat, n_threads=n_threads, raw=raw)
    except ValueError as exc:
        raise FirmwareError(f"emulation failed: {exc}") from exc


_CPP_Q = {q: q for q in QUANTIZATION.values()}
_CPP_O = {o: o for o in OVERFLOW.values()}


def _cpp_format(f: Format) -> str:
    w, i, signed, q, o = f
    return (
        f"poetml::emu::Format{{{w}, {i}, {'true' if signed else 'false'}, "
        f"poetml::emu::Quantization::{_CPP_Q[q]}, poetml::emu::Overflow::{_CPP_O[o]}}}"
    )


def _cpp_ints(values: Any) -> str:
    return "{" + ", ".join(str(int(v)) for v in np.ravel(values)) + "}"


@dataclasses.dataclass(frozen=True)
class TriggerRule:
    """The firmware's trigger decision on the network outputs ``y``: with
    ``denominator_index`` None, fire when ``y[score_index] > threshold``; else the score is the
    ratio ``y[score_index] / y[denominator_index]`` (0 when the denominator is 0) and the
    firmware fires without dividing, when ``y[score_index] > threshold x
    y[denominator_index]`` (see :class:`poetml.firmware.score_model.ScoreModel`).  Both are
    computed in float64, as :meth:`~poetml.firmware.score_model.ScoreModel.fires` does (the
    firmware build checks that this equals the C simulation of ``trigger_decision``)."""

    threshold: float
    score_index: int = 0
    denominator_index: int | None = None
    description: str = ""

    def scores(self, y: np.ndarray) -> np.ndarray:
        """The trigger score of each event from the outputs ``y`` (n, n_outputs)."""
        y = np.asarray(y, np.float64).reshape(len(y), -1)
        num = y[:, self.score_index]
        if self.denominator_index is None:
            return num
        den = y[:, self.denominator_index]
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    def fires(self, y: np.ndarray) -> np.ndarray:
        """The trigger bit of each event (no division, as the firmware)."""
        y = np.asarray(y, np.float64).reshape(len(y), -1)
        num = y[:, self.score_index]
        if self.denominator_index is None:
            return num > self.threshold
        return num > self.threshold * y[:, self.denominator_index]


def _cpp_double(v: float) -> str:
    """An exact C++ literal of a double (hexadecimal floating point, C++17)."""
    v = float(v)
    if not math.isfinite(v):
        raise FirmwareError(f"{v!r} has no exact C++ literal")
    return v.hex()


def _cpp_float(v: float) -> str:
    """An exact C++ literal of ``v`` rounded to float32, as NumPy rounds it."""
    return _cpp_double(float(np.float32(v))) + "f"


def _cpp_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _preprocessing_lines(export: EmulatorExport, preprocessing: Any) -> list[str]:
    if preprocessing is None:
        return [
            "/// No preprocessing is known for this network: preprocess() only widens the",
            "/// network inputs (already scaled and quantized) to double.",
            "constexpr bool kHasPreprocessing = false;",
            "",
            "inline void preprocess(const float* in, double* x) {",
            "    for (long i = 0; i < kInputs; ++i) x[i] = static_cast<double>(in[i]);",
            "}",
        ]
    scaler = preprocessing.scaler
    n_scale = len(scaler.scale)
    if n_scale == 0 or export.n_inputs % n_scale:
        raise FirmwareError(
            f"the preprocessing scales {n_scale} columns or channels, which do not tile the "
            f"network's {export.n_inputs} inputs"
        )
    bits, integer = int(preprocessing.input_bits), int(preprocessing.input_integer)
    frac = bits - integer - 1
    names = preprocessing.feature_names if scaler.kind == "features" else scaler.names
    any_log = any(scaler.log1p)
    lines = [
        "/// Preprocessing of the raw inputs, as poetml's Preprocessing.apply computes it (scaler",
        "/// fitted on the training split, then the input quantizer):",
        "///   v = float(raw); if (kLog1p[c]) v = log1pf(max(v, 0)); v = v / kScale[c]   (float32,",
        "///   c = input index modulo kScaled: a feature column, or an image channel);",
        f"///   x = round-half-even(v / 2^-{frac}) x 2^-{frac}, saturated to",
        f"///   [-2^{integer}, 2^{integer} - 2^-{frac}]:",
        f"///   quantized_bits({bits}, {integer}), i.e. ap_fixed<{bits},{integer + 1}>.",
    ]
    if any_log:
        lines += [
            "/// (log1p columns: the C library's log1pf may differ from NumPy's in the last bit of",
            "/// a float, which can move a value across a quantization step; the other columns",
            "/// are exact.)",
        ]
    lines += [
        "constexpr bool kHasPreprocessing = true;",
        f"constexpr long kScaled = {n_scale};",
        f"inline const float kScale[kScaled] = {{{', '.join(_cpp_float(v) for v in scaler.scale)}}};",
        "inline const bool kLog1p[kScaled] = {"
        + ", ".join("true" if b else "false" for b in scaler.log1p)
        + "};",
        f"constexpr int kInputBits = {bits};",
        f"constexpr int kInputInteger = {integer};",
    ]
    if names is not None and len(names) == n_scale:
        what = "feature" if scaler.kind == "features" else "channel"
        lines += [
            f"/// The {what} names of the columns above, in order.",
            f"inline const char* const kScaledNames[kScaled] = {{{', '.join(_cpp_string(str(n)) for n in names)}}};",
        ]
    lines += [
        "",
        "/// Raw inputs of one event (kInputs floats, C order) -> network inputs (doubles, exact).",
        "/// Throws std::invalid_argument on a value that is not finite.",
        "inline void preprocess(const float* in, double* x) {",
        f"    const double step = {_cpp_double(2.0**-frac)}, lo = {_cpp_double(-(2.0**integer))},",
        f"                 hi = {_cpp_double(2.0**integer - 2.0**-frac)};",
        "    for (long i = 0; i < kInputs; ++i) {",
        "        float v = in[i];",
        "        if (!std::isfinite(v))",
        '            throw std::invalid_argument("input " + std::to_string(i) + " is not finite");',
        "        const long c = i % kScaled;",
        "        if (kLog1p[c]) v = std::log1p(std::max(v, 0.0f));",
        "        v = v / kScale[c];",
        "        double q = std::nearbyint(static_cast<double>(v) / step) * step;  // half to even",
        "        q = std::min(std::max(q, lo), hi);",
        "        x[i] = static_cast<double>(static_cast<float>(q));",
        "    }",
        "}",
    ]
    return lines


def _trigger_lines(trigger: TriggerRule, export: EmulatorExport) -> list[str]:
    for what, index in (("score", trigger.score_index), ("denominator", trigger.denominator_index)):
        if index is not None and not 0 <= index < export.n_outputs:
            raise FirmwareError(
                f"trigger {what} index {index} is not an output of the network "
                f"({export.n_outputs} outputs)"
            )
    den = -1 if trigger.denominator_index is None else int(trigger.denominator_index)
    if den < 0:
        lines = [
            "/// The trigger decision, as the firmware's trigger_decision() (trigger.h) takes it:",
            "/// fire when the score output y[kScoreIndex] exceeds kThreshold.",
        ]
    else:
        lines = [
            "/// The trigger decision, as the firmware's trigger_decision() (trigger.h) takes it:",
            "/// the score is y[kScoreIndex] / y[kDenominatorIndex] (0 when the denominator is 0),",
            "/// and the firmware fires without dividing, when",
            "/// y[kScoreIndex] > kThreshold x y[kDenominatorIndex] (computed here in double, as",
            "/// poetml's Python path does; the firmware build checks it equals trigger_decision()).",
        ]
    if trigger.description:
        lines += [f"/// {line}" for line in trigger.description.splitlines()]
    lines += [
        f"constexpr int kScoreIndex = {int(trigger.score_index)};",
        f"constexpr int kDenominatorIndex = {den};  // -1: the score is one output",
        f"constexpr double kThreshold = {_cpp_double(trigger.threshold)};  // {trigger.threshold!r}",
        "",
        "/// The trigger score of one event from its kOutputs network outputs `y`.",
        "inline double score(const double* y) {",
        "    if constexpr (kDenominatorIndex < 0) {",
        "        return y[kScoreIndex];",
        "    } else {",
        "        const double den = y[kDenominatorIndex];",
        "        return den > 0 ? y[kScoreIndex] / den : 0.0;",
        "    }",
        "}",
        "",
        "/// The trigger bit of one event from its kOutputs network outputs `y`.",
        "inline bool fires(const double* y) {",
        "    if constexpr (kDenominatorIndex < 0) {",
        "        return y[kScoreIndex] > kThreshold;",
        "    } else {",
        "        return y[kScoreIndex] > kThreshold * y[kDenominatorIndex];",
        "    }",
        "}",
    ]
    return lines


def cpp_header(
    export: EmulatorExport,
    namespace: str = "poetml_network",
    *,
    preprocessing: Any = None,
    trigger: TriggerRule | None = None,
) -> str:
    """A C++17 header defining ``<namespace>::network()``: the exported network (integer
    weights, formats) as a ``poetml::emu::Network`` for ``poetml/emulate.hpp``, so C++
    programs (ROOT macros, CMSSW modules) score events exactly as the firmware does.

    Also ``preprocess()`` (raw inputs -> network inputs): with ``preprocessing`` (a
    :class:`poetml.datasets.scalers.Preprocessing`) the scaler's constants and the input
    quantizer, computed as :meth:`~poetml.datasets.scalers.Preprocessing.apply` does (bit
    for bit, except that ``log1p`` columns use the C library's ``log1pf``); without it a plain
    widening of inputs that are already the network's.  With ``trigger`` also
    ``kThreshold``, ``score()`` and ``fires()``: the trigger rule of the firmware."""
    if not namespace.isidentifier():
        raise FirmwareError(f"namespace {namespace!r} is not a C++ identifier")
    lines = [
        f"// Bit-exact emulator of the hls4ml network {export.name!r}, written by",
        "// poetml.firmware.emulate.cpp_header: integer weights and fixed-point formats as the",
        "// C simulation holds them"
        + (", the preprocessing constants" if preprocessing is not None else "")
        + (" and the trigger threshold" if trigger is not None else "")
        + ".",
        "// Needs poetml's C++ core: -std=c++17 -pthread -I<poetml.get_include()>.",
        "#pragma once",
        "",
        "#include <algorithm>",
        "#include <cmath>",
        "#include <stdexcept>",
        "#include <string>",
        "",
        '#include "poetml/emulate.hpp"',
        "",
        f"namespace {namespace} {{",
        "",
        f"/// Values per event the network reads ({export.n_inputs}) and writes ({export.n_outputs}).",
        f"constexpr long kInputs = {export.n_inputs};",
        f"constexpr long kOutputs = {export.n_outputs};",
        "",
        *_preprocessing_lines(export, preprocessing),
        "",
    ]
    if trigger is not None:
        lines += [*_trigger_lines(trigger, export), ""]
    lines += [
        "/// The network, checked (prepare()) and ready for poetml::emu::emulate().",
        "inline poetml::emu::Network network() {",
        "    poetml::emu::Network net;",
    ]
    for name, shape, fmt in export.tensors:
        lines.append(
            f'    net.tensors.push_back({{"{name}", {_cpp_ints(shape)}, {_cpp_format(fmt)}}});'
        )
    for layer in export.layers:
        lines += ["    {", "        poetml::emu::Layer l;", f'        l.name = "{layer["name"]}";']
        lines.append(f'        l.op = poetml::emu::op_from_string("{layer["op"]}");')
        lines.append(f"        l.inputs = {_cpp_ints(layer['inputs'])};")
        lines.append(f"        l.output = {int(layer['output'])};")
        for key in ("weights", "bias", "kernel", "stride", "pad"):
            if key in layer and layer[key] is not None:
                lines.append(f"        l.{key} = {_cpp_ints(layer[key])};")
        for key in ("weight_frac", "weight_width", "bias_frac"):
            if key in layer:
                lines.append(f"        l.{key} = {int(layer[key])};")
        if "accum" in layer:
            lines.append(f"        l.accum = {_cpp_format(layer['accum'])};")
        lines += ["        net.layers.push_back(std::move(l));", "    }"]
    lines += [
        f"    net.input = {export.input};",
        f"    net.output = {export.output};",
        "    net.prepare();",
        "    return net;",
        "}",
        "",
        f"}}  // namespace {namespace}",
        "",
    ]
    return "\n".join(lines)


#: version of the ``emulator.npz`` layout written by :func:`save_export`
EXPORT_FILE_VERSION = 1


def save_export(
    export: EmulatorExport, path: str | Path, meta: dict[str, Any] | None = None
) -> Path:
    """Write ``export`` (and JSON-able ``meta``: the trigger rule, provenance) to ``path``, an
    ``.npz`` of integer arrays and one JSON document; read it back with :func:`load_export`.
    No pickles: loading it runs no code.  Written to a temporary name and renamed."""
    from .._atomic import atomic_path, to_jsonable

    arrays: dict[str, np.ndarray] = {}

    def plain(value: Any, key: str) -> Any:
        if isinstance(value, np.ndarray):
            arrays[key] = np.ascontiguousarray(value)
            return {"__array__": key}
        if isinstance(value, (list, tuple)):
            return [plain(v, f"{key}.{i}") for i, v in enumerate(value)]
        if isinstance(value, np.generic):
            return value.item()
        return value

    doc = {
        "version": EXPORT_FILE_VERSION,
        "name": export.name,
        "input": export.input,
        "output": export.output,
        "tensors": [[n, list(s), list(f)] for n, s, f in export.tensors],
        "layers": [
            {k: plain(v, f"layer{i}.{k}") for k, v in layer.items()}
            for i, layer in enumerate(export.layers)
        ],
        "meta": to_jsonable(meta or {}),
    }
    arrays["__doc__"] = np.frombuffer(json.dumps(doc).encode(), np.uint8)
    path = Path(path)
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def load_export(
    path: str | Path, data: bytes | None = None
) -> tuple[EmulatorExport, dict[str, Any]]:
    """The :class:`EmulatorExport` and the ``meta`` of a file :func:`save_export` wrote
    (arrays only, ``allow_pickle=False``); a file that is not one is a
    :class:`~poetml.exceptions.FirmwareError` naming it.  ``data``: the file's bytes, when
    the caller has read them already (``path`` then only names it in messages)."""
    import io

    path = Path(path)
    try:
        with np.load(path if data is None else io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        doc = json.loads(arrays.pop("__doc__").tobytes().decode())
        if doc.get("version") != EXPORT_FILE_VERSION:
            raise ValueError(f"layout version {doc.get('version')!r}, not {EXPORT_FILE_VERSION}")

        def restore(value: Any, tuples: bool = False) -> Any:
            if isinstance(value, dict) and set(value) == {"__array__"}:
                return arrays[value["__array__"]]
            if isinstance(value, list):
                items = [restore(v) for v in value]
                return tuple(items) if tuples else items
            return value

        layers = []
        for layer in doc["layers"]:
            entry = {k: restore(v) for k, v in layer.items()}
            if "accum" in entry:
                entry["accum"] = tuple(entry["accum"])
            layers.append(entry)
        export = EmulatorExport(
            tuple((str(n), tuple(int(d) for d in s), tuple(f)) for n, s, f in doc["tensors"]),
            tuple(layers),
            int(doc["input"]),
            int(doc["output"]),
            str(doc["name"]),
        )
        export.network()  # checked by the C++ core
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise FirmwareError(f"{path}: not a poetml emulator export ({exc})") from exc
    return export, dict(doc.get("meta") or {})
