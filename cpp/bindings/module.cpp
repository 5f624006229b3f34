// poetml._core: pybind11 bindings of the C++ core (cpp/include/poetml), one bind_<topic>.cpp
// per topic.  std::invalid_argument from the core becomes ValueError.
#include "bind.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "poetml C++ core: rasterize events into images, build feature vectors";
    poetml_py::bind_columns(m);
    poetml_py::bind_images(m);
    poetml_py::bind_features(m);
    poetml_py::bind_cleaning(m);
    poetml_py::bind_emulate(m);
}
