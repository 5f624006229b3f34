// Shared pieces of the poetml._core bindings: the Columns/Cuts wrappers and array checks.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "poetml/core.hpp"

namespace poetml_py {

namespace py = pybind11;

using F32 = py::array_t<float, py::array::c_style>;
using I64 = py::array_t<std::int64_t, py::array::c_style>;

/// A collection's columns, held alive by this object; arrays are checked on construction
/// (dtype and contiguity by noconvert, ndim and lengths here).  Values are validated
/// (offsets, finiteness) by the kernels, each call, with the GIL held.
struct PyColumns {
    std::string name;
    std::optional<I64> offsets;
    F32 pt, phi;
    std::optional<F32> eta, charge, mass, tight_id, iso, btag;

    poetml::Objects objects() const;
};

/// Checks a 1-D float32 C-contiguous array handed over inside a container (where
/// noconvert cannot apply); TypeError otherwise.  None gives nullptr.
const float* column_ptr(py::handle obj, const std::string& what, std::int64_t expected_len);

/// A fresh C-contiguous float32 output array of `shape` from numpy.zeros (calloc: zero;
/// a big one is fresh mmap memory whose pages the OS zeroes when a worker thread first
/// writes to them, and pages without deposits are never touched; a big one is advised for
/// transparent huge pages).  Sets `zeroed`, so rasterize deposits straight into it.  Call
/// with the GIL held.
py::array_t<float> output_f32(const std::vector<py::ssize_t>& shape, bool& zeroed);

/// Refuses (std::invalid_argument naming `func`, the shape and the bytes) a float32 output
/// of `shape` with a negative dimension, one bigger than the machine's physical memory, or
/// one whose non-zero dimensions multiply to more than 2^63 bytes (numpy refuses those even
/// when another dimension is 0), before numpy is asked for it.  Call with the GIL held.
void check_output_size(const std::vector<py::ssize_t>& shape, const char* func);

/// The output array of `func`: `out` itself when it is not None (checked: a numpy
/// float32 array, TypeError otherwise; exactly `shape`, C-contiguous and writeable,
/// ValueError otherwise; `zeroed` is then false, so the kernel overwrites every element of
/// it), else output_f32(shape, zeroed) after check_output_size(shape, func).  Call with the GIL held.
py::array_t<float> output_f32(const std::vector<py::ssize_t>& shape, py::object out, const char* func,
                              bool& zeroed);

void bind_columns(py::module_& m);
void bind_images(py::module_& m);
void bind_features(py::module_& m);
void bind_cleaning(py::module_& m);
void bind_emulate(py::module_& m);

}  // namespace poetml_py
