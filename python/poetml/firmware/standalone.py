"""The standalone emulator for C++ users: a folder a C++ program can build on its own.

:func:`write_standalone` writes, next to each other,

``emulator.hpp``
    the trained network's integer weights and fixed-point formats, the preprocessing
    constants (scaler and input quantizer) when known, and the trigger threshold and rule
    (:func:`poetml.firmware.emulate.cpp_header`);
``score_features.cpp``
    a small C++17 program that reads the feature vectors of a POET file as a ``.npy``
    float32 ``(N, F)`` matrix and prints per event the trigger score and bit (and the network
    outputs), bit for bit as the Python path (:func:`poetml.firmware.emulate.emulate`, the
    firmware's C simulation) computes them;
``README.txt``
    how to make the ``.npy`` and build and run the program.

``poetml firmware`` writes this folder as ``OUT/emulator/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._atomic import write_text
from ..exceptions import FirmwareError
from .emulate import EmulatorExport, TriggerRule, cpp_header

__all__ = ["BUILD_COMMAND", "score_program", "write_standalone"]

#: how README.txt (and the program's comment) say to build the program, in its folder
BUILD_COMMAND = (
    "g++ -std=c++17 -O2 -pthread "
    "-I\"$(python -c 'import poetml; print(poetml.get_include())')\" "
    "score_features.cpp -o score_features"
)

_PROGRAM = r"""// score_features: the trained trigger network of @PROJECT@ on the feature vectors of a POET
// file, bit for bit as the firmware (and poetml's Python path) computes them.  Written by
// poetml.firmware.standalone next to emulator.hpp (the network, preprocessing and trigger).
//
// Build (in this folder; needs only a C++17 compiler and poetml's header-only C++ core):
//   @BUILD@
// Run:
//   ./score_features FEATURES.npy [--preprocessed] [--threads N] > scores.txt
//
// Input: a NumPy .npy file holding a float32 matrix (N, kInputs), little-endian, C order
// (N, H, W, C images are read as (N, H*W*C)); anything else is refused with a message.
// Make it from a POET (or NanoAOD) file with poetml:
//   poetml features FILE.root -o feats.h5 [--config RUN.yaml]
//   python -c "import h5py, numpy; numpy.save('feats.npy', h5py.File('feats.h5')['features'][:])"
// The rows are raw features (the layout of the feature spec: MET, electrons, muons, jets, each
// pT, eta, phi, ...) and are preprocessed as the model was trained (preprocess() in
// emulator.hpp: scaler, then the input quantizer), unless emulator.hpp holds no preprocessing
// or --preprocessed says the rows are network inputs already.
//
// Output: one line per event, "event score fire y0 y1 ...": the trigger score, the trigger
// bit (0/1) and the network outputs, doubles printed with %.17g so they read back exactly.
//
// From ROOT instead of .npy: poetml/features.hpp (poetml::build_features) computes the same
// feature vectors from the POET branches (flat per-object arrays plus per-event offsets; see
// the C++ core's documentation and the header's comments).  The features must come from the
// same FeatureSpec and object selection as the model's training (its run configuration).
// Then, per event: @NS@::preprocess(features, x); poetml::emu::emulate(net, x, 1, y, nullptr, 1);
// @NS@::score(y), @NS@::fires(y).  (No ROOT macro ships with this program: ROOT is not
// needed to build or test it.)
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "emulator.hpp"

namespace {

namespace net_ns = @NS@;

struct Matrix {
    std::int64_t rows = 0;
    std::int64_t cols = 0;
    std::vector<float> values;
};

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

std::string dict_value(const std::string& header, const std::string& key, const std::string& path) {
    const std::string k = "'" + key + "'";
    const auto at = header.find(k);
    if (at == std::string::npos) fail(path + ": the .npy header has no " + k + ": " + header);
    auto p = header.find(':', at + k.size());
    if (p == std::string::npos) fail(path + ": malformed .npy header: " + header);
    ++p;
    while (p < header.size() && header[p] == ' ') ++p;
    const char open = p < header.size() ? header[p] : '\0';
    const char close = open == '(' ? ')' : open == '\'' ? '\'' : '\0';
    if (close) {
        const auto end = header.find(close, p + 1);
        if (end == std::string::npos) fail(path + ": malformed .npy header: " + header);
        return header.substr(p, end - p + 1);
    }
    const auto end = header.find_first_of(",}", p);
    return header.substr(p, end == std::string::npos ? std::string::npos : end - p);
}

bool little_endian() {
    const std::uint16_t one = 1;
    unsigned char b;
    std::memcpy(&b, &one, 1);
    return b == 1;
}

// A float32 .npy matrix (format versions 1, 2 and 3), (N, F) or (N, d1, d2, ...) as (N, d1*d2*...).
Matrix read_npy(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail("cannot open " + path + ": " + std::strerror(errno));
    struct Closer {
        std::FILE* f;
        ~Closer() { std::fclose(f); }
    } closer{f};
    unsigned char magic[8];
    if (std::fread(magic, 1, 8, f) != 8 || std::memcmp(magic, "\x93NUMPY", 6) != 0)
        fail(path + " is not a .npy file (make one with numpy.save; see the comment of score_features.cpp)");
    const int major = magic[6];
    std::uint32_t header_len = 0;
    if (major == 1) {
        unsigned char l[2];
        if (std::fread(l, 1, 2, f) != 2) fail(path + ": truncated .npy header");
        header_len = l[0] | (l[1] << 8);
    } else if (major == 2 || major == 3) {
        unsigned char l[4];
        if (std::fread(l, 1, 4, f) != 4) fail(path + ": truncated .npy header");
        header_len = l[0] | (l[1] << 8) | (l[2] << 16) | (static_cast<std::uint32_t>(l[3]) << 24);
    } else {
        fail(path + ": .npy format version " + std::to_string(major) + " is not read (1, 2 and 3 are)");
    }
    std::string header(header_len, '\0');
    if (header_len > (1u << 20) || std::fread(&header[0], 1, header_len, f) != header_len)
        fail(path + ": truncated or oversized .npy header");
    const std::string descr = dict_value(header, "descr", path);
    if (descr != "'<f4'" && !(descr == "'=f4'" && little_endian()))
        fail(path + ": holds dtype " + descr + "; score_features reads little-endian float32 ('<f4') "
             "only (numpy.save(path, x.astype('<f4')))");
    if (dict_value(header, "fortran_order", path) != "False")
        fail(path + ": is in Fortran order; save a C-ordered array (numpy.ascontiguousarray)");
    const std::string shape = dict_value(header, "shape", path);
    std::vector<std::int64_t> dims;
    for (std::size_t p = 1; p < shape.size();) {
        while (p < shape.size() && (shape[p] == ' ' || shape[p] == ',')) ++p;
        if (p >= shape.size() || shape[p] == ')') break;
        char* end = nullptr;
        const long long d = std::strtoll(shape.c_str() + p, &end, 10);
        if (end == shape.c_str() + p || d < 0) fail(path + ": malformed .npy shape " + shape);
        dims.push_back(d);
        p = static_cast<std::size_t>(end - shape.c_str());
    }
    if (dims.size() < 2)
        fail(path + ": holds an array of shape " + shape + "; score_features reads a matrix (N, F)");
    Matrix m;
    m.rows = dims[0];
    m.cols = 1;
    for (std::size_t i = 1; i < dims.size(); ++i) m.cols *= dims[i];
    if (!little_endian()) fail("score_features reads .npy float32 on little-endian machines only");
    m.values.resize(static_cast<std::size_t>(m.rows * m.cols));
    if (!m.values.empty() && std::fread(m.values.data(), sizeof(float), m.values.size(), f) != m.values.size())
        fail(path + ": holds fewer values than its shape " + shape + " says");
    return m;
}

int usage(const char* argv0) {
    std::fprintf(stderr,
                 "usage: %s FEATURES.npy [--preprocessed] [--threads N]\n"
                 "  FEATURES.npy  float32 (N, %ld): raw feature vectors (or network inputs with "
                 "--preprocessed)\n"
                 "  prints per event: event score fire y0 .. y%ld\n",
                 argv0, static_cast<long>(net_ns::kInputs), static_cast<long>(net_ns::kOutputs - 1));
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string path;
    bool preprocessed = !net_ns::kHasPreprocessing;
    int threads = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--preprocessed") {
            preprocessed = true;
        } else if (a == "--threads" && i + 1 < argc) {
            threads = std::atoi(argv[++i]);
        } else if (a == "-h" || a == "--help") {
            return usage(argv[0]);
        } else if (path.empty() && !a.empty() && a[0] != '-') {
            path = a;
        } else {
            return usage(argv[0]);
        }
    }
    if (path.empty()) return usage(argv[0]);
    try {
        const Matrix m = read_npy(path);
        if (m.cols != net_ns::kInputs)
            fail(path + ": " + std::to_string(m.cols) + " values per event; the network reads " +
                 std::to_string(net_ns::kInputs));
        poetml::emu::Network net = net_ns::network();
        const std::int64_t chunk = 1 << 16;  // events per call: bounded memory for any N
        std::vector<double> x, y;
        std::printf("# event score fire");
        for (long j = 0; j < net_ns::kOutputs; ++j) std::printf(" y%ld", j);
        std::printf("\n");
        for (std::int64_t begin = 0; begin < m.rows; begin += chunk) {
            const std::int64_t n = std::min(chunk, m.rows - begin);
            x.assign(static_cast<std::size_t>(n * net_ns::kInputs), 0.0);
            y.assign(static_cast<std::size_t>(n * net_ns::kOutputs), 0.0);
            for (std::int64_t e = 0; e < n; ++e) {
                const float* in = m.values.data() + (begin + e) * net_ns::kInputs;
                double* xe = x.data() + e * net_ns::kInputs;
                try {
                    if (preprocessed) {
                        for (long i = 0; i < net_ns::kInputs; ++i) xe[i] = static_cast<double>(in[i]);
                    } else {
                        net_ns::preprocess(in, xe);
                    }
                } catch (const std::invalid_argument& exc) {
                    fail(path + ": event " + std::to_string(begin + e) + ": " + exc.what());
                }
            }
            poetml::emu::check_inputs(x.data(), n, net_ns::kInputs);
            poetml::emu::emulate(net, x.data(), n, y.data(), nullptr, threads);
            for (std::int64_t e = 0; e < n; ++e) {
                const double* ye = y.data() + e * net_ns::kOutputs;
                std::printf("%lld %.17g %d", static_cast<long long>(begin + e), net_ns::score(ye),
                            net_ns::fires(ye) ? 1 : 0);
                for (long j = 0; j < net_ns::kOutputs; ++j) std::printf(" %.17g", ye[j]);
                std::printf("\n");
            }
        }
        if (std::fflush(stdout) != 0) fail(std::string("writing the scores: ") + std::strerror(errno));
    } catch (const std::exception& exc) {
        std::fprintf(stderr, "score_features: error: %s\n", exc.what());
        return 1;
    }
    return 0;
}
"""


def score_program(namespace: str, project: str | None = None) -> str:
    """The C++ source of ``score_features.cpp`` for the header of ``namespace``."""
    if not namespace.isidentifier():
        raise FirmwareError(f"namespace {namespace!r} is not a C++ identifier")
    return (
        _PROGRAM.replace("@NS@", namespace)
        .replace("@PROJECT@", project or namespace)
        .replace("@BUILD@", BUILD_COMMAND)
    )


def _readme(
    export: EmulatorExport, namespace: str, preprocessing: Any, trigger: TriggerRule
) -> str:
    pre = (
        "raw feature vectors, preprocessed inside the program as the model was trained "
        "(scaler and input quantizer in emulator.hpp)"
        if preprocessing is not None
        else "network inputs, already scaled and quantized (no preprocessing was known when "
        "the firmware was built)"
    )
    rule = (
        f"fire = y{trigger.score_index} > threshold"
        if trigger.denominator_index is None
        else f"score = y{trigger.score_index} / y{trigger.denominator_index} (0 when "
        f"y{trigger.denominator_index} is 0); fire = y{trigger.score_index} > threshold x "
        f"y{trigger.denominator_index}"
    )
    return f"""\
Standalone bit-exact emulator of the trigger network {export.name!r} (written by poetml firmware).

emulator.hpp        the network (integer weights, fixed-point formats), preprocessing and trigger
                    threshold, namespace {namespace}; needs poetml's header-only C++ core
score_features.cpp  reads a .npy float32 matrix (N, {export.n_inputs}) and prints per event
                    "event score fire y0 .. y{export.n_outputs - 1}" (%.17g: exact)

Rows of the .npy: {pre}.
Trigger: {rule}, threshold {trigger.threshold!r}.

Build (here):
  {BUILD_COMMAND}
Make the input from a POET or NanoAOD file:
  poetml features FILE.root -o feats.h5 [--config RUN.yaml]
  python -c "import h5py, numpy; numpy.save('feats.npy', h5py.File('feats.h5')['features'][:])"
Run:
  ./score_features feats.npy [--preprocessed] [--threads N] > scores.txt

The scores and trigger bits equal poetml's Python emulator (poetml.firmware.emulate) and the
firmware's C simulation bit for bit.
"""


def write_standalone(
    out_dir: str | Path,
    export: EmulatorExport,
    namespace: str,
    *,
    trigger: TriggerRule,
    preprocessing: Any = None,
) -> dict[str, Path]:
    """Write ``emulator.hpp``, ``score_features.cpp`` and ``README.txt`` into ``out_dir``
    (each file atomically); returns their paths by name (``header``, ``program``,
    ``readme``).  ``preprocessing``: the model's
    :class:`poetml.datasets.scalers.Preprocessing`, so the program starts from raw features."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "header": out / "emulator.hpp",
        "program": out / "score_features.cpp",
        "readme": out / "README.txt",
    }
    texts = {
        "header": cpp_header(export, namespace, preprocessing=preprocessing, trigger=trigger),
        "program": score_program(namespace, export.name),
        "readme": _readme(export, namespace, preprocessing, trigger),
    }
    for key, path in paths.items():
        write_text(path, texts[key])
    return paths
