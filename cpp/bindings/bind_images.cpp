// Bindings: rasterize, rasterize_sparse, densify.
#include <cstring>

#include "bind.hpp"
#include "poetml/rasterize.hpp"

namespace poetml_py {

namespace {

using I32 = py::array_t<std::int32_t, py::array::c_style>;

poetml::ImageSpec make_spec(std::int64_t n_eta, std::int64_t n_phi, double eta_min, double eta_max,
                            const std::string& mode, double sigma, double glyph_radius0,
                            double glyph_radius_per_log, double glyph_width, double glyph_width_positive,
                            bool log1p, bool normalize, int saturate_bits, double lsb_gev) {
    poetml::ImageSpec spec;
    spec.n_eta = n_eta;
    spec.n_phi = n_phi;
    spec.eta_min = eta_min;
    spec.eta_max = eta_max;
    if (mode == "histogram") spec.mode = poetml::ImageMode::histogram;
    else if (mode == "gaussian") spec.mode = poetml::ImageMode::gaussian;
    else if (mode == "glyph") spec.mode = poetml::ImageMode::glyph;
    else throw std::invalid_argument("unknown mode '" + mode + "'; valid: histogram, gaussian, glyph");
    spec.sigma = sigma;
    spec.glyph_radius0 = glyph_radius0;
    spec.glyph_radius_per_log = glyph_radius_per_log;
    spec.glyph_width = glyph_width;
    spec.glyph_width_positive = glyph_width_positive;
    spec.log1p = log1p;
    spec.normalize = normalize;
    spec.saturate_bits = saturate_bits;
    spec.lsb_gev = lsb_gev;
    poetml::validate(spec);
    return spec;
}

/// The channels of a rasterize call, validated with the GIL held (offsets, finiteness,
/// event counts), before any output is allocated: a wrong n_events may ask for any size.
std::vector<poetml::Channel> make_channels(
    const std::vector<std::pair<const PyColumns*, poetml::Cuts>>& channels, std::int64_t n_events,
    int n_threads, const char* func) {
    if (n_threads < 0)
        throw std::invalid_argument("n_threads must be >= 0 (0: all cores), got " + std::to_string(n_threads));
    if (n_events < 0) throw std::invalid_argument("n_events must be >= 0, got " + std::to_string(n_events));
    std::vector<poetml::Channel> chans;
    chans.reserve(channels.size());
    for (const auto& [cols, cuts] : channels) {
        if (!cols) throw py::type_error(std::string(func) + ": channel columns must not be None");
        poetml::Channel ch{cols->objects(), cuts};
        poetml::validate(ch.objects);
        if (ch.objects.n_events != n_events)
            throw std::invalid_argument("collection '" + ch.objects.name + "' has " +
                                        std::to_string(ch.objects.n_events) + " events, expected " +
                                        std::to_string(n_events));
        chans.push_back(std::move(ch));
    }
    return chans;
}

template <class T>
py::array_t<T> to_array(const std::vector<T>& v) {
    py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
    if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
    return a;
}

}  // namespace

void bind_images(py::module_& m) {
    m.def(
        "rasterize",
        [](const std::vector<std::pair<const PyColumns*, poetml::Cuts>>& channels, std::int64_t n_events,
           std::int64_t n_eta, std::int64_t n_phi, double eta_min, double eta_max, const std::string& mode,
           double sigma, double glyph_radius0, double glyph_radius_per_log, double glyph_width,
           double glyph_width_positive, bool log1p, bool normalize, int saturate_bits, double lsb_gev,
           int n_threads, py::object out_arg) {
            const poetml::ImageSpec spec =
                make_spec(n_eta, n_phi, eta_min, eta_max, mode, sigma, glyph_radius0, glyph_radius_per_log,
                          glyph_width, glyph_width_positive, log1p, normalize, saturate_bits, lsb_gev);
            const std::vector<poetml::Channel> chans = make_channels(channels, n_events, n_threads, "rasterize");
            const auto n_ch = static_cast<py::ssize_t>(chans.size());
            bool zeroed = false;
            auto images = output_f32({static_cast<py::ssize_t>(n_events), static_cast<py::ssize_t>(n_eta),
                                     static_cast<py::ssize_t>(n_phi), n_ch},
                                     out_arg, "rasterize", zeroed);
            py::array_t<std::int64_t> dropped(n_ch);
            float* out = images.mutable_data();
            std::int64_t* drop = dropped.mutable_data();
            {
                // Safe without the GIL: the kernel only reads the validated input buffers
                // (kept alive by `channels`) and writes the two output arrays (`out`, when
                // given, is kept alive by the caller's reference for the whole call).
                py::gil_scoped_release release;
                poetml::rasterize(chans, n_events, spec, out, drop, n_threads, zeroed);
            }
            return py::make_tuple(images, dropped);
        },
        py::arg("channels"), py::arg("n_events"), py::kw_only(), py::arg("n_eta"), py::arg("n_phi"),
        py::arg("eta_min"), py::arg("eta_max"), py::arg("mode") = "histogram", py::arg("sigma") = 1.0,
        py::arg("glyph_radius0") = 0.5, py::arg("glyph_radius_per_log") = 0.5, py::arg("glyph_width") = 0.5,
        py::arg("glyph_width_positive") = 1.0, py::arg("log1p") = false, py::arg("normalize") = false,
        py::arg("saturate_bits") = 0, py::arg("lsb_gev") = 0.5, py::arg("n_threads") = 0, py::arg("out") = py::none(),
        R"doc(Rasterize a batch: channels is a list of (Columns, Cuts), one per image channel.
Returns (images float32 (n_events, n_eta, n_phi, n_channels), dropped int64 (n_channels,)).
out: None (a fresh array) or a C-contiguous float32 array of exactly that shape, which is
zero-filled, written and returned as images.
See cpp/include/poetml/rasterize.hpp for the exact definitions.)doc");

    m.def(
        "rasterize_sparse",
        [](const std::vector<std::pair<const PyColumns*, poetml::Cuts>>& channels, std::int64_t n_events,
           std::int64_t n_eta, std::int64_t n_phi, double eta_min, double eta_max, const std::string& mode,
           double sigma, double glyph_radius0, double glyph_radius_per_log, double glyph_width,
           double glyph_width_positive, bool log1p, bool normalize, int saturate_bits, double lsb_gev,
           int n_threads) {
            const poetml::ImageSpec spec =
                make_spec(n_eta, n_phi, eta_min, eta_max, mode, sigma, glyph_radius0, glyph_radius_per_log,
                          glyph_width, glyph_width_positive, log1p, normalize, saturate_bits, lsb_gev);
            const std::vector<poetml::Channel> chans =
                make_channels(channels, n_events, n_threads, "rasterize_sparse");
            // each worker builds its events in one dense image: refuse what cannot fit
            const auto workers = static_cast<py::ssize_t>(
                poetml::n_workers(n_events, poetml::resolve_threads(n_threads)));
            if (n_events > 0 && !chans.empty())
                check_output_size({workers, static_cast<py::ssize_t>(n_eta), static_cast<py::ssize_t>(n_phi),
                                   static_cast<py::ssize_t>(chans.size())},
                                  "rasterize_sparse (one working image per thread)");
            std::vector<std::int64_t> dropped(chans.size(), 0);
            poetml::SparseImages sparse;
            {
                // Safe without the GIL: the kernel only reads the validated input buffers
                // (kept alive by `channels`) and writes C++ vectors owned by this frame.
                py::gil_scoped_release release;
                sparse = poetml::rasterize_sparse(chans, n_events, spec, dropped.data(), n_threads);
            }
            return py::make_tuple(to_array(sparse.offsets), to_array(sparse.index), to_array(sparse.value),
                                  to_array(dropped));
        },
        py::arg("channels"), py::arg("n_events"), py::kw_only(), py::arg("n_eta"), py::arg("n_phi"),
        py::arg("eta_min"), py::arg("eta_max"), py::arg("mode") = "histogram", py::arg("sigma") = 1.0,
        py::arg("glyph_radius0") = 0.5, py::arg("glyph_radius_per_log") = 0.5, py::arg("glyph_width") = 0.5,
        py::arg("glyph_width_positive") = 1.0, py::arg("log1p") = false, py::arg("normalize") = false,
        py::arg("saturate_bits") = 0, py::arg("lsb_gev") = 0.5, py::arg("n_threads") = 0,
        R"doc(Rasterize a batch as rasterize does, returning only the non-zero pixels.
Returns (offsets int64 (n_events + 1,), index int32 (nnz,), value float32 (nnz,), dropped
int64 (n_channels,)): event i's pixels are entries offsets[i]:offsets[i+1], index the flat
pixel index into one (n_eta, n_phi, n_channels) image, ascending within an event.
See cpp/include/poetml/rasterize.hpp for the exact definitions.)doc");

    m.def(
        "densify",
        [](const I64& offsets, const I32& index, const F32& value, std::int64_t n_eta, std::int64_t n_phi,
           std::int64_t n_channels, int n_threads, py::object out_arg) {
            if (offsets.ndim() != 1 || index.ndim() != 1 || value.ndim() != 1)
                throw std::invalid_argument("densify: offsets, index and value must be 1-D, got " +
                                            std::to_string(offsets.ndim()) + "-D, " + std::to_string(index.ndim()) +
                                            "-D, " + std::to_string(value.ndim()) + "-D");
            if (offsets.shape(0) < 1) throw std::invalid_argument("densify: offsets must hold n_events + 1 >= 1 values");
            if (index.shape(0) != value.shape(0))
                throw std::invalid_argument("densify: " + std::to_string(index.shape(0)) + " indices but " +
                                            std::to_string(value.shape(0)) + " values");
            if (n_eta <= 0 || n_phi <= 0 || n_channels <= 0)
                throw std::invalid_argument("densify: image shape must be positive, got " + std::to_string(n_eta) +
                                            " x " + std::to_string(n_phi) + " x " + std::to_string(n_channels));
            if (n_threads < 0)
                throw std::invalid_argument("n_threads must be >= 0 (0: all cores), got " + std::to_string(n_threads));
            const std::int64_t n_events = offsets.shape(0) - 1;
            const std::int64_t n_entries = index.shape(0);
            bool zeroed = false;
            std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(n_events), static_cast<py::ssize_t>(n_eta),
                                           static_cast<py::ssize_t>(n_phi), static_cast<py::ssize_t>(n_channels)};
            if (out_arg.is_none()) check_output_size(shape, "densify");
            const std::int64_t per_event = n_eta * n_phi * n_channels;
            const std::int64_t* off = offsets.data();
            const std::int32_t* idx = index.data();
            const float* val = value.data();
            // validated here, with the GIL held, before the output is allocated
            poetml::validate_sparse(off, n_events, idx, n_entries, per_event);
            auto images = output_f32(shape, out_arg, "densify", zeroed);
            float* out = images.mutable_data();
            {
                // Safe without the GIL: the kernel only reads the three validated input
                // arrays (kept alive by the caller's references) and writes `images`.
                py::gil_scoped_release release;
                poetml::densify(off, n_events, idx, val, n_entries, per_event, out, n_threads, zeroed, true);
            }
            return images;
        },
        py::arg("offsets").noconvert(), py::arg("index").noconvert(), py::arg("value").noconvert(), py::kw_only(),
        py::arg("n_eta"), py::arg("n_phi"), py::arg("n_channels"), py::arg("n_threads") = 0,
        py::arg("out") = py::none(),
        R"doc(Sparse images (offsets int64, index int32, value float32, as rasterize_sparse
returns them) -> dense float32 images (n_events, n_eta, n_phi, n_channels).
out: None (a fresh array) or a C-contiguous float32 array of exactly that shape, which is
zero-filled and written.  Bad offsets or an index outside the image: ValueError.)doc");
}

}  // namespace poetml_py
