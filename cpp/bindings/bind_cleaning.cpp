// Bindings: clean_jets (lepton-jet cleaning).
#include "bind.hpp"
#include "poetml/cleaning.hpp"

namespace poetml_py {

void bind_cleaning(py::module_& m) {
    m.def(
        "clean_jets",
        [](const PyColumns& jets, const std::vector<std::pair<const PyColumns*, poetml::Cuts>>& leptons, double dr,
           int n_threads) {
            if (n_threads < 0)
                throw std::invalid_argument("n_threads must be >= 0 (0: all cores), got " + std::to_string(n_threads));
            const poetml::Objects j = jets.objects();
            poetml::validate(j);  // offsets, finiteness: GIL held
            std::vector<poetml::CleaningLeptons> leps;
            leps.reserve(leptons.size());
            for (const auto& [cols, cuts] : leptons) {
                if (!cols) throw py::type_error("clean_jets: lepton columns must not be None");
                poetml::CleaningLeptons l{cols->objects(), cuts};
                poetml::validate(l.objects);
                poetml::validate_cuts(l.objects, l.cuts);
                leps.push_back(std::move(l));
            }
            py::array_t<float> keep(static_cast<py::ssize_t>(j.n_objects));
            float* out = keep.mutable_data();
            {
                // Safe without the GIL: the kernel reads the validated columns (kept alive by
                // `jets` and `leptons`) and writes only `keep`, which this call owns.
                py::gil_scoped_release release;
                poetml::clean_jets(j, leps, dr, out, n_threads);
            }
            return keep;
        },
        py::arg("jets"), py::arg("leptons"), py::arg("dr"), py::kw_only(), py::arg("n_threads") = 0,
        R"doc(Lepton-jet cleaning: float32 per jet, 0 where a selected lepton (leptons: a list of
(Columns, Cuts)) of the same event lies within Delta R < dr, else 1.  See
cpp/include/poetml/cleaning.hpp.)doc");
}

}  // namespace poetml_py
