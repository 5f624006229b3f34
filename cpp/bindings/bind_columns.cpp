// Bindings: Columns (one collection's arrays) and Cuts (its selection).
#include "bind.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace poetml_py {

namespace {

void check_1d(const py::array& a, const std::string& coll, const char* field) {
    if (a.ndim() != 1)
        throw py::type_error("collection '" + coll + "', field '" + field + "': expected a 1-D array, got " +
                             std::to_string(a.ndim()) + " dimensions");
}

void check_len(const std::optional<F32>& a, const std::string& coll, const char* field, py::ssize_t n) {
    if (!a) return;
    check_1d(*a, coll, field);
    if (a->size() != n)
        throw std::invalid_argument("collection '" + coll + "', field '" + field + "' has " +
                                    std::to_string(a->size()) + " values, pt has " + std::to_string(n));
}

const float* ptr(const std::optional<F32>& a) { return a ? a->data() : nullptr; }

std::string shape_str(const std::vector<py::ssize_t>& shape) {
    std::string s = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + (shape.size() == 1 ? ",)" : ")");
}

/// Why the typed Columns constructor rejected its arguments, where pybind11 only lists them:
/// the first one of the wrong type, dtype or layout (as pybind11, a TypeError saying
/// "incompatible function arguments").  Reached through an overload that takes anything.
[[noreturn]] void columns_type_error(const py::args& args, const py::kwargs& kwargs) {
    static const char* const names[] = {"name", "offsets", "pt", "phi", "eta",
                                        "charge", "mass", "tight_id", "iso", "btag"};
    constexpr std::size_t n_names = sizeof(names) / sizeof(names[0]);
    const std::string head = "Columns: incompatible function arguments: ";
    std::vector<py::object> given(n_names);  // null: not given
    if (args.size() > 4)
        throw py::type_error(head + "takes at most 4 positional arguments (name, offsets, pt, phi), got " +
                             std::to_string(args.size()));
    for (std::size_t i = 0; i < args.size(); ++i) given[i] = py::reinterpret_borrow<py::object>(args[i]);
    for (auto [key, value] : kwargs) {
        const std::string k = py::str(key);
        std::size_t i = 0;
        while (i < n_names && k != names[i]) ++i;
        if (i == n_names) throw py::type_error(head + "unexpected keyword argument '" + k + "'");
        if (given[i]) throw py::type_error(head + "argument '" + k + "' given twice");
        given[i] = py::reinterpret_borrow<py::object>(value);
    }
    if (!given[0] || !py::isinstance<py::str>(given[0]))
        throw py::type_error(head + "name must be a str, got " +
                             (given[0] ? std::string(py::str(py::type::handle_of(given[0]).attr("__name__")))
                                       : std::string("nothing")));
    const std::string where = head + "collection '" + given[0].cast<std::string>() + "', ";
    for (std::size_t i = 1; i < n_names; ++i) {
        const bool required = i <= 3;  // offsets (may be None), pt, phi
        const std::string what = i == 1 ? std::string("offsets") : "field '" + std::string(names[i]) + "'";
        const char* dtype = i == 1 ? "int64" : "float32";
        const std::string want = std::string(": expected a C-contiguous ") + dtype + " numpy array" +
                                 (i == 1 || !required ? " or None" : "") + " (no silent copies), got ";
        const py::object& h = given[i];
        if (!h) {
            if (required) throw py::type_error(where + what + ": missing");
            continue;
        }
        if (h.is_none()) {
            if (i == 2 || i == 3) throw py::type_error(where + what + want + "None");
            continue;
        }
        if (!py::isinstance<py::array>(h))
            throw py::type_error(where + what + want +
                                 std::string(py::str(py::type::handle_of(h).attr("__name__"))));
        auto a = py::reinterpret_borrow<py::array>(h);
        const bool dtype_ok = i == 1 ? a.dtype().equal(py::dtype::of<std::int64_t>())
                                     : a.dtype().equal(py::dtype::of<float>());
        if (!dtype_ok) throw py::type_error(where + what + want + "dtype " + std::string(py::str(a.dtype())));
        if (!(a.flags() & py::array::c_style))
            throw py::type_error(where + what + want + "a non-contiguous array (strides " +
                                 std::string(py::str(h.attr("strides"))) + ")");
    }
    throw py::type_error(head + std::string(py::str(py::repr(args))) + ", " + std::string(py::str(py::repr(kwargs))));
}

}  // namespace

poetml::Objects PyColumns::objects() const {
    poetml::Objects o;
    o.name = name;
    o.n_objects = static_cast<std::int64_t>(pt.size());
    o.n_events = offsets ? static_cast<std::int64_t>(offsets->size()) - 1 : o.n_objects;
    o.offsets = offsets ? offsets->data() : nullptr;
    o.pt = pt.data();
    o.phi = phi.data();
    o.eta = ptr(eta);
    o.charge = ptr(charge);
    o.mass = ptr(mass);
    o.tight_id = ptr(tight_id);
    o.iso = ptr(iso);
    o.btag = ptr(btag);
    return o;
}

namespace {

/// Asks the OS for transparent huge pages on a big output buffer (Linux; a no-op elsewhere
/// or below 4 MiB), as numpy does for numpy.empty but not for numpy.zeros.
void advise_huge_pages(void* data, std::size_t nbytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    // numpy.zeros (calloc) does not madvise, unlike numpy.empty (malloc) for >= 4 MiB.  A big
    // output is a fresh mmap, so every 4 KiB page first written by the kernel costs a page
    // fault; with transparent huge pages in "madvise" mode (the common default) asking for
    // them makes that one fault per 2 MiB.  Only whole pages inside the array are advised;
    // a failure (THP disabled) leaves ordinary pages, which is still correct.
    constexpr std::size_t min_bytes = std::size_t(4) << 20;
    if (nbytes < min_bytes) return;
    const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
    const auto begin = (reinterpret_cast<std::uintptr_t>(data) + page - 1) / page * page;
    const auto end = (reinterpret_cast<std::uintptr_t>(data) + nbytes) / page * page;
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
    (void)data;
    (void)nbytes;
#endif
}

}  // namespace

py::array_t<float> output_f32(const std::vector<py::ssize_t>& shape, bool& zeroed) {
    py::tuple t(shape.size());
    for (std::size_t i = 0; i < shape.size(); ++i) t[i] = shape[i];
    auto arr = py::module_::import("numpy").attr("zeros")(t, "float32").cast<F32>();
    zeroed = true;  // numpy.zeros is calloc: zero, and for big arrays not even touched yet
    advise_huge_pages(arr.mutable_data(), static_cast<std::size_t>(arr.nbytes()));
    return arr;
}


void check_output_size(const std::vector<py::ssize_t>& shape, const char* func) {
    // the bytes of the non-zero dimensions (as numpy counts them), or -1 when that overflows
    std::int64_t bytes = static_cast<std::int64_t>(sizeof(float));
    bool empty = false;
    for (py::ssize_t d : shape) {
        if (d < 0)
            throw std::invalid_argument(std::string(func) + ": output shape " + shape_str(shape) +
                                        " has a negative dimension");
        if (d == 0) empty = true;
        else if (bytes >= 0 && __builtin_mul_overflow(bytes, static_cast<std::int64_t>(d), &bytes)) bytes = -1;
    }
    std::int64_t limit = std::numeric_limits<std::int64_t>::max();
#if defined(__linux__)
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0 && pages <= limit / page) limit = static_cast<std::int64_t>(pages) * page;
#endif
    if (bytes < 0 || (!empty && bytes > limit))
        throw std::invalid_argument(std::string(func) + ": output of shape " + shape_str(shape) + " needs " +
                                    (bytes < 0 ? std::string("more than 2^63 bytes")
                                               : std::to_string(bytes) + " bytes, more than this machine's " +
                                                     std::to_string(limit) + " bytes of memory"));
}

py::array_t<float> output_f32(const std::vector<py::ssize_t>& shape, py::object out, const char* func,
                              bool& zeroed) {
    if (out.is_none()) {
        check_output_size(shape, func);
        return output_f32(shape, zeroed);
    }
    const std::string what = std::string(func) + ": out";
    if (!py::isinstance<py::array>(out))
        throw py::type_error(what + " must be a numpy float32 array of shape " + shape_str(shape) + ", got " +
                             std::string(py::str(py::type::handle_of(out).attr("__name__"))));
    auto a = py::reinterpret_borrow<py::array>(out);
    if (!a.dtype().equal(py::dtype::of<float>()))
        throw py::type_error(what + " must have dtype float32, got " + std::string(py::str(a.dtype())));
    std::vector<py::ssize_t> got(a.shape(), a.shape() + a.ndim());
    if (got != shape)
        throw std::invalid_argument(what + " must have shape " + shape_str(shape) + ", got " + shape_str(got));
    if (!(a.flags() & py::array::c_style)) throw std::invalid_argument(what + " must be C-contiguous");
    if (!a.writeable()) throw std::invalid_argument(what + " must be writeable");
    zeroed = false;  // whatever it holds: the kernel zero-fills it
    return py::reinterpret_borrow<py::array_t<float>>(out);
}

const float* column_ptr(py::handle obj, const std::string& what, std::int64_t expected_len) {
    if (obj.is_none()) return nullptr;
    if (!py::isinstance<F32>(obj))
        throw py::type_error(what + ": expected a C-contiguous float32 numpy array, got " +
                             std::string(py::str(py::type::handle_of(obj).attr("__name__"))) +
                             (py::isinstance<py::array>(obj)
                                  ? " of dtype " + std::string(py::str(obj.attr("dtype")))
                                  : std::string()));
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (a.ndim() != 1) throw py::type_error(what + ": expected a 1-D array");
    if (a.size() != expected_len)
        throw std::invalid_argument(what + ": " + std::to_string(a.size()) + " values, expected " +
                                    std::to_string(expected_len));
    return static_cast<const float*>(a.data());
}

void bind_columns(py::module_& m) {
    py::class_<PyColumns>(m, "Columns", R"doc(
One collection's arrays for the kernels: float32 C-contiguous 1-D columns and int64
offsets (n_events + 1), or offsets=None for exactly one value per event (MET).  Arrays of
another dtype or layout raise TypeError (no silent copies); lengths are checked here,
values (offsets, finiteness) by each kernel call.)doc")
        .def(py::init([](std::string name, std::optional<I64> offsets, F32 pt, F32 phi,
                         std::optional<F32> eta, std::optional<F32> charge, std::optional<F32> mass,
                         std::optional<F32> tight_id, std::optional<F32> iso, std::optional<F32> btag) {
                 check_1d(pt, name, "pt");
                 const py::ssize_t n = pt.size();
                 check_1d(phi, name, "phi");
                 if (phi.size() != n)
                     throw std::invalid_argument("collection '" + name + "', field 'phi' has " +
                                                 std::to_string(phi.size()) + " values, pt has " +
                                                 std::to_string(n));
                 check_len(eta, name, "eta", n);
                 check_len(charge, name, "charge", n);
                 check_len(mass, name, "mass", n);
                 check_len(tight_id, name, "tight_id", n);
                 check_len(iso, name, "iso", n);
                 check_len(btag, name, "btag", n);
                 if (offsets) {
                     if (offsets->ndim() != 1 || offsets->size() < 1)
                         throw std::invalid_argument(
                             "collection '" + name + "': offsets must be 1-D with n_events + 1 values, got shape " +
                             shape_str(std::vector<py::ssize_t>(offsets->shape(), offsets->shape() + offsets->ndim())));
                 }
                 return PyColumns{std::move(name), std::move(offsets), std::move(pt), std::move(phi),
                                  std::move(eta), std::move(charge), std::move(mass), std::move(tight_id),
                                  std::move(iso), std::move(btag)};
             }),
             py::arg("name"), py::arg("offsets").noconvert().none(true), py::arg("pt").noconvert(),
             py::arg("phi").noconvert(), py::kw_only(), py::arg("eta").noconvert().none(true) = py::none(),
             py::arg("charge").noconvert().none(true) = py::none(),
             py::arg("mass").noconvert().none(true) = py::none(),
             py::arg("tight_id").noconvert().none(true) = py::none(),
             py::arg("iso").noconvert().none(true) = py::none(),
             py::arg("btag").noconvert().none(true) = py::none())
        // only reached when the constructor above rejected the arguments: say which one
        .def(py::init([](const py::args& args, const py::kwargs& kwargs) -> PyColumns {
            columns_type_error(args, kwargs);
        }))
        .def_readonly("name", &PyColumns::name)
        .def_property_readonly("n_events", [](const PyColumns& c) { return c.objects().n_events; })
        .def_property_readonly("n_objects", [](const PyColumns& c) { return c.objects().n_objects; })
        .def("__repr__", [](const PyColumns& c) {
            auto o = c.objects();
            return "<poetml._core.Columns '" + c.name + "': " + std::to_string(o.n_events) + " events, " +
                   std::to_string(o.n_objects) + " objects>";
        });

    py::class_<poetml::Cuts>(m, "Cuts", R"doc(
Object selection: pt >= min_pt, |eta| <= max_abs_eta, tight_id > 0.5 when tight_id is
True, iso <= max_iso when max_iso is not None (comparisons in double).)doc")
        .def(py::init([](double min_pt, double max_abs_eta, bool tight_id, std::optional<double> max_iso) {
                 poetml::Cuts c;
                 c.min_pt = min_pt;
                 c.max_abs_eta = max_abs_eta;
                 c.tight_id = tight_id;
                 c.use_max_iso = max_iso.has_value();
                 c.max_iso = max_iso.value_or(0.0);
                 return c;
             }),
             py::arg("min_pt") = 0.0, py::arg("max_abs_eta") = std::numeric_limits<double>::infinity(),
             py::arg("tight_id") = false, py::arg("max_iso") = py::none())
        .def_readonly("min_pt", &poetml::Cuts::min_pt)
        .def_readonly("max_abs_eta", &poetml::Cuts::max_abs_eta)
        .def_readonly("tight_id", &poetml::Cuts::tight_id)
        .def_property_readonly("max_iso", [](const poetml::Cuts& c) -> std::optional<double> {
            if (c.use_max_iso) return c.max_iso;
            return std::nullopt;
        });
}

}  // namespace poetml_py
