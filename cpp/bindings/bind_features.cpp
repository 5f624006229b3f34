// Bindings: build_features.
#include "bind.hpp"
#include "poetml/features.hpp"

namespace poetml_py {

void bind_features(py::module_& m) {
    m.def(
        "build_features",
        [](const std::vector<std::pair<const PyColumns*, poetml::Cuts>>& collections, std::int64_t n_events,
           const std::vector<std::tuple<std::size_t, std::int64_t, py::list>>& slots,
           const std::vector<std::string>& event_quantities, std::int64_t muon, std::int64_t electron,
           std::int64_t jet, std::int64_t met, double btag_threshold, double muon_mass, int n_threads,
           py::object out_arg) {
            if (n_threads < 0) throw std::invalid_argument("n_threads must be >= 0 (0: all cores), got " + std::to_string(n_threads));
            if (n_events < 0) throw std::invalid_argument("n_events must be >= 0, got " + std::to_string(n_events));
            std::vector<poetml::FeatureCollection> colls;
            colls.reserve(collections.size());
            for (const auto& [cols, cuts] : collections) {
                if (!cols) throw py::type_error("build_features: collection columns must not be None");
                poetml::FeatureCollection fc{cols->objects(), cuts};
                poetml::validate(fc.objects);  // offsets, finiteness: GIL held
                // before the output is allocated: a wrong n_events may ask for any size
                if (fc.objects.n_events != n_events)
                    throw std::invalid_argument("collection '" + fc.objects.name + "' has " +
                                                std::to_string(fc.objects.n_events) + " events, expected " +
                                                std::to_string(n_events));
                colls.push_back(std::move(fc));
            }
            poetml::FeatureSpec spec;
            std::int64_t nf_slots = 0;  // floats per event of the slots, checked for overflow
            for (const auto& [ci, count, columns] : slots) {
                const std::string slot = "slot " + std::to_string(spec.slots.size());
                if (ci >= colls.size())
                    throw std::invalid_argument(slot + " refers to collection " + std::to_string(ci) + " of " +
                                                std::to_string(colls.size()));
                if (count < 0)
                    throw std::invalid_argument(slot + " (collection '" + colls[ci].objects.name +
                                                "'): count must be >= 0, got " + std::to_string(count));
                std::int64_t floats = 0;
                if (__builtin_mul_overflow(count, static_cast<std::int64_t>(py::len(columns)), &floats) ||
                    __builtin_add_overflow(nf_slots, floats, &nf_slots))
                    throw std::invalid_argument(slot + " (collection '" + colls[ci].objects.name + "'): count " +
                                                std::to_string(count) + " x " + std::to_string(py::len(columns)) +
                                                " columns overflows the feature vector length");
                poetml::FeatureSlot s;
                s.collection = ci;
                s.count = count;
                std::size_t f = 0;
                for (py::handle col : columns) {
                    s.columns.push_back(column_ptr(col,
                                                   "collection '" + colls[ci].objects.name + "', feature column " +
                                                       std::to_string(f++),
                                                   colls[ci].objects.n_objects));
                }
                spec.slots.push_back(std::move(s));
            }
            static const std::pair<const char*, poetml::EventQuantity> known[] = {
                {"ht", poetml::EventQuantity::ht},
                {"met", poetml::EventQuantity::met},
                {"n_muon", poetml::EventQuantity::n_muon},
                {"n_electron", poetml::EventQuantity::n_electron},
                {"n_jet", poetml::EventQuantity::n_jet},
                {"n_bjet", poetml::EventQuantity::n_bjet},
                {"m_mumu", poetml::EventQuantity::m_mumu},
                {"m_jj", poetml::EventQuantity::m_jj},
            };
            for (const auto& q : event_quantities) {
                bool found = false;
                for (const auto& [name, value] : known) {
                    if (q == name) {
                        spec.event_quantities.push_back(value);
                        found = true;
                    }
                }
                if (!found)
                    throw std::invalid_argument("unknown event quantity '" + q +
                                                "'; valid: ht, met, n_muon, n_electron, n_jet, n_bjet, m_mumu, m_jj");
            }
            spec.muon = muon;
            spec.electron = electron;
            spec.jet = jet;
            spec.met = met;
            spec.btag_threshold = btag_threshold;
            spec.muon_mass = muon_mass;
            if (nf_slots > std::numeric_limits<std::int64_t>::max() -
                               static_cast<std::int64_t>(spec.event_quantities.size()))
                throw std::invalid_argument("the feature vector length overflows: " + std::to_string(nf_slots) +
                                            " slot values + " + std::to_string(spec.event_quantities.size()) +
                                            " event quantities");
            const std::int64_t nf = poetml::n_features(spec);  // no overflow: checked above
            bool zeroed = false;  // not needed: build_features writes every float
            auto features = output_f32({static_cast<py::ssize_t>(n_events), static_cast<py::ssize_t>(nf)}, out_arg,
                                       "build_features", zeroed);
            float* out = features.mutable_data();
            {
                // Safe without the GIL: the kernel only reads the validated input buffers
                // (kept alive by `collections` and `slots`) and writes the output array (`out`,
                // when given, is kept alive by the caller's reference for the whole call).
                py::gil_scoped_release release;
                poetml::build_features(colls, n_events, spec, out, n_threads);
            }
            return features;
        },
        py::arg("collections"), py::arg("n_events"), py::arg("slots"), py::kw_only(),
        py::arg("event_quantities") = std::vector<std::string>{}, py::arg("muon") = -1, py::arg("electron") = -1,
        py::arg("jet") = -1, py::arg("met") = -1, py::arg("btag_threshold") = 0.8484,
        py::arg("muon_mass") = 0.1056584, py::arg("n_threads") = 0, py::arg("out") = py::none(),
        R"doc(Build feature vectors: collections is a list of (Columns, Cuts); slots a list of
(collection index, count, [float32 column or None per field]).  Returns float32
(n_events, n_features): a fresh array, or `out` (a C-contiguous float32 array of exactly
that shape) zero-filled and written.  See cpp/include/poetml/features.hpp for the exact definitions.)doc");
}

}  // namespace poetml_py
