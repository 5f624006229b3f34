// Bindings: the bit-exact firmware emulator (EmuNetwork, emulate, emu_cast, emu_from_double).
#include "bind.hpp"
#include "poetml/emulate.hpp"

namespace poetml_py {

namespace {

namespace emu = poetml::emu;

using F64 = py::array_t<double, py::array::c_style>;

emu::Quantization quantization_from(const std::string& s) {
    static const std::pair<const char*, emu::Quantization> names[] = {
        {"trn", emu::Quantization::trn},           {"rnd", emu::Quantization::rnd},
        {"rnd_conv", emu::Quantization::rnd_conv}, {"trn_zero", emu::Quantization::trn_zero},
        {"rnd_zero", emu::Quantization::rnd_zero}, {"rnd_min_inf", emu::Quantization::rnd_min_inf},
        {"rnd_inf", emu::Quantization::rnd_inf}};
    for (const auto& [n, q] : names)
        if (s == n) return q;
    throw std::invalid_argument("quantization mode '" + s +
                                "' is not supported; valid: trn, rnd, rnd_conv, trn_zero, rnd_zero, rnd_min_inf, "
                                "rnd_inf");
}

emu::Overflow overflow_from(const std::string& s) {
    static const std::pair<const char*, emu::Overflow> names[] = {{"wrap", emu::Overflow::wrap},
                                                                  {"sat", emu::Overflow::sat},
                                                                  {"sat_zero", emu::Overflow::sat_zero},
                                                                  {"sat_sym", emu::Overflow::sat_sym}};
    for (const auto& [n, o] : names)
        if (s == n) return o;
    throw std::invalid_argument("overflow mode '" + s + "' is not supported; valid: wrap, sat, sat_zero, sat_sym");
}

// (width, integer, signed, quantization, overflow)
using FormatTuple = std::tuple<int, int, bool, std::string, std::string>;

emu::Format format_from(const FormatTuple& t, const std::string& what) {
    emu::Format f;
    f.width = std::get<0>(t);
    f.integer = std::get<1>(t);
    f.is_signed = std::get<2>(t);
    f.quantization = quantization_from(std::get<3>(t));
    f.overflow = overflow_from(std::get<4>(t));
    emu::validate(f, what);
    return f;
}

template <class T>
T get_or(const py::dict& d, const char* key, T dflt) {
    return d.contains(key) ? d[key].cast<T>() : dflt;
}

std::vector<std::int64_t> int_array(const py::dict& d, const char* key, const std::string& layer) {
    if (!d.contains(key) || d[key].is_none()) return {};
    py::object obj = d[key];
    if (!py::isinstance<py::array_t<std::int64_t>>(obj))
        throw py::type_error("layer '" + layer + "': '" + key + "' must be a numpy int64 array");
    auto a = obj.cast<py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>>();
    return std::vector<std::int64_t>(a.data(), a.data() + a.size());
}

/// The Python-side network: built once from plain values, checked (prepare) on construction.
struct PyNetwork {
    emu::Network net;
    std::vector<std::string> layer_names;
};

PyNetwork make_network(const std::vector<std::tuple<std::string, std::vector<std::int64_t>, FormatTuple>>& tensors,
                       const std::vector<py::dict>& layers, int input, int output) {
    PyNetwork p;
    for (const auto& [name, shape, fmt] : tensors) {
        emu::Tensor t;
        t.name = name;
        t.shape = shape;
        t.format = format_from(fmt, "tensor '" + name + "'");
        p.net.tensors.push_back(std::move(t));
    }
    static const char* known[] = {"name", "op", "inputs", "output", "weights", "weight_frac", "weight_width",
                                  "bias", "bias_frac", "accum", "kernel", "stride", "pad"};
    for (const auto& d : layers) {
        emu::Layer l;
        l.name = get_or<std::string>(d, "name", "layer " + std::to_string(p.net.layers.size()));
        for (auto item : d) {
            const auto key = item.first.cast<std::string>();
            if (std::find(std::begin(known), std::end(known), key) == std::end(known))
                throw std::invalid_argument("layer '" + l.name + "': unknown key '" + key + "'");
        }
        if (!d.contains("op")) throw std::invalid_argument("layer '" + l.name + "' has no 'op'");
        try {
            l.op = emu::op_from_string(d["op"].cast<std::string>());
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument("layer '" + l.name + "': " + e.what());
        }
        l.inputs = get_or<std::vector<int>>(d, "inputs", {});
        l.output = get_or<int>(d, "output", -1);
        l.weights = int_array(d, "weights", l.name);
        l.weight_frac = get_or<int>(d, "weight_frac", 0);
        l.weight_width = get_or<int>(d, "weight_width", 0);
        l.bias = int_array(d, "bias", l.name);
        l.bias_frac = get_or<int>(d, "bias_frac", 0);
        if (d.contains("accum") && !d["accum"].is_none())
            l.accum = format_from(d["accum"].cast<FormatTuple>(), "layer '" + l.name + "' accumulator");
        l.kernel = get_or<std::vector<int>>(d, "kernel", {});
        l.stride = get_or<std::vector<int>>(d, "stride", {});
        l.pad = get_or<std::vector<int>>(d, "pad", {});
        p.layer_names.push_back(l.name);
        p.net.layers.push_back(std::move(l));
    }
    p.net.input = input;
    p.net.output = output;
    p.net.prepare();
    return p;
}

}  // namespace

void bind_emulate(py::module_& m) {
    py::class_<PyNetwork>(m, "EmuNetwork",
                          "A network for the bit-exact emulator (see cpp/include/poetml/emulate.hpp), checked on "
                          "construction.")
        .def(py::init(&make_network), py::arg("tensors"), py::arg("layers"), py::arg("input"), py::arg("output"),
             R"doc(tensors: [(name, shape, (width, integer, signed, quantization, overflow))];
layers: [dict(name, op, inputs, output, weights, weight_frac, weight_width, bias, bias_frac,
accum, kernel, stride, pad)] in execution order (int64 numpy arrays for weights/bias);
input/output: tensor indices.  ValueError naming the layer for anything it cannot emulate.)doc")
        .def_property_readonly("n_inputs",
                               [](const PyNetwork& p) {
                                   return p.net.tensors[static_cast<std::size_t>(p.net.input)].size();
                               })
        .def_property_readonly("n_outputs",
                               [](const PyNetwork& p) {
                                   return p.net.tensors[static_cast<std::size_t>(p.net.output)].size();
                               })
        .def_property_readonly("output_frac",
                               [](const PyNetwork& p) {
                                   return p.net.tensors[static_cast<std::size_t>(p.net.output)].format.frac();
                               })
        .def_property_readonly("layer_names", [](const PyNetwork& p) { return p.layer_names; });

    m.def(
        "emulate",
        [](PyNetwork& p, const F64& x, int n_threads, bool raw) -> py::object {
            if (n_threads < 0)
                throw std::invalid_argument("n_threads must be >= 0 (0: all cores), got " + std::to_string(n_threads));
            const auto& net = p.net;
            const std::int64_t n_in = net.tensors[static_cast<std::size_t>(net.input)].size();
            const std::int64_t n_out = net.tensors[static_cast<std::size_t>(net.output)].size();
            if (x.ndim() != 2 || x.shape(1) != n_in)
                throw std::invalid_argument("emulate: x must have shape (n_events, " + std::to_string(n_in) +
                                            "), got ndim " + std::to_string(x.ndim()) +
                                            (x.ndim() >= 2 ? ", width " + std::to_string(x.shape(1)) : std::string()));
            const std::int64_t n = x.shape(0);
            const double* xp = x.data();
            emu::check_inputs(xp, n, n_in);  // GIL held: errors name the event
            py::array_t<double> y({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(n_out)});
            py::array_t<std::int64_t> r;
            std::int64_t* rp = nullptr;
            if (raw) {
                r = py::array_t<std::int64_t>({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(n_out)});
                rp = r.mutable_data();
            }
            double* yp = y.mutable_data();
            {
                // Safe without the GIL: the kernel reads the validated input buffer (kept
                // alive by `x`) and the network (kept alive by `p`, read-only once prepared)
                // and writes only the fresh output arrays.
                py::gil_scoped_release release;
                emu::emulate(p.net, xp, n, yp, rp, n_threads);
            }
            if (raw) return py::make_tuple(y, r);
            return std::move(y);
        },
        py::arg("network"), py::arg("x").noconvert(), py::kw_only(), py::arg("n_threads") = 0,
        py::arg("raw") = false,
        R"doc(Score events bit-exactly: x float64 C-contiguous (n_events, n_inputs) -> outputs float64
(n_events, n_outputs) (exact fixed-point values), or (outputs, raw int64) with raw=True.)doc");

    m.def(
        "emu_cast",
        [](const py::array_t<std::int64_t, py::array::c_style>& v, int frac_from, const FormatTuple& to) {
            const emu::Format f = format_from(to, "emu_cast target");
            py::array_t<std::int64_t> out(v.size());
            const std::int64_t* src = v.data();
            std::int64_t* dst = out.mutable_data();
            for (py::ssize_t i = 0; i < v.size(); ++i) dst[i] = emu::cast(src[i], frac_from, f);
            return out;
        },
        py::arg("raw").noconvert(), py::arg("frac_from"), py::arg("to"),
        "Cast raw int64 values with frac_from fraction bits into the format `to` "
        "(width, integer, signed, quantization, overflow) as ap_fixed does; returns raw int64.");

    m.def(
        "emu_from_double",
        [](const F64& x, const FormatTuple& to) {
            const emu::Format f = format_from(to, "emu_from_double target");
            emu::check_inputs(x.data(), 1, x.size());
            py::array_t<std::int64_t> out(x.size());
            const double* src = x.data();
            std::int64_t* dst = out.mutable_data();
            for (py::ssize_t i = 0; i < x.size(); ++i) dst[i] = emu::from_double(src[i], f);
            return out;
        },
        py::arg("x").noconvert(), py::arg("to"),
        "Convert finite doubles into raw int64 values of the format `to` as ap_fixed's constructor does.");
}

}  // namespace poetml_py
