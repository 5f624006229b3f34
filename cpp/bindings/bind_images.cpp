// Bindings: rasterize.
#include "bind.hpp"
#include "poetml/rasterize.hpp"

namespace poetml_py {

void bind_images(py::module_& m) {
    m.def(
        "rasterize",
        [](const std::vector<std::pair<const PyColumns*, poetml::Cuts>>& channels, std::int64_t n_events,
           std::int64_t n_eta, std::int64_t n_phi, double eta_min, double eta_max, const std::string& mode,
           double sigma, double glyph_radius0, double glyph_radius_per_log, double glyph_width,
           double glyph_width_positive, bool log1p, bool normalize, int saturate_bits, double lsb_gev,
           int n_threads, py::object out_arg) {
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
            if (n_threads < 0) throw std::invalid_argument("n_threads must be >= 0 (0: all cores), got " + std::to_string(n_threads));
            if (n_events < 0) throw std::invalid_argument("n_events must be >= 0, got " + std::to_string(n_events));
            poetml::validate(spec);
            std::vector<poetml::Channel> chans;
            chans.reserve(channels.size());
            for (const auto& [cols, cuts] : channels) {
                if (!cols) throw py::type_error("rasterize: channel columns must not be None");
                poetml::Channel ch{cols->objects(), cuts};
                poetml::validate(ch.objects);  // offsets, finiteness: GIL held
                // before the output is allocated: a wrong n_events may ask for any size
                if (ch.objects.n_events != n_events)
                    throw std::invalid_argument("collection '" + ch.objects.name + "' has " +
                                                std::to_string(ch.objects.n_events) + " events, expected " +
                                                std::to_string(n_events));
                chans.push_back(std::move(ch));
            }
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
}

}  // namespace poetml_py
