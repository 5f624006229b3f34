// poetml._core: pybind11 bindings of the C++ core (cpp/include/poetml).
#include <pybind11/pybind11.h>

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
    m.doc() = "poetml C++ core: rasterize events into images, build feature vectors";
}
