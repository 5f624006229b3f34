// poetml C++ core: bit-exact emulation of hls4ml firmware (ap_fixed arithmetic in integers).
// Pure C++17, no Python: usable from ROOT macros or CMSSW modules, as CMSSW uses its L1
// emulators.
//
// Every value is a raw integer (int64) of a fixed-point Format: value = raw x 2^-frac, with
// frac = width - integer (negative frac and integer > width are allowed, as in ap_fixed).
// cast() reproduces the conversions of the ap_fixed library hls4ml ships (quantization
// AP_TRN, AP_RND, AP_RND_CONV, AP_TRN_ZERO, AP_RND_ZERO, AP_RND_MIN_INF, AP_RND_INF;
// overflow AP_WRAP, AP_SAT, AP_SAT_ZERO, AP_SAT_SYM); the layers follow hls4ml's nnet_utils
// templates: where they cast, into which type, and in which order they accumulate.  A
// Network is a list of Layers over numbered Tensors (a DAG in topological order); emulate()
// scores a batch of events on threads.  Anything that cannot be reproduced exactly (a width
// over 62 bits, an operation whose exact result would not fit in 63 bits, an unknown layer)
// is a std::invalid_argument naming it, never an approximation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "poetml/core.hpp"

// hot helpers are forced inline; on x86 the dense loops also get an AVX2 build chosen at run time
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define POETML_EMU_X86_DISPATCH 1
#define POETML_EMU_INLINE inline __attribute__((always_inline))
#else
#define POETML_EMU_INLINE inline
#endif

namespace poetml {
namespace emu {

#ifdef POETML_EMU_X86_DISPATCH
namespace detail {
/// Whether this CPU runs AVX2 (the dense, convolution and cast loops have AVX2 builds).
inline bool cpu_has_avx2() {
    static const bool yes = __builtin_cpu_supports("avx2");  // set once, read-only afterwards
    return yes;
}
}  // namespace detail
#endif

/// ap_fixed quantization (rounding) modes, applied when fraction bits are dropped.
enum class Quantization {
    trn,          ///< AP_TRN: toward minus infinity (floor)
    rnd,          ///< AP_RND: to nearest, halves toward plus infinity
    rnd_conv,     ///< AP_RND_CONV: to nearest, halves to even
    trn_zero,     ///< AP_TRN_ZERO: toward zero
    rnd_zero,     ///< AP_RND_ZERO: to nearest, halves toward zero
    rnd_min_inf,  ///< AP_RND_MIN_INF: to nearest, halves toward minus infinity
    rnd_inf,      ///< AP_RND_INF: to nearest, halves away from zero
};

/// ap_fixed overflow modes, applied when the value leaves the type's range.
enum class Overflow {
    wrap,      ///< AP_WRAP: keep the low `width` bits (two's complement)
    sat,       ///< AP_SAT: clamp to [min, max]
    sat_zero,  ///< AP_SAT_ZERO: 0 when out of range
    sat_sym,   ///< AP_SAT_SYM: clamp to [-max, max] (signed, width > 1), else as AP_SAT
};

/// Largest width the emulator holds (raw values and exact intermediate results in int64).
constexpr int kMaxWidth = 62;

/// A fixed-point type: ap_fixed<width, integer, quantization, overflow> (or ap_ufixed when
/// not `is_signed`).  Raw values have frac() = width - integer fraction bits.
struct Format {
    int width = 16;                                  ///< total bits, 1..kMaxWidth
    int integer = 6;                                 ///< integer bits (sign included when signed)
    bool is_signed = true;                           ///< ap_fixed (true) or ap_ufixed (false)
    Quantization quantization = Quantization::trn;   ///< rounding when bits are dropped
    Overflow overflow = Overflow::wrap;              ///< what happens out of range

    /// Fraction bits (may be negative).
    int frac() const { return width - integer; }
    /// Smallest raw value.
    std::int64_t raw_min() const { return is_signed ? -(std::int64_t{1} << (width - 1)) : 0; }
    /// Largest raw value.
    std::int64_t raw_max() const {
        return is_signed ? (std::int64_t{1} << (width - 1)) - 1 : (std::int64_t{1} << width) - 1;
    }
};

/// Human-readable C++ spelling of a format, e.g. "ap_fixed<16,6,AP_RND_CONV,AP_SAT>".
inline std::string to_string(const Format& f) {
    static const char* q[] = {"AP_TRN", "AP_RND", "AP_RND_CONV", "AP_TRN_ZERO", "AP_RND_ZERO", "AP_RND_MIN_INF",
                              "AP_RND_INF"};
    static const char* o[] = {"AP_WRAP", "AP_SAT", "AP_SAT_ZERO", "AP_SAT_SYM"};
    return std::string(f.is_signed ? "ap_fixed<" : "ap_ufixed<") + std::to_string(f.width) + "," +
           std::to_string(f.integer) + "," + q[static_cast<int>(f.quantization)] + "," +
           o[static_cast<int>(f.overflow)] + ">";
}

/// Throws std::invalid_argument (naming `what`) unless 1 <= width <= kMaxWidth and the
/// fraction bits lie within +-512.
inline void validate(const Format& f, const std::string& what) {
    if (f.width < 1 || f.width > kMaxWidth)
        throw std::invalid_argument(what + ": width " + std::to_string(f.width) + " is outside [1, " +
                                    std::to_string(kMaxWidth) + "] (the emulator holds values in 64-bit integers)");
    if (f.frac() < -512 || f.frac() > 512)
        throw std::invalid_argument(what + ": " + std::to_string(f.frac()) + " fraction bits are outside [-512, 512]");
    if (static_cast<int>(f.quantization) < 0 || static_cast<int>(f.quantization) > 6)
        throw std::invalid_argument(what + ": unknown quantization mode " + std::to_string(static_cast<int>(f.quantization)));
    if (static_cast<int>(f.overflow) < 0 || static_cast<int>(f.overflow) > 3)
        throw std::invalid_argument(what + ": unknown overflow mode " + std::to_string(static_cast<int>(f.overflow)));
}

namespace detail {

/// Sign-extends the low `width` bits of `v` (width 1..63).
POETML_EMU_INLINE std::int64_t low_bits(std::uint64_t v, int width, bool is_signed) {
    const std::uint64_t mask = (std::uint64_t{1} << width) - 1;
    v &= mask;
    if (is_signed && (v >> (width - 1)) & 1) v |= ~mask;
    std::int64_t out;
    std::memcpy(&out, &v, sizeof out);
    return out;
}

}  // namespace detail

namespace detail {

/// Whether dropping fraction bits adds one LSB to the floor `floor_v`: `qb` is the first
/// dropped bit, `r` whether any later dropped bit is set, `neg` the source's sign.
POETML_EMU_INLINE bool round_up(Quantization q, std::int64_t floor_v, bool qb, bool r, bool neg) {
    switch (q) {
        case Quantization::trn: return false;
        case Quantization::rnd: return qb;
        case Quantization::rnd_conv: return qb && ((floor_v & 1) || r);
        case Quantization::trn_zero: return neg && (qb || r);
        case Quantization::rnd_zero: return qb && (neg || r);
        case Quantization::rnd_min_inf: return qb && r;
        case Quantization::rnd_inf: return qb && (!neg || r);
    }
    return false;
}

/// Brings the rounded value `q` into the range of `to` (when !fits, the value is beyond
/// +-2^62 with sign `neg` and `wrapped` holds its low 64 bits).
POETML_EMU_INLINE std::int64_t overflow(std::int64_t q, bool fits, std::uint64_t wrapped, bool neg, const Format& to,
                                           Overflow om) {
    const std::int64_t hi = to.raw_max();
    // AP_SAT_SYM (signed): the most negative value is out of range too (-max is the floor;
    // ap_fixed<1, I> keeps its only negative value)
    const std::int64_t lo =
        (om == Overflow::sat_sym && to.is_signed && to.width > 1) ? -hi : to.raw_min();
    const bool over = fits ? q > hi : !neg;
    const bool under = fits ? q < lo : neg;
    if (!over && !under) return q;
    switch (om) {
        case Overflow::wrap: return low_bits(fits ? static_cast<std::uint64_t>(q) : wrapped, to.width, to.is_signed);
        case Overflow::sat: return over ? hi : lo;
        case Overflow::sat_zero: return 0;
        case Overflow::sat_sym: return over ? hi : lo;
    }
    return q;
}

}  // namespace detail

namespace detail {

// cast() with the modes as separate arguments, so loops over one type can fix them at
// compile time (cast_n)
POETML_EMU_INLINE std::int64_t cast_modes(std::int64_t v, int frac_from, const Format& to, Quantization qm, Overflow om) {
    const int s = frac_from - to.frac();
    const bool neg = v < 0;
    if (s > 0) {
        std::int64_t floor_v;
        bool qb, r;
        if (s >= 64) {
            floor_v = neg ? -1 : 0;
            qb = neg;      // bit s-1 of the sign-extended value
            r = v != 0;    // any of bits 0..s-2 (they include bit 63 when s >= 65)
            if (s == 64) r = (static_cast<std::uint64_t>(v) & ((std::uint64_t{1} << 63) - 1)) != 0;
        } else {
            floor_v = v >> s;  // arithmetic shift: floor
            const std::uint64_t u = static_cast<std::uint64_t>(v);
            qb = (u >> (s - 1)) & 1;
            r = s > 1 && (u & ((std::uint64_t{1} << (s - 1)) - 1)) != 0;
        }
        // |floor_v| <= 2^62: adding one cannot overflow
        const std::int64_t q = floor_v + (round_up(qm, floor_v, qb, r, neg) ? 1 : 0);
        return overflow(q, true, 0, neg, to, om);
    }
    const int l = -s;
    if (v == 0) return 0;
    const std::uint64_t wrapped = l >= 64 ? 0 : static_cast<std::uint64_t>(v) << l;
    if (l >= 62) return overflow(0, false, wrapped, neg, to, om);
    const std::int64_t lim = std::int64_t{1} << (62 - l);
    const bool fits = v < lim && v >= -lim;
    return overflow(fits ? v * (std::int64_t{1} << l) : 0, fits, wrapped, neg, to, om);
}

// cast_loop for 0 < s < 63 dropped fraction bits: every rounded value fits in int64, and the
// overflow mode is a clamp, a select or a sign extension, so the loop has no branches.
template <Quantization Q, Overflow O, bool Relu>
POETML_EMU_INLINE void cast_shift(const std::int64_t* x, std::int64_t n, int s, std::int64_t lo, std::int64_t hi,
                                  int width, bool is_signed, std::int64_t* y) {
    const std::int64_t rmask = (std::int64_t{1} << (s - 1)) - 1;
    const std::uint64_t wmask = (std::uint64_t{1} << width) - 1;
    const std::uint64_t sbit = is_signed ? std::uint64_t{1} << (width - 1) : 0;
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t v = x[i];
        const std::int64_t floor_v = v >> s;
        const bool qb = (v >> (s - 1)) & 1;
        const bool r = (v & rmask) != 0;
        std::int64_t q = floor_v + static_cast<std::int64_t>(round_up(Q, floor_v, qb, r, v < 0));
        if constexpr (O == Overflow::sat || O == Overflow::sat_sym) {
            q = q > hi ? hi : q;
            q = q < lo ? lo : q;
        } else if constexpr (O == Overflow::sat_zero) {
            q = (q > hi || q < lo) ? 0 : q;
        } else {  // wrap: low `width` bits, sign-extended
            const std::uint64_t u = static_cast<std::uint64_t>(q) & wmask;
            q = static_cast<std::int64_t>(u ^ sbit) - static_cast<std::int64_t>(sbit);
        }
        y[i] = (Relu && v <= 0) ? 0 : q;
    }
}

#ifdef POETML_EMU_X86_DISPATCH
template <Quantization Q, Overflow O, bool Relu>
__attribute__((target("avx2"))) void cast_shift_avx2(const std::int64_t* x, std::int64_t n, int s, std::int64_t lo,
                                                     std::int64_t hi, int width, bool is_signed, std::int64_t* y) {
    cast_shift<Q, O, Relu>(x, n, s, lo, hi, width, is_signed, y);
}
#endif

template <Quantization Q, Overflow O, bool Relu>
void cast_loop(const std::int64_t* x, std::int64_t n, int frac_from, const Format& to, std::int64_t* y) {
    const int s = frac_from - to.frac();
    const std::int64_t hi = to.raw_max();
    const std::int64_t lo = (O == Overflow::sat_sym && to.is_signed && to.width > 1) ? -hi : to.raw_min();
    if (s > 0 && s < 63) {  // the common case, branch-free (vectorisable)
#ifdef POETML_EMU_X86_DISPATCH
        if (cpu_has_avx2()) return cast_shift_avx2<Q, O, Relu>(x, n, s, lo, hi, to.width, to.is_signed, y);
#endif
        return cast_shift<Q, O, Relu>(x, n, s, lo, hi, to.width, to.is_signed, y);
    }
    if (s <= 0 && s > -62) {
        const int l = -s;
        const std::int64_t lim = std::int64_t{1} << (62 - l);
        for (std::int64_t i = 0; i < n; ++i) {
            const std::int64_t v = x[i];
            std::int64_t q;
            if (v < lim && v >= -lim) {
                q = v * (std::int64_t{1} << l);
                if (q > hi || q < lo) q = overflow(q, true, 0, v < 0, to, O);
            } else {
                q = cast_modes(v, frac_from, to, Q, O);
            }
            y[i] = (Relu && v <= 0) ? 0 : q;
        }
        return;
    }
    for (std::int64_t i = 0; i < n; ++i) y[i] = (Relu && x[i] <= 0) ? 0 : cast_modes(x[i], frac_from, to, Q, O);
}

template <Quantization Q, bool Relu>
void cast_loop_o(const std::int64_t* x, std::int64_t n, int frac_from, const Format& to, std::int64_t* y) {
    switch (to.overflow) {
        case Overflow::wrap: return cast_loop<Q, Overflow::wrap, Relu>(x, n, frac_from, to, y);
        case Overflow::sat: return cast_loop<Q, Overflow::sat, Relu>(x, n, frac_from, to, y);
        case Overflow::sat_zero: return cast_loop<Q, Overflow::sat_zero, Relu>(x, n, frac_from, to, y);
        case Overflow::sat_sym: return cast_loop<Q, Overflow::sat_sym, Relu>(x, n, frac_from, to, y);
    }
}

template <bool Relu>
void cast_loop_q(const std::int64_t* x, std::int64_t n, int frac_from, const Format& to, std::int64_t* y) {
    switch (to.quantization) {
        case Quantization::trn: return cast_loop_o<Quantization::trn, Relu>(x, n, frac_from, to, y);
        case Quantization::rnd: return cast_loop_o<Quantization::rnd, Relu>(x, n, frac_from, to, y);
        case Quantization::rnd_conv: return cast_loop_o<Quantization::rnd_conv, Relu>(x, n, frac_from, to, y);
        case Quantization::trn_zero: return cast_loop_o<Quantization::trn_zero, Relu>(x, n, frac_from, to, y);
        case Quantization::rnd_zero: return cast_loop_o<Quantization::rnd_zero, Relu>(x, n, frac_from, to, y);
        case Quantization::rnd_min_inf: return cast_loop_o<Quantization::rnd_min_inf, Relu>(x, n, frac_from, to, y);
        case Quantization::rnd_inf: return cast_loop_o<Quantization::rnd_inf, Relu>(x, n, frac_from, to, y);
    }
}

}  // namespace detail

/// Converts raw value `v` with `frac_from` fraction bits (any int64: an exact intermediate
/// result) into a raw value of `to`, as ap_fixed's converting constructor does: drop fraction
/// bits with `to.quantization`, then bring the rounded value into range with `to.overflow`.
inline std::int64_t cast(std::int64_t v, int frac_from, const Format& to) {
    return detail::cast_modes(v, frac_from, to, to.quantization, to.overflow);
}

/// cast() of `n` values `x` into `y` (which may be `x`); with `relu`, values <= 0 give 0.
inline void cast_n(const std::int64_t* x, std::int64_t n, int frac_from, const Format& to, std::int64_t* y,
                   bool relu = false) {
    if (relu) detail::cast_loop_q<true>(x, n, frac_from, to, y);
    else detail::cast_loop_q<false>(x, n, frac_from, to, y);
}

/// Converts a double into a raw value of `to` exactly as ap_fixed's constructor from double
/// does (the double's exact binary value, then cast()).  `x` must be finite.  `scale` must be
/// 2^to.frac() (see scale_of()).
inline std::int64_t from_double(double x, const Format& to, double scale) {
    if (x == 0.0) return 0;
    const double y = x * scale;  // exact unless it leaves the normal range (checked below)
    const double ay = std::fabs(y);
    if (ay < 4611686018427387904.0 && ay >= 0x1p-960) {  // 2^62; far from subnormals
        const double fl = std::floor(y);
        const double rem = y - fl;  // exact: fraction bits of y, in [0, 1)
        const auto floor_v = static_cast<std::int64_t>(fl);
        const bool qb = rem >= 0.5;
        const bool r = qb ? rem > 0.5 : rem > 0.0;
        const bool neg = x < 0;
        const std::int64_t q = floor_v + (detail::round_up(to.quantization, floor_v, qb, r, neg) ? 1 : 0);
        return detail::overflow(q, true, 0, neg, to, to.overflow);
    }
    int e = 0;
    const double m = std::frexp(x, &e);  // x = m 2^e, 0.5 <= |m| < 1
    const auto mant = static_cast<std::int64_t>(std::ldexp(m, 53));  // exact, |mant| < 2^53
    return cast(mant, 53 - e, to);
}

/// 2^frac as a double (frac within +-512, as validate() requires).
inline double scale_of(int frac) { return std::ldexp(1.0, frac); }

/// Converts a double into a raw value of `to` as ap_fixed's constructor from double does.
inline std::int64_t from_double(double x, const Format& to) { return from_double(x, to, scale_of(to.frac())); }

/// The value of raw `v` with `frac` fraction bits as a double (exact when |v| < 2^53).
inline double to_double(std::int64_t v, int frac) { return std::ldexp(static_cast<double>(v), -frac); }

/// A tensor of the network: its shape (per event, channels last) and fixed-point format.
struct Tensor {
    std::string name;                 ///< for error messages
    std::vector<std::int64_t> shape;  ///< per-event shape, e.g. {57} or {32, 32, 2}
    Format format;                    ///< fixed-point type of every element
    /// Elements per event.
    std::int64_t size() const {
        std::int64_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }
};

/// The operations hls4ml's nnet_utils compute, one per layer kind.
enum class Op {
    dense,         ///< nnet::dense_latency: products and bias cast to accum, summed in input order, cast to output
    conv2d,        ///< nnet::conv_2d_cl: the dense kernel on every (kh, kw, c) window, channels last
    relu,          ///< nnet::relu: x > 0 ? cast(x) : 0
    linear,        ///< nnet::linear, Reshape/Flatten copies, quantizer-only layers: cast(x)
    max_pool2d,    ///< nnet::pooling2d_cl (max): the window maximum, cast to output
    batchnorm,     ///< nnet::normalize: cast(x * scale + bias), scale/bias per channel (i % n)
    upsampling2d,  ///< nnet::resize_nearest: each pixel repeated (factors given by the shapes)
    zero_pad2d,    ///< nnet::zeropad2d_cl: zeros around the image, copies inside
    add,           ///< nnet::add: cast(a + b) (exact sum)
    subtract,      ///< nnet::subtract: cast(a - b)
    multiply,      ///< nnet::multiply: cast(a * b)
    concatenate,   ///< nnet::concatenate (last axis): copies, cast to output
};

/// Parses an Op name ("dense", "conv2d", ...); std::invalid_argument naming it otherwise.
inline Op op_from_string(const std::string& s) {
    static const std::pair<const char*, Op> names[] = {
        {"dense", Op::dense},           {"conv2d", Op::conv2d},         {"relu", Op::relu},
        {"linear", Op::linear},         {"max_pool2d", Op::max_pool2d}, {"batchnorm", Op::batchnorm},
        {"upsampling2d", Op::upsampling2d}, {"zero_pad2d", Op::zero_pad2d}, {"add", Op::add},
        {"subtract", Op::subtract},     {"multiply", Op::multiply},     {"concatenate", Op::concatenate}};
    for (const auto& [n, op] : names)
        if (s == n) return op;
    std::string valid;
    for (const auto& [n, op] : names) valid += std::string(valid.empty() ? "" : ", ") + n;
    throw std::invalid_argument("operation '" + s + "' is not supported by the emulator; supported: " + valid);
}

/// One layer: reads `inputs` tensors, writes the `output` tensor (indices into
/// Network::tensors).  Dense/conv2d: `weights` raw (n_in x n_out, input index major, as
/// hls4ml stores them; conv2d n_in = kh x kw x channels), `bias` raw (n_out), each with its
/// fraction bits, and `accum` the accumulator type.  batchnorm: `weights` = scale, `bias`
/// (both of length n, applied to element i as index i % n).  Pooling/conv: `kernel` {kh, kw},
/// `stride` {sh, sw} (valid padding: hls4ml pads with a zero_pad2d layer).  zero_pad2d:
/// `pad` {top, left} (the output shape gives the rest).
struct Layer {
    std::string name;                 ///< hls4ml layer name, for error messages
    Op op = Op::linear;               ///< what it computes
    std::vector<int> inputs;          ///< input tensor indices (1, or 2 for merges)
    int output = -1;                  ///< output tensor index
    std::vector<std::int64_t> weights;  ///< raw weights (or batchnorm scale)
    int weight_frac = 0;              ///< fraction bits of `weights`
    int weight_width = 0;             ///< bits of `weights` (for the exactness checks)
    std::vector<std::int64_t> bias;   ///< raw biases
    int bias_frac = 0;                ///< fraction bits of `bias`
    Format accum;                     ///< accumulator type (dense, conv2d)
    std::vector<int> kernel;          ///< {kh, kw}
    std::vector<int> stride;          ///< {sh, sw}
    std::vector<int> pad;             ///< {top, left}
};

/// A network: tensors, layers in execution order, which tensor the events enter and which
/// one is the output.  Build it, then call prepare() (emulate() does) to check it.
struct Network {
    std::vector<Tensor> tensors;  ///< every tensor, the input included
    std::vector<Layer> layers;    ///< in topological order
    int input = 0;                ///< tensor the events' values are converted into
    int output = 0;               ///< tensor returned per event

    /// Checks shapes, formats, indices and that every exact intermediate fits in int64;
    /// precomputes the fast paths.  std::invalid_argument naming the layer otherwise.
    void prepare();

    /// Per dense/conv layer: accumulate modulo 2^32 (1; 3: with 16-bit inputs and weights),
    /// modulo 2^64 (2; 4: over the non-zero weights only), or step by step (0).
    std::vector<int> fast;
    /// Per dense/conv layer: weights shifted into accumulator units, modulo 2^32 (fast path 1).
    std::vector<std::vector<std::uint32_t>> fast_weights32;
    /// Per dense/conv layer: weights shifted into accumulator units, modulo 2^64 (fast path 2).
    std::vector<std::vector<std::uint64_t>> fast_weights64;
    /// Per dense/conv layer: weights shifted into accumulator units, as int16 (fast path 3).
    std::vector<std::vector<std::int16_t>> fast_weights16;
    /// Sparse weights (compressed rows over inputs) of fast path 4.
    struct Sparse {
        std::vector<std::int64_t> row;   ///< n_in + 1 offsets into col/val
        std::vector<std::int64_t> col;   ///< output index of each non-zero weight
        std::vector<std::uint64_t> val;  ///< shifted weight, modulo 2^64
    };
    /// Per dense/conv layer: its sparse weights (fast path 4).
    std::vector<Sparse> sparse;
    /// Per conv2d layer on a 32-bit ring (paths 1 and 3): shifted weights modulo 2^32, [tap][filter].
    std::vector<std::vector<std::uint32_t>> conv_weights32;
    /// Per dense/conv layer: biases cast into the accumulator type.
    std::vector<std::vector<std::int64_t>> acc_bias;
    bool prepared = false;
};

namespace detail {

inline int bits_of(std::int64_t v) {  // bits of |v| (0 for 0)
    std::uint64_t a = v < 0 ? static_cast<std::uint64_t>(-(v + 1)) + 1 : static_cast<std::uint64_t>(v);
    int b = 0;
    while (a) {
        ++b;
        a >>= 1;
    }
    return b;
}

inline int max_bits(const std::vector<std::int64_t>& v) {
    int b = 0;
    for (auto x : v) b = std::max(b, bits_of(x));
    return b;
}

[[noreturn]] inline void fail(const Layer& l, const std::string& what) {
    throw std::invalid_argument("layer '" + l.name + "': " + what);
}

inline std::string shape_str(const std::vector<std::int64_t>& s) {
    std::string out = "(";
    for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + ")";
}

}  // namespace detail

inline void Network::prepare() {
    using detail::fail;
    const int nt = static_cast<int>(tensors.size());
    if (nt == 0) throw std::invalid_argument("network has no tensors");
    for (const auto& t : tensors) {
        validate(t.format, "tensor '" + t.name + "'");
        if (t.shape.empty()) throw std::invalid_argument("tensor '" + t.name + "' has an empty shape");
        for (auto d : t.shape)
            if (d < 1) throw std::invalid_argument("tensor '" + t.name + "' has shape " + detail::shape_str(t.shape));
    }
    if (input < 0 || input >= nt || output < 0 || output >= nt)
        throw std::invalid_argument("network input/output tensor index out of range");
    std::vector<bool> ready(static_cast<std::size_t>(nt), false);
    ready[static_cast<std::size_t>(input)] = true;
    fast.assign(layers.size(), 0);
    fast_weights32.assign(layers.size(), {});
    fast_weights64.assign(layers.size(), {});
    fast_weights16.assign(layers.size(), {});
    sparse.assign(layers.size(), {});
    conv_weights32.assign(layers.size(), {});
    acc_bias.assign(layers.size(), {});
    for (std::size_t li = 0; li < layers.size(); ++li) {
        const Layer& l = layers[li];
        const std::size_t n_inputs = (l.op == Op::add || l.op == Op::subtract || l.op == Op::multiply ||
                                      l.op == Op::concatenate)
                                         ? 2
                                         : 1;
        if (l.inputs.size() != n_inputs)
            fail(l, "takes " + std::to_string(n_inputs) + " inputs, got " + std::to_string(l.inputs.size()));
        for (int i : l.inputs) {
            if (i < 0 || i >= nt) fail(l, "input tensor index " + std::to_string(i) + " out of range");
            if (!ready[static_cast<std::size_t>(i)])
                fail(l, "input tensor '" + tensors[static_cast<std::size_t>(i)].name +
                            "' is not computed before it (layers must be in topological order)");
        }
        if (l.output < 0 || l.output >= nt) fail(l, "output tensor index out of range");
        ready[static_cast<std::size_t>(l.output)] = true;
        const Tensor& in = tensors[static_cast<std::size_t>(l.inputs[0])];
        const Tensor& out = tensors[static_cast<std::size_t>(l.output)];
        const std::int64_t n_in = in.size(), n_out = out.size();
        switch (l.op) {
            case Op::dense:
            case Op::conv2d: {
                validate(l.accum, "layer '" + l.name + "' accumulator");
                std::int64_t k_in = n_in, k_out = n_out, pixels = 1;
                if (l.op == Op::conv2d) {
                    if (in.shape.size() != 3 || out.shape.size() != 3) fail(l, "conv2d needs (h, w, c) tensors");
                    if (l.kernel.size() != 2 || l.stride.size() != 2) fail(l, "conv2d needs kernel and stride {h, w}");
                    if (l.kernel[0] < 1 || l.kernel[1] < 1 || l.stride[0] < 1 || l.stride[1] < 1)
                        fail(l, "kernel and stride must be >= 1");
                    if ((in.shape[0] - l.kernel[0]) / l.stride[0] + 1 != out.shape[0] ||
                        (in.shape[1] - l.kernel[1]) / l.stride[1] + 1 != out.shape[1] || in.shape[0] < l.kernel[0] ||
                        in.shape[1] < l.kernel[1])
                        fail(l, "output shape " + detail::shape_str(out.shape) + " is not the valid convolution of " +
                                    detail::shape_str(in.shape));
                    k_in = std::int64_t{l.kernel[0]} * l.kernel[1] * in.shape[2];
                    k_out = out.shape[2];
                    pixels = out.shape[0] * out.shape[1];
                }
                (void)pixels;
                if (static_cast<std::int64_t>(l.weights.size()) != k_in * k_out)
                    fail(l, std::to_string(l.weights.size()) + " weights for " + std::to_string(k_in) + " x " +
                                std::to_string(k_out));
                if (static_cast<std::int64_t>(l.bias.size()) != k_out)
                    fail(l, std::to_string(l.bias.size()) + " biases for " + std::to_string(k_out) + " outputs");
                const int wbits = std::max(l.weight_width, detail::max_bits(l.weights) + 1);
                const int pbits = in.format.width + wbits;  // |x w| < 2^pbits
                if (pbits > 62)
                    fail(l, "products of " + to_string(in.format) + " and " + std::to_string(wbits) +
                                "-bit weights need " + std::to_string(pbits) + " bits (more than 62)");
                const int pfrac = in.format.frac() + l.weight_frac;
                auto& ab = acc_bias[li];
                for (auto b : l.bias) ab.push_back(cast(b, l.bias_frac, l.accum));
                // products are exact in the accumulator's units and the accumulator wraps:
                // the sum can run modulo 2^32 or 2^64 (a ring) and wrap once at the end
                // weights that are all multiples of 2^k (k trailing zero bits) give products
                // on a grid k bits coarser: exact in an accumulator with fewer fraction bits
                int k = 62;
                for (auto w : l.weights) {
                    if (w == 0) continue;
                    int z = 0;
                    while (z < 62 && ((w >> z) & 1) == 0) ++z;
                    k = std::min(k, z);
                }
                if (k == 62) k = 0;  // all zero
                const int sh = l.accum.frac() - (pfrac - k);
                if (l.accum.overflow == Overflow::wrap && sh >= 0 && sh < 62) {
                    fast[li] = l.accum.width <= 32 ? 1 : 2;
                    // 16-bit inputs and shifted weights: exact 32-bit products (pmaddwd-friendly)
                    bool narrow = fast[li] == 1 && in.format.width <= (in.format.is_signed ? 16 : 15) && sh < 16;
                    if (narrow) {
                        for (auto w : l.weights) {
                            const std::int64_t wk = w >> k;  // wk x 2^sh within int16, checked without overflow
                            narrow = narrow && wk >= (std::int64_t{-32768} >> sh) && wk <= (std::int64_t{32767} >> sh);
                        }
                    }
                    if (narrow) fast[li] = 3;
                    // mostly zero weights (masks, pruned layers): only the non-zero products
                    std::size_t nnz = 0;
                    for (auto w : l.weights) nnz += w != 0;
                    if (nnz * 8 < l.weights.size()) fast[li] = 4;
                    fast_weights16[li].clear();
                    for (auto w : l.weights) {
                        const std::uint64_t u = static_cast<std::uint64_t>(w >> k) << sh;
                        if (fast[li] == 3) fast_weights16[li].push_back(static_cast<std::int16_t>((w >> k) * (std::int64_t{1} << sh)));
                        else if (fast[li] == 1) fast_weights32[li].push_back(static_cast<std::uint32_t>(u));
                        else fast_weights64[li].push_back(u);
                    }
                    if (l.op == Op::conv2d && (fast[li] == 1 || fast[li] == 3) && l.stride[1] == 1) {
                        for (auto w : l.weights)
                            conv_weights32[li].push_back(
                                static_cast<std::uint32_t>(static_cast<std::uint64_t>(w >> k) << sh));
                    }
                    if (fast[li] == 4) {  // rows: per input, the (output, weight) pairs
                        const auto& fw = fast_weights64[li];
                        auto& sp = sparse[li];
                        sp.row.assign(1, 0);
                        for (std::int64_t i = 0; i < k_in; ++i) {
                            for (std::int64_t j = 0; j < k_out; ++j) {
                                const std::uint64_t w = fw[static_cast<std::size_t>(i * k_out + j)];
                                if (w) {
                                    sp.col.push_back(j);
                                    sp.val.push_back(w);
                                }
                            }
                            sp.row.push_back(static_cast<std::int64_t>(sp.col.size()));
                        }
                    }
                } else {
                    // step by step: product (exact) cast to accum, then each sum cast to accum
                    if (l.accum.width + 1 > 62) fail(l, "accumulator " + to_string(l.accum) + " is too wide");
                }
                break;
            }
            case Op::relu:
            case Op::linear:
                if (n_in != n_out) fail(l, "input and output sizes differ (" + std::to_string(n_in) + " vs " +
                                           std::to_string(n_out) + ")");
                break;
            case Op::max_pool2d:
                if (in.shape.size() != 3 || out.shape.size() != 3) fail(l, "pooling needs (h, w, c) tensors");
                if (l.kernel.size() != 2 || l.stride.size() != 2) fail(l, "pooling needs kernel and stride {h, w}");
                if (l.kernel[0] < 1 || l.kernel[1] < 1 || l.stride[0] < 1 || l.stride[1] < 1)
                    fail(l, "kernel and stride must be >= 1");
                if (in.shape[2] != out.shape[2] || (in.shape[0] - l.kernel[0]) / l.stride[0] + 1 != out.shape[0] ||
                    (in.shape[1] - l.kernel[1]) / l.stride[1] + 1 != out.shape[1])
                    fail(l, "output shape " + detail::shape_str(out.shape) + " is not the valid pooling of " +
                                detail::shape_str(in.shape));
                break;
            case Op::batchnorm: {
                if (l.weights.empty() || l.weights.size() != l.bias.size())
                    fail(l, "batchnorm needs as many scales as biases (and at least one)");
                if (n_in != n_out) fail(l, "input and output sizes differ");
                const int sbits = std::max(l.weight_width, detail::max_bits(l.weights) + 1);
                const int pfrac = in.format.frac() + l.weight_frac;
                const int f = std::max(pfrac, l.bias_frac);
                const int need = std::max(in.format.width + sbits + (f - pfrac),
                                          detail::max_bits(l.bias) + 1 + (f - l.bias_frac)) + 1;
                if (need > 62) fail(l, "x * scale + bias needs " + std::to_string(need) + " bits (more than 62)");
                break;
            }
            case Op::upsampling2d:
                if (in.shape.size() != 3 || out.shape.size() != 3 || in.shape[2] != out.shape[2] ||
                    out.shape[0] % in.shape[0] || out.shape[1] % in.shape[1])
                    fail(l, "upsampling from " + detail::shape_str(in.shape) + " to " + detail::shape_str(out.shape) +
                                " is not by integer factors");
                break;
            case Op::zero_pad2d:
                if (in.shape.size() != 3 || out.shape.size() != 3 || in.shape[2] != out.shape[2] || l.pad.size() != 2 ||
                    l.pad[0] < 0 || l.pad[1] < 0 || l.pad[0] + in.shape[0] > out.shape[0] ||
                    l.pad[1] + in.shape[1] > out.shape[1])
                    fail(l, "zero padding of " + detail::shape_str(in.shape) + " into " + detail::shape_str(out.shape) +
                                " with pad {top, left} does not fit");
                break;
            case Op::add:
            case Op::subtract:
            case Op::multiply: {
                const Tensor& in2 = tensors[static_cast<std::size_t>(l.inputs[1])];
                const std::int64_t n2 = in2.size();
                if (n_out != std::max(n_in, n2) || n_out % n_in || n_out % n2)
                    fail(l, "element counts " + std::to_string(n_in) + " and " + std::to_string(n2) +
                                " do not broadcast to " + std::to_string(n_out));
                const int need = l.op == Op::multiply
                                     ? in.format.width + in2.format.width
                                     : std::max(in.format.width + std::max(0, in2.format.frac() - in.format.frac()),
                                                in2.format.width + std::max(0, in.format.frac() - in2.format.frac())) +
                                           1;
                if (need > 62) fail(l, "the exact result needs " + std::to_string(need) + " bits (more than 62)");
                break;
            }
            case Op::concatenate: {
                const Tensor& in2 = tensors[static_cast<std::size_t>(l.inputs[1])];
                if (in.shape.size() != out.shape.size() || in2.shape.size() != out.shape.size())
                    fail(l, "concatenated tensors must have the output's rank");
                for (std::size_t d = 0; d + 1 < out.shape.size(); ++d)
                    if (in.shape[d] != out.shape[d] || in2.shape[d] != out.shape[d])
                        fail(l, "only the last axis may differ in a concatenation");
                if (in.shape.back() + in2.shape.back() != out.shape.back())
                    fail(l, "last axes do not add up to the output's");
                break;
            }
        }
    }
    if (!ready[static_cast<std::size_t>(output)]) throw std::invalid_argument("network output tensor is never computed");
    prepared = true;
}

namespace detail {


// acc[j] += x[i] * w[i][j] modulo 2^bits(U); P: the type the product is formed in (the
// 16-bit path multiplies int16 values exactly in int32).
template <class U, class P, class WT>
POETML_EMU_INLINE void ring_accumulate(const std::int64_t* x, std::int64_t n_in, const WT* w, std::int64_t n_out,
                                       U* acc) {
    for (std::int64_t i = 0; i < n_in; ++i) {
        const P xi = static_cast<P>(x[i]);
        if (xi == 0) continue;  // adds 0 modulo 2^k either way
        const WT* wr = w + i * n_out;
        for (std::int64_t j = 0; j < n_out; ++j) acc[j] += static_cast<U>(xi * static_cast<P>(wr[j]));
    }
}

#ifdef POETML_EMU_X86_DISPATCH
// The same loop compiled for AVX2 (8 lanes of 32 bits), chosen at run time when the CPU has it.
template <class U, class P, class WT>
__attribute__((target("avx2"))) void ring_accumulate_avx2(const std::int64_t* x, std::int64_t n_in, const WT* w,
                                                          std::int64_t n_out, U* acc) {
    ring_accumulate<U, P, WT>(x, n_in, w, n_out, acc);
}

#endif

// Dense kernel, fast path: sum modulo 2^32 (U = uint32) or 2^64 (U = uint64), then wrap to
// the accumulator width and cast to the output.  x: n_in raw inputs, w: n_in x n_out shifted
// weights, acc: n_out scratch.
template <class U, class P, class WT>
inline void dense_ring(const std::int64_t* x, std::int64_t n_in, const WT* w, const std::int64_t* b0,
                       std::int64_t n_out, U* acc, const Format& accum, const Format& out_f, std::int64_t* y) {
    for (std::int64_t j = 0; j < n_out; ++j) acc[j] = static_cast<U>(b0[j]);
#ifdef POETML_EMU_X86_DISPATCH
    if (cpu_has_avx2())
        ring_accumulate_avx2<U, P, WT>(x, n_in, w, n_out, acc);
    else
        ring_accumulate<U, P, WT>(x, n_in, w, n_out, acc);
#else
    ring_accumulate<U, P, WT>(x, n_in, w, n_out, acc);
#endif
    for (std::int64_t j = 0; j < n_out; ++j) y[j] = low_bits(static_cast<std::uint64_t>(acc[j]), accum.width, accum.is_signed);
    // the output type holds every accumulator value on the same grid (hls4ml's bit-exact
    // precisions make them equal): the cast is the identity
    if (out_f.frac() == accum.frac() && out_f.raw_max() >= accum.raw_max() && out_f.raw_min() <= accum.raw_min())
        return;
    cast_n(y, n_out, accum.frac(), out_f, y);
}

// One output row of a stride-1 convolution on a 32-bit ring: acc[f][ow] += x[c][row + a][ow + b] x
// w[a][b][c][f] over every tap; xp: the input planar (channel, row, column), modulo 2^32.
POETML_EMU_INLINE void conv_row(const std::uint32_t* xp, std::int64_t H, std::int64_t W, std::int64_t C,
                                std::int64_t row, int kh, int kw, const std::uint32_t* w, std::int64_t F,
                                std::int64_t OW, std::uint32_t* acc) {
    for (int a = 0; a < kh; ++a)
        for (int b = 0; b < kw; ++b)
            for (std::int64_t c = 0; c < C; ++c) {
                const std::uint32_t* xr = xp + (c * H + row + a) * W + b;
                const std::uint32_t* wt = w + ((std::int64_t{a} * kw + b) * C + c) * F;
                for (std::int64_t f = 0; f < F; ++f) {
                    const std::uint32_t wf = wt[f];
                    if (wf == 0) continue;
                    std::uint32_t* ar = acc + f * OW;
                    for (std::int64_t o = 0; o < OW; ++o) ar[o] += xr[o] * wf;
                }
            }
}

#ifdef POETML_EMU_X86_DISPATCH
__attribute__((target("avx2"))) inline void conv_row_avx2(const std::uint32_t* xp, std::int64_t H, std::int64_t W,
                                                          std::int64_t C, std::int64_t row, int kh, int kw,
                                                          const std::uint32_t* w, std::int64_t F, std::int64_t OW,
                                                          std::uint32_t* acc) {
    conv_row(xp, H, W, C, row, kh, kw, w, F, OW, acc);
}
#endif

// Dense kernel, general path: every product cast to accum, every partial sum cast to accum,
// in hls4ml's order (inputs ascending).
inline void dense_steps(const std::int64_t* x, std::int64_t n_in, const std::int64_t* w, int pfrac,
                        const std::int64_t* b0, std::int64_t n_out, std::int64_t* acc, const Format& accum,
                        const Format& out_f, std::int64_t* y) {
    const int f = accum.frac();
    for (std::int64_t j = 0; j < n_out; ++j) acc[j] = b0[j];
    for (std::int64_t i = 0; i < n_in; ++i) {
        const std::int64_t* wr = w + i * n_out;
        for (std::int64_t j = 0; j < n_out; ++j) acc[j] = cast(acc[j] + cast(x[i] * wr[j], pfrac, accum), f, accum);
    }
    for (std::int64_t j = 0; j < n_out; ++j) y[j] = cast(acc[j], f, out_f);
}

struct Scratch {
    std::vector<std::vector<std::int64_t>> t;  // one buffer per tensor
    std::vector<std::int64_t> window, acc64;
    std::vector<std::uint32_t> acc32, planar, conv_acc;
    std::vector<std::uint64_t> accu64;
};

inline void run_dense(const Network& net, std::size_t li, const std::int64_t* x, std::int64_t n_in, std::int64_t n_out,
                      const Format& in_f, const Format& out_f, Scratch& s, std::int64_t* y) {
    const Layer& l = net.layers[li];
    const std::int64_t* b0 = net.acc_bias[li].data();
    switch (net.fast[li]) {
        case 1:
            dense_ring<std::uint32_t, std::uint32_t>(x, n_in, net.fast_weights32[li].data(), b0, n_out, s.acc32.data(),
                                                     l.accum, out_f, y);
            break;
        case 2:
            dense_ring<std::uint64_t, std::uint64_t>(x, n_in, net.fast_weights64[li].data(), b0, n_out, s.accu64.data(),
                                                     l.accum, out_f, y);
            break;
        case 3:
            dense_ring<std::uint32_t, std::int32_t>(x, n_in, net.fast_weights16[li].data(), b0, n_out, s.acc32.data(),
                                                    l.accum, out_f, y);
            break;
        case 4: {
            const auto& sp = net.sparse[li];
            std::uint64_t* acc = s.accu64.data();
            for (std::int64_t j = 0; j < n_out; ++j) acc[j] = static_cast<std::uint64_t>(b0[j]);
            for (std::int64_t i = 0; i < n_in; ++i) {
                const std::uint64_t xi = static_cast<std::uint64_t>(x[i]);
                if (xi == 0) continue;
                for (std::int64_t k = sp.row[static_cast<std::size_t>(i)]; k < sp.row[static_cast<std::size_t>(i) + 1]; ++k)
                    acc[sp.col[static_cast<std::size_t>(k)]] += xi * sp.val[static_cast<std::size_t>(k)];
            }
            for (std::int64_t j = 0; j < n_out; ++j) y[j] = low_bits(acc[j], l.accum.width, l.accum.is_signed);
            cast_n(y, n_out, l.accum.frac(), out_f, y);
            break;
        }
        default:
            dense_steps(x, n_in, l.weights.data(), in_f.frac() + l.weight_frac, b0, n_out, s.acc64.data(), l.accum,
                        out_f, y);
    }
}

// Runs every layer on one event whose input tensor is already filled.
inline void run_event(const Network& net, Scratch& s) {
    for (std::size_t li = 0; li < net.layers.size(); ++li) {
        const Layer& l = net.layers[li];
        const Tensor& tin = net.tensors[static_cast<std::size_t>(l.inputs[0])];
        const Tensor& tout = net.tensors[static_cast<std::size_t>(l.output)];
        const std::int64_t* x = s.t[static_cast<std::size_t>(l.inputs[0])].data();
        std::int64_t* y = s.t[static_cast<std::size_t>(l.output)].data();
        const Format& fi = tin.format;
        const Format& fo = tout.format;
        const int ffi = fi.frac();
        const std::int64_t n_in = tin.size(), n_out = tout.size();
        switch (l.op) {
            case Op::dense:
                run_dense(net, li, x, n_in, n_out, fi, fo, s, y);
                break;
            case Op::conv2d: {
                if (!net.conv_weights32[li].empty()) {  // planar rows on a 32-bit ring, vectorised over columns
                    const std::int64_t H = tin.shape[0], W = tin.shape[1], C = tin.shape[2];
                    const std::int64_t OH = tout.shape[0], OW = tout.shape[1], F = tout.shape[2];
                    std::uint32_t* xp = s.planar.data();
                    for (std::int64_t h = 0; h < H; ++h)
                        for (std::int64_t w = 0; w < W; ++w)
                            for (std::int64_t c = 0; c < C; ++c)
                                xp[(c * H + h) * W + w] = static_cast<std::uint32_t>(x[(h * W + w) * C + c]);
                    const std::int64_t* b0 = net.acc_bias[li].data();
                    const std::uint32_t* wt = net.conv_weights32[li].data();
                    std::uint32_t* acc = s.conv_acc.data();
                    const bool identity = fo.frac() == l.accum.frac() && fo.raw_max() >= l.accum.raw_max() &&
                                          fo.raw_min() <= l.accum.raw_min();
                    for (std::int64_t oh = 0; oh < OH; ++oh) {
                        for (std::int64_t f = 0; f < F; ++f)
                            std::fill(acc + f * OW, acc + (f + 1) * OW, static_cast<std::uint32_t>(b0[f]));
                        const std::int64_t row = oh * l.stride[0];
#ifdef POETML_EMU_X86_DISPATCH
                        if (cpu_has_avx2())
                            conv_row_avx2(xp, H, W, C, row, l.kernel[0], l.kernel[1], wt, F, OW, acc);
                        else
                            conv_row(xp, H, W, C, row, l.kernel[0], l.kernel[1], wt, F, OW, acc);
#else
                        conv_row(xp, H, W, C, row, l.kernel[0], l.kernel[1], wt, F, OW, acc);
#endif
                        std::int64_t* yr = y + oh * OW * F;
                        for (std::int64_t ow = 0; ow < OW; ++ow)
                            for (std::int64_t f = 0; f < F; ++f)
                                yr[ow * F + f] = low_bits(acc[f * OW + ow], l.accum.width, l.accum.is_signed);
                        if (!identity) cast_n(yr, OW * F, l.accum.frac(), fo, yr);
                    }
                    break;
                }
                const std::int64_t W = tin.shape[1], C = tin.shape[2];
                const std::int64_t OH = tout.shape[0], OW = tout.shape[1], F = tout.shape[2];
                const int kh = l.kernel[0], kw = l.kernel[1];
                const std::int64_t k_in = std::int64_t{kh} * kw * C;
                std::int64_t* win = s.window.data();
                for (std::int64_t oh = 0; oh < OH; ++oh)
                    for (std::int64_t ow = 0; ow < OW; ++ow) {
                        std::int64_t k = 0;
                        for (int a = 0; a < kh; ++a) {
                            const std::int64_t* row = x + ((oh * l.stride[0] + a) * W + ow * l.stride[1]) * C;
                            for (std::int64_t bc = 0; bc < std::int64_t{kw} * C; ++bc) win[k++] = row[bc];
                        }
                        run_dense(net, li, win, k_in, F, fi, fo, s, y + (oh * OW + ow) * F);
                    }
                break;
            }
            case Op::relu:
                cast_n(x, n_out, ffi, fo, y, true);
                break;
            case Op::linear:
                cast_n(x, n_out, ffi, fo, y);
                break;
            case Op::max_pool2d: {
                const std::int64_t W = tin.shape[1], C = tin.shape[2];
                const std::int64_t OH = tout.shape[0], OW = tout.shape[1];
                for (std::int64_t oh = 0; oh < OH; ++oh)
                    for (std::int64_t ow = 0; ow < OW; ++ow)
                        for (std::int64_t c = 0; c < C; ++c) {
                            std::int64_t m = x[((oh * l.stride[0]) * W + ow * l.stride[1]) * C + c];
                            for (int a = 0; a < l.kernel[0]; ++a)
                                for (int b = 0; b < l.kernel[1]; ++b)
                                    m = std::max(m, x[((oh * l.stride[0] + a) * W + ow * l.stride[1] + b) * C + c]);
                            y[(oh * OW + ow) * C + c] = cast(m, ffi, fo);
                        }
                break;
            }
            case Op::batchnorm: {
                const std::int64_t n = static_cast<std::int64_t>(l.weights.size());
                const int pfrac = ffi + l.weight_frac;
                const int f = std::max(pfrac, l.bias_frac);
                for (std::int64_t i = 0; i < n_out; ++i) {
                    const std::int64_t p = x[i] * l.weights[static_cast<std::size_t>(i % n)];
                    const std::int64_t v = p * (std::int64_t{1} << (f - pfrac)) +
                                           l.bias[static_cast<std::size_t>(i % n)] * (std::int64_t{1} << (f - l.bias_frac));
                    y[i] = cast(v, f, fo);
                }
                break;
            }
            case Op::upsampling2d: {
                const std::int64_t H = tin.shape[0], W = tin.shape[1], C = tin.shape[2];
                const std::int64_t OH = tout.shape[0], OW = tout.shape[1];
                const std::int64_t fh = OH / H, fw = OW / W;
                for (std::int64_t oh = 0; oh < OH; ++oh)
                    for (std::int64_t ow = 0; ow < OW; ++ow)
                        for (std::int64_t c = 0; c < C; ++c)
                            y[(oh * OW + ow) * C + c] = cast(x[((oh / fh) * W + ow / fw) * C + c], ffi, fo);
                break;
            }
            case Op::zero_pad2d: {
                const std::int64_t H = tin.shape[0], W = tin.shape[1], C = tin.shape[2];
                const std::int64_t OW = tout.shape[1];
                std::fill(y, y + n_out, std::int64_t{0});
                for (std::int64_t h = 0; h < H; ++h)
                    for (std::int64_t w = 0; w < W; ++w)
                        for (std::int64_t c = 0; c < C; ++c)
                            y[((h + l.pad[0]) * OW + w + l.pad[1]) * C + c] = cast(x[(h * W + w) * C + c], ffi, fo);
                break;
            }
            case Op::add:
            case Op::subtract:
            case Op::multiply: {
                const Tensor& t2 = net.tensors[static_cast<std::size_t>(l.inputs[1])];
                const std::int64_t* x2 = s.t[static_cast<std::size_t>(l.inputs[1])].data();
                const std::int64_t n2 = t2.size();
                const int f2 = t2.format.frac();
                if (l.op == Op::multiply) {
                    if (n_in == n_out && n2 == n_out)
                        for (std::int64_t i = 0; i < n_out; ++i) y[i] = x[i] * x2[i];
                    else
                        for (std::int64_t i = 0; i < n_out; ++i) y[i] = x[i % n_in] * x2[i % n2];
                    cast_n(y, n_out, ffi + f2, fo, y);
                } else {
                    const int f = std::max(ffi, f2);
                    const std::int64_t m1 = std::int64_t{1} << (f - ffi), m2 = std::int64_t{1} << (f - f2);
                    const std::int64_t sign = l.op == Op::add ? 1 : -1;
                    for (std::int64_t i = 0; i < n_out; ++i) y[i] = x[i % n_in] * m1 + sign * (x2[i % n2] * m2);
                    cast_n(y, n_out, f, fo, y);
                }
                break;
            }
            case Op::concatenate: {
                const Tensor& t2 = net.tensors[static_cast<std::size_t>(l.inputs[1])];
                const std::int64_t* x2 = s.t[static_cast<std::size_t>(l.inputs[1])].data();
                const std::int64_t c1 = tin.shape.back(), c2 = t2.shape.back();
                const std::int64_t rows = n_in / c1;
                const int f2 = t2.format.frac();
                for (std::int64_t r = 0; r < rows; ++r) {
                    for (std::int64_t c = 0; c < c1; ++c) y[r * (c1 + c2) + c] = cast(x[r * c1 + c], ffi, fo);
                    for (std::int64_t c = 0; c < c2; ++c) y[r * (c1 + c2) + c1 + c] = cast(x2[r * c2 + c], f2, fo);
                }
                break;
            }
        }
    }
}

}  // namespace detail

/// Scores `n_events` events: `x` holds n_events x (input tensor size) doubles (row-major, C
/// order of the input shape, as hls4ml flattens it), each converted into the input format as
/// ap_fixed does from double; `y` receives n_events x (output tensor size) doubles (exact:
/// raw x 2^-frac) and, when `raw` is not null, the raw integers.  Runs on `n_threads` threads
/// (0: all cores).  Non-finite inputs are a std::invalid_argument naming the event; call
/// check_inputs() first to validate without side effects.
inline void emulate(Network& net, const double* x, std::int64_t n_events, double* y, std::int64_t* raw,
                    int n_threads) {
    if (!net.prepared) net.prepare();
    const Tensor& tin = net.tensors[static_cast<std::size_t>(net.input)];
    const Tensor& tout = net.tensors[static_cast<std::size_t>(net.output)];
    const std::int64_t n_in = tin.size(), n_out = tout.size();
    const double out_scale = scale_of(-tout.format.frac());
    const double in_scale = scale_of(tin.format.frac());
    const Network& cnet = net;
    parallel_for(n_events, resolve_threads(n_threads), [&](std::int64_t begin, std::int64_t end, std::int64_t) {
        detail::Scratch s;
        s.t.resize(cnet.tensors.size());
        std::size_t win = 0, acc = 0;
        for (std::size_t i = 0; i < cnet.tensors.size(); ++i) {
            s.t[i].assign(static_cast<std::size_t>(cnet.tensors[i].size()), 0);
            acc = std::max(acc, static_cast<std::size_t>(cnet.tensors[i].size()));
        }
        for (const auto& l : cnet.layers) win = std::max(win, l.weights.size());
        s.window.assign(win + 1, 0);
        s.acc64.assign(acc + 1, 0);
        s.acc32.assign(acc + 1, 0);
        s.planar.assign(acc + 1, 0);
        s.conv_acc.assign(acc + 1, 0);
        s.accu64.assign(acc + 1, 0);
        std::int64_t* xin = s.t[static_cast<std::size_t>(cnet.input)].data();
        const std::int64_t* xout = s.t[static_cast<std::size_t>(cnet.output)].data();
        for (std::int64_t e = begin; e < end; ++e) {
            const double* xe = x + e * n_in;
            for (std::int64_t i = 0; i < n_in; ++i) xin[i] = from_double(xe[i], tin.format, in_scale);
            detail::run_event(cnet, s);
            for (std::int64_t j = 0; j < n_out; ++j) {
                y[e * n_out + j] = static_cast<double>(xout[j]) * out_scale;  // exact: |raw| < 2^53
                if (raw) raw[e * n_out + j] = xout[j];
            }
        }
    });
}

/// Throws std::invalid_argument naming the first event and element of `x` (n_events x
/// n_values) that is not finite.
inline void check_inputs(const double* x, std::int64_t n_events, std::int64_t n_values) {
    for (std::int64_t e = 0; e < n_events; ++e)
        for (std::int64_t i = 0; i < n_values; ++i)
            if (!std::isfinite(x[e * n_values + i]))
                throw std::invalid_argument("input of event " + std::to_string(e) + ", element " + std::to_string(i) +
                                            " is not finite (" + std::to_string(x[e * n_values + i]) + ")");
}

}  // namespace emu
}  // namespace poetml
