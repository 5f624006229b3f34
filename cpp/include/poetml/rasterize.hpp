// poetml C++ core: event images (eta-phi grids, one channel per object collection).
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define POETML_STREAM_STORES 1
#endif

#include "poetml/core.hpp"

namespace poetml {

/// How deposits are spread over pixels.
enum class ImageMode {
    histogram,  ///< pT summed in the object's pixel
    gaussian,   ///< pT spread as a truncated, normalised Gaussian of `sigma` pixels
    glyph,      ///< pT spread evenly over a ring whose radius grows with ln pT
};

/// Image geometry and options (mirrors poetml.ImageSpec).
///
/// Binning (identical in poetml._reference): with float32 inputs converted to double,
///   u = (eta - eta_min) * (n_eta / (eta_max - eta_min)),  ix = floor(u),
///   v = (phi + pi) * (n_phi / (2 pi)),                    iy = floor(v) wrapped into [0, n_phi).
/// An object with ix outside [0, n_eta) is dropped and counted.  Pixel centres sit at
/// (ix + 0.5, iy + 0.5) in these units.
///
/// Post-processing per event, in this order: (1) saturation (if saturate_bits > 0):
/// value = min(floor(value / lsb_gev), 2^bits - 1), (2) log1p, (3) normalize: divide by the
/// event's sum over all pixels and channels (events summing to 0 stay 0).
struct ImageSpec {
    std::int64_t n_eta = 32;
    std::int64_t n_phi = 32;
    double eta_min = -2.5;
    double eta_max = 2.5;
    ImageMode mode = ImageMode::histogram;
    double sigma = 1.0;                  ///< gaussian: width in pixels
    double glyph_radius0 = 0.5;          ///< glyph: radius at pT = 1 GeV [pixels]
    double glyph_radius_per_log = 0.5;   ///< glyph: radius growth per unit ln(pT / GeV)
    double glyph_width = 0.5;            ///< glyph: ring line width [pixels], charge <= 0
    double glyph_width_positive = 1.0;   ///< glyph: ring line width [pixels], charge > 0
    bool log1p = false;
    bool normalize = false;
    int saturate_bits = 0;               ///< 0: no saturation
    double lsb_gev = 0.5;
};

/// One image channel: the objects drawn in it and their selection.
struct Channel {
    Objects objects;
    Cuts cuts;
};

/// Throws std::invalid_argument when `spec` is not usable, naming the offending values.
inline void validate(const ImageSpec& spec) {
    auto bad = [](const std::string& what) { throw std::invalid_argument("ImageSpec: " + what); };
    auto str = [](double v) {
        std::ostringstream s;
        s << v;
        return s.str();
    };
    if (spec.n_eta <= 0 || spec.n_phi <= 0)
        bad("n_eta and n_phi must be positive, got " + std::to_string(spec.n_eta) + " x " +
            std::to_string(spec.n_phi));
    if (!(spec.eta_max > spec.eta_min) || !std::isfinite(spec.eta_min) || !std::isfinite(spec.eta_max))
        bad("eta_max must be larger than eta_min (both finite), got eta_min = " + str(spec.eta_min) +
            ", eta_max = " + str(spec.eta_max));
    if (spec.mode == ImageMode::gaussian && !(spec.sigma > 0.0 && spec.sigma <= 1.0e3))
        bad("sigma must be in (0, 1000] pixels, got " + str(spec.sigma));
    if (spec.mode == ImageMode::glyph &&
        !(spec.glyph_width >= 0.0 && spec.glyph_width_positive >= 0.0 &&
          std::isfinite(spec.glyph_radius0) && std::isfinite(spec.glyph_radius_per_log) &&
          spec.glyph_width <= 1.0e3 && spec.glyph_width_positive <= 1.0e3))
        bad("glyph widths must be in [0, 1000] and radii finite, got glyph_width = " + str(spec.glyph_width) +
            ", glyph_width_positive = " + str(spec.glyph_width_positive) + ", glyph_radius0 = " +
            str(spec.glyph_radius0) + ", glyph_radius_per_log = " + str(spec.glyph_radius_per_log));
    if (spec.saturate_bits < 0 || spec.saturate_bits > 31)
        bad("saturate_bits must be in [1, 31] (0: off), got " + std::to_string(spec.saturate_bits));
    if (spec.saturate_bits > 0 && !(spec.lsb_gev > 0.0 && std::isfinite(spec.lsb_gev)))
        bad("lsb_gev must be positive and finite, got " + str(spec.lsb_gev));
}

namespace detail {

/// Binning of one object: own pixel and fractional position inside it.
struct Bin {
    std::int64_t ix, iy;  ///< own pixel
    double fu, fv;        ///< position inside the pixel, in [0, 1)
};

struct Binner {
    double eta_min, eta_scale, phi_scale, n_phi_d;
    std::int64_t n_eta, n_phi;

    explicit Binner(const ImageSpec& s)
        : eta_min(s.eta_min),
          eta_scale(static_cast<double>(s.n_eta) / (s.eta_max - s.eta_min)),
          phi_scale(static_cast<double>(s.n_phi) / (2.0 * kPi)),
          n_phi_d(static_cast<double>(s.n_phi)),
          n_eta(s.n_eta),
          n_phi(s.n_phi) {}

    /// False when the object falls outside [0, n_eta) in eta.
    bool bin(float eta, float phi, Bin& b) const {
        const double u = (static_cast<double>(eta) - eta_min) * eta_scale;
        if (!(u >= 0.0 && u < static_cast<double>(n_eta))) return false;
        const double fu = std::floor(u);
        const double v = (static_cast<double>(phi) + kPi) * phi_scale;
        double fy = std::floor(v);
        b.fu = u - fu;
        b.fv = v - fy;
        if (!(fy >= 0.0 && fy < n_phi_d)) fy -= n_phi_d * std::floor(fy / n_phi_d);
        b.ix = static_cast<std::int64_t>(fu);
        b.iy = static_cast<std::int64_t>(fy);
        if (b.iy >= n_phi || b.iy < 0) b.iy = 0;  // unreachable for |phi| < 1e15
        return true;
    }

    std::int64_t wrap_phi(std::int64_t j) const {
        j %= n_phi;
        return j < 0 ? j + n_phi : j;
    }
};

/// Candidate pixels around an object: rows ix-R..ix+R inside the image, columns iy+dj for
/// dj in [lo, hi] wrapped in phi; each pixel at most once.
struct Window {
    std::int64_t di_lo, di_hi, dj_lo, dj_hi;
};

inline Window window(const Bin& b, std::int64_t R, std::int64_t n_eta, std::int64_t n_phi) {
    Window w{};
    w.di_lo = std::max<std::int64_t>(-R, -b.ix);
    w.di_hi = std::min<std::int64_t>(R, n_eta - 1 - b.ix);
    if (2 * R + 1 < n_phi) {
        w.dj_lo = -R;
        w.dj_hi = R;
    } else {
        w.dj_lo = -(n_phi / 2);
        w.dj_hi = w.dj_lo + n_phi - 1;
    }
    return w;
}

struct Scratch {
    std::vector<std::int64_t> pix;
    std::vector<double> w;
};

/// Copies `n` floats to `dst` with non-temporal (streaming) stores where the CPU has them:
/// the destination lines are written without first being read into the cache, so a big
/// output costs one write of memory bandwidth.  Callers end with stream_fence().
inline void stream_copy(float* dst, const float* src, std::int64_t n) {
#ifdef POETML_STREAM_STORES
    std::int64_t i = 0;
    for (; i < n && (reinterpret_cast<std::uintptr_t>(dst + i) & 15u) != 0; ++i) dst[i] = src[i];
    for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
    for (; i < n; ++i) dst[i] = src[i];
#else
    std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(float));
#endif
}

/// Orders this thread's streaming stores before whatever it does next (the join).
inline void stream_fence() {
#ifdef POETML_STREAM_STORES
    _mm_sfence();
#endif
}

/// Saturation, log1p and normalisation of one event's image, in that order (see ImageSpec).
inline void postprocess(float* img, std::int64_t per_event, const ImageSpec& spec, double sat_max) {
    if (spec.saturate_bits > 0) {
        for (std::int64_t p = 0; p < per_event; ++p)
            img[p] = static_cast<float>(
                std::min(std::floor(static_cast<double>(img[p]) / spec.lsb_gev), sat_max));
    }
    if (spec.log1p) {
        for (std::int64_t p = 0; p < per_event; ++p) img[p] = std::log1p(img[p]);
    }
    if (spec.normalize) {
        double sum = 0.0;
        for (std::int64_t p = 0; p < per_event; ++p) sum += static_cast<double>(img[p]);
        if (sum != 0.0) {
            for (std::int64_t p = 0; p < per_event; ++p)
                img[p] = static_cast<float>(static_cast<double>(img[p]) / sum);
        }
    }
}

}  // namespace detail

namespace detail {

/// One event's deposits into `img` (see rasterize for the modes); when `track`, appends
/// the pixels it touches to `touched` (with repeats).  Adds the objects dropped outside
/// the eta range to `drops` (one counter per channel).
inline void deposit_event(const std::vector<Channel>& channels, std::int64_t ev, const ImageSpec& spec,
                          const Binner& binner, float* img, std::vector<std::int64_t>& touched,
                          std::int64_t* drops, Scratch& scratch, bool track = true) {
    const std::int64_t n_ch = static_cast<std::int64_t>(channels.size());
    const std::int64_t row = spec.n_phi * n_ch;
    Bin b{};
    for (std::int64_t c = 0; c < n_ch; ++c) {
        const Objects& o = channels[static_cast<std::size_t>(c)].objects;
        const Cuts& cuts = channels[static_cast<std::size_t>(c)].cuts;
        float* base = img + c;
        const std::int64_t k1 = o.end(ev);
        for (std::int64_t k = o.begin(ev); k < k1; ++k) {
            if (!passes(o, cuts, k)) continue;
            if (!binner.bin(o.eta_of(k), o.phi[k], b)) {
                ++drops[c];
                continue;
            }
            const float pt = o.pt[k];
            if (spec.mode == ImageMode::histogram) {
                const std::int64_t p = b.ix * row + b.iy * n_ch;
                base[p] += pt;
                if (track) touched.push_back(c + p);
                continue;
            }
            scratch.pix.clear();
            scratch.w.clear();
            if (spec.mode == ImageMode::gaussian) {
                const double s = spec.sigma;
                const auto R = static_cast<std::int64_t>(std::ceil(3.0 * s));
                const double cut2 = 9.0 * s * s;
                const double inv2s2 = 1.0 / (2.0 * s * s);
                const double d2own = (0.5 - b.fu) * (0.5 - b.fu) + (0.5 - b.fv) * (0.5 - b.fv);
                const Window w = window(b, R, spec.n_eta, spec.n_phi);
                double total = 0.0;
                for (std::int64_t di = w.di_lo; di <= w.di_hi; ++di) {
                    const double du = static_cast<double>(di) + 0.5 - b.fu;
                    for (std::int64_t dj = w.dj_lo; dj <= w.dj_hi; ++dj) {
                        const double dv = static_cast<double>(dj) + 0.5 - b.fv;
                        const double d2 = du * du + dv * dv;
                        if (!(d2 <= cut2 || (di == 0 && dj == 0))) continue;
                        const double wt = std::exp(-(d2 - d2own) * inv2s2);
                        total += wt;
                        scratch.w.push_back(wt);
                        scratch.pix.push_back((b.ix + di) * row + binner.wrap_phi(b.iy + dj) * n_ch);
                    }
                }
                const double ptd = static_cast<double>(pt);
                for (std::size_t q = 0; q < scratch.pix.size(); ++q)
                    base[scratch.pix[q]] += static_cast<float>(ptd * scratch.w[q] / total);
                if (track)
                    for (std::int64_t p : scratch.pix) touched.push_back(c + p);
            } else {  // glyph
                const double ptd = static_cast<double>(pt);
                double r = 0.0;
                if (ptd > 0.0) r = std::max(0.0, spec.glyph_radius0 + spec.glyph_radius_per_log * std::log(ptd));
                const bool positive = o.charge && o.charge[k] > 0.0f;
                const double half = 0.5 * (positive ? spec.glyph_width_positive : spec.glyph_width);
                // a window wider than the image in both directions is the whole image
                // (rows cut, columns wrapped), so R is capped there: the same pixels,
                // and no int64 overflow for a huge radius (glyph_radius0 = 1e300)
                const auto R = static_cast<std::int64_t>(
                    std::min(std::ceil(r + half) + 1.0, static_cast<double>(spec.n_eta + spec.n_phi)));
                const Window w = window(b, R, spec.n_eta, spec.n_phi);
                for (std::int64_t di = w.di_lo; di <= w.di_hi; ++di) {
                    const double du = static_cast<double>(di) + 0.5 - b.fu;
                    for (std::int64_t dj = w.dj_lo; dj <= w.dj_hi; ++dj) {
                        const double dv = static_cast<double>(dj) + 0.5 - b.fv;
                        const double d = std::sqrt(du * du + dv * dv);
                        if (std::fabs(d - r) <= half)
                            scratch.pix.push_back((b.ix + di) * row + binner.wrap_phi(b.iy + dj) * n_ch);
                    }
                }
                if (scratch.pix.empty()) {
                    const std::int64_t p = b.ix * row + b.iy * n_ch;
                    base[p] += pt;
                    if (track) touched.push_back(c + p);
                } else {
                    const float share = static_cast<float>(ptd / static_cast<double>(scratch.pix.size()));
                    for (std::int64_t p : scratch.pix) base[p] += share;
                    if (track)
                        for (std::int64_t p : scratch.pix) touched.push_back(c + p);
                }
            }
        }
    }
}

}  // namespace detail

/// Rasterize a batch of events into `out`, shape (n_events, n_eta, n_phi, n_channels),
/// float32, channels last.  `out` may hold anything (a reused buffer): each event is then
/// built in a small per-worker image that stays in the L1/L2 cache and written out whole
/// with streaming stores, so every output byte is written once and never read.  When
/// `out_is_zeroed` says the buffer already holds zeros (fresh calloc'd memory), deposits go
/// straight into it instead: its pages are first touched, and zeroed by the OS, in the
/// workers, and pages without deposits are never touched.  `dropped` (n_channels values)
/// receives the number of selected objects per channel that fell outside the eta range.
///
/// Modes (pT below is the object's pT, accumulated in float32 in object order):
///  - histogram: pixel (ix, iy) += pT.
///  - gaussian: R = ceil(3 sigma); candidate pixels (ix+di, iy+dj), |di|, |dj| <= R (rows
///    outside the image are cut, columns wrap in phi, each pixel once); offsets from the
///    object du = di + 0.5 - fu, dv = dj + 0.5 - fv, d2 = du^2 + dv^2; a pixel is kept if
///    d2 <= (3 sigma)^2 or it is the object's own pixel; weight exp(-(d2 - d2_own)/(2 sigma^2));
///    each kept pixel += pT * w / sum(w).  Rows cut at the eta edges are renormalised
///    away, so every accepted object deposits exactly its pT.
///  - glyph: ring radius r = max(0, glyph_radius0 + glyph_radius_per_log * ln(pT / GeV))
///    (r = 0 for pT = 0), line width W = glyph_width_positive if charge > 0 else
///    glyph_width; a candidate pixel (R = ceil(r + W/2) + 1) is on the ring when
///    |sqrt(d2) - r| <= W / 2.  The ring's n pixels inside the image each get pT / n; a ring
///    with no pixel inside the image puts pT in the object's own pixel.  So in every mode an
///    accepted object deposits its pT.
inline void rasterize(const std::vector<Channel>& channels, std::int64_t n_events,
                      const ImageSpec& spec, float* out, std::int64_t* dropped, int n_threads,
                      bool out_is_zeroed = false) {
    validate(spec);
    for (const auto& ch : channels) {
        if (ch.objects.n_events != n_events)
            throw std::invalid_argument("collection '" + ch.objects.name + "' has " +
                                        std::to_string(ch.objects.n_events) + " events, expected " +
                                        std::to_string(n_events));
        validate_cuts(ch.objects, ch.cuts);
    }
    const std::int64_t n_ch = static_cast<std::int64_t>(channels.size());
    for (std::int64_t c = 0; c < n_ch; ++c) dropped[c] = 0;
    if (n_ch == 0 || n_events == 0) return;  // an empty output: nothing to do (for any n_events)
    const std::int64_t row = spec.n_phi * n_ch;               // floats per eta row
    const std::int64_t per_event = spec.n_eta * row;          // floats per event
    const detail::Binner binner(spec);
    const unsigned threads = resolve_threads(n_threads);
    const std::int64_t workers = n_workers(n_events, threads);
    std::vector<std::int64_t> drops(static_cast<std::size_t>(workers * n_ch), 0);
    const double sat_max = spec.saturate_bits > 0 ? std::ldexp(1.0, spec.saturate_bits) - 1.0 : 0.0;
    const bool post = spec.saturate_bits > 0 || spec.log1p || spec.normalize;

    parallel_for(n_events, threads, [&](std::int64_t ev0, std::int64_t ev1, std::int64_t worker) {
        if (ev1 <= ev0) return;
        // a reused buffer: events are built in `local` (all zero between events; only the
        // pixels in `touched` ever become non-zero) and streamed out whole
        const bool staged = !out_is_zeroed;
        std::vector<float> local(staged ? static_cast<std::size_t>(per_event) : 0u, 0.0f);
        std::vector<std::int64_t> touched;
        // counted locally, stored once at the end: the workers' slots of `drops` share a
        // cache line, and incrementing them in place would bounce it between cores
        std::vector<std::int64_t> my_drops(static_cast<std::size_t>(n_ch), 0);
        detail::Scratch scratch;
        for (std::int64_t ev = ev0; ev < ev1; ++ev) {
            float* img = staged ? local.data() : out + ev * per_event;
            detail::deposit_event(channels, ev, spec, binner, img, touched, my_drops.data(), scratch, staged);
            if (post) detail::postprocess(img, per_event, spec, sat_max);
            if (staged) {
                // post-processing maps 0 to 0, so only the touched pixels are non-zero
                detail::stream_copy(out + ev * per_event, img, per_event);
                for (std::int64_t p : touched) img[p] = 0.0f;
                touched.clear();
            }
        }
        if (staged) detail::stream_fence();
        std::copy(my_drops.begin(), my_drops.end(), drops.begin() + worker * n_ch);
    });
    for (std::int64_t w = 0; w < workers; ++w)
        for (std::int64_t c = 0; c < n_ch; ++c) dropped[c] += drops[static_cast<std::size_t>(w * n_ch + c)];
}

/// The sparse form of a batch of images (see rasterize_sparse): event i's non-zero pixels
/// are entries [offsets[i], offsets[i+1]) of `index` (flat pixel index into one event's
/// (n_eta, n_phi, n_channels) image, C order, ascending within an event) and `value`.
struct SparseImages {
    std::vector<std::int64_t> offsets;  ///< n_events + 1, offsets[0] = 0
    std::vector<std::int32_t> index;    ///< flat pixel index, (ix * n_phi + iy) * n_channels + c
    std::vector<float> value;           ///< pixel value, never 0
};


/// Rasterize a batch of events exactly as rasterize() does (same spec, modes, selection,
/// drops and post-processing) but return only the non-zero pixels of each event: densifying
/// the result (image[i].flat[index[k]] = value[k] for k in [offsets[i], offsets[i+1]), all
/// other pixels 0) gives rasterize()'s images bit for bit.  A pixel that is 0 after
/// post-processing (e.g. below one LSB of saturation) has no entry; an event without
/// pixels has none.  Entries of an event are in ascending flat pixel index; the result
/// does not depend on `n_threads`.  Post-processing runs over the event's touched pixels
/// only, in ascending order: it maps 0 to 0, and the normalisation sum over them equals
/// rasterize()'s sum over every pixel (adding zeros changes no double), so the values are
/// the same.  Throws std::invalid_argument as rasterize() does, and when one event's image
/// has more than 2^31 - 1 pixels (the index is int32).
inline SparseImages rasterize_sparse(const std::vector<Channel>& channels, std::int64_t n_events,
                                     const ImageSpec& spec, std::int64_t* dropped, int n_threads) {
    validate(spec);
    for (const auto& ch : channels) {
        if (ch.objects.n_events != n_events)
            throw std::invalid_argument("collection '" + ch.objects.name + "' has " +
                                        std::to_string(ch.objects.n_events) + " events, expected " +
                                        std::to_string(n_events));
        validate_cuts(ch.objects, ch.cuts);
    }
    const std::int64_t n_ch = static_cast<std::int64_t>(channels.size());
    for (std::int64_t c = 0; c < n_ch; ++c) dropped[c] = 0;
    SparseImages result;
    result.offsets.assign(static_cast<std::size_t>(std::max<std::int64_t>(n_events, 0) + 1), 0);
    if (n_ch == 0 || n_events == 0) return result;
    if (static_cast<double>(spec.n_eta) * static_cast<double>(spec.n_phi) * static_cast<double>(n_ch) >
        static_cast<double>(std::numeric_limits<std::int32_t>::max()))
        throw std::invalid_argument("rasterize_sparse: an image of " + std::to_string(spec.n_eta) + " x " +
                                    std::to_string(spec.n_phi) + " x " + std::to_string(n_ch) +
                                    " pixels does not fit the int32 pixel index");
    const std::int64_t per_event = spec.n_eta * spec.n_phi * n_ch;
    const detail::Binner binner(spec);
    const unsigned threads = resolve_threads(n_threads);
    const std::int64_t workers = n_workers(n_events, threads);
    std::vector<std::int64_t> drops(static_cast<std::size_t>(workers * n_ch), 0);
    std::vector<std::vector<std::int32_t>> w_index(static_cast<std::size_t>(workers));
    std::vector<std::vector<float>> w_value(static_cast<std::size_t>(workers));
    std::vector<std::int64_t> w_first(static_cast<std::size_t>(workers), 0);
    const double sat_max = spec.saturate_bits > 0 ? std::ldexp(1.0, spec.saturate_bits) - 1.0 : 0.0;
    std::int64_t* counts = result.offsets.data() + 1;  // counts first, summed into offsets below

    parallel_for(n_events, threads, [&](std::int64_t ev0, std::int64_t ev1, std::int64_t worker) {
        if (ev1 <= ev0) return;
        w_first[static_cast<std::size_t>(worker)] = ev0;
        std::vector<float> img(static_cast<std::size_t>(per_event), 0.0f);  // all zero between events
        std::vector<std::int64_t> touched;
        std::vector<std::int64_t> my_drops(static_cast<std::size_t>(n_ch), 0);
        auto& index = w_index[static_cast<std::size_t>(worker)];
        auto& value = w_value[static_cast<std::size_t>(worker)];
        detail::Scratch scratch;
        for (std::int64_t ev = ev0; ev < ev1; ++ev) {
            detail::deposit_event(channels, ev, spec, binner, img.data(), touched, my_drops.data(), scratch);
            std::sort(touched.begin(), touched.end());
            touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
            // post-processing (see detail::postprocess) over the touched pixels, ascending
            if (spec.saturate_bits > 0)
                for (std::int64_t p : touched)
                    img[static_cast<std::size_t>(p)] = static_cast<float>(std::min(
                        std::floor(static_cast<double>(img[static_cast<std::size_t>(p)]) / spec.lsb_gev), sat_max));
            if (spec.log1p)
                for (std::int64_t p : touched) img[static_cast<std::size_t>(p)] = std::log1p(img[static_cast<std::size_t>(p)]);
            if (spec.normalize) {
                double sum = 0.0;
                for (std::int64_t p : touched) sum += static_cast<double>(img[static_cast<std::size_t>(p)]);
                if (sum != 0.0)
                    for (std::int64_t p : touched)
                        img[static_cast<std::size_t>(p)] =
                            static_cast<float>(static_cast<double>(img[static_cast<std::size_t>(p)]) / sum);
            }
            std::int64_t n = 0;
            for (std::int64_t p : touched) {
                float& v = img[static_cast<std::size_t>(p)];
                if (v != 0.0f) {
                    index.push_back(static_cast<std::int32_t>(p));
                    value.push_back(v);
                    ++n;
                }
                v = 0.0f;
            }
            counts[ev] = n;
            touched.clear();
        }
        std::copy(my_drops.begin(), my_drops.end(), drops.begin() + worker * n_ch);
    });
    for (std::int64_t i = 0; i < n_events; ++i) counts[i] += result.offsets[static_cast<std::size_t>(i)];
    std::size_t total = 0;
    for (const auto& v : w_index) total += v.size();
    result.index.reserve(total);
    result.value.reserve(total);
    for (std::int64_t w = 0; w < workers; ++w) {  // workers hold consecutive event ranges, in order
        result.index.insert(result.index.end(), w_index[static_cast<std::size_t>(w)].begin(),
                            w_index[static_cast<std::size_t>(w)].end());
        result.value.insert(result.value.end(), w_value[static_cast<std::size_t>(w)].begin(),
                            w_value[static_cast<std::size_t>(w)].end());
    }
    for (std::int64_t w = 0; w < workers; ++w)
        for (std::int64_t c = 0; c < n_ch; ++c) dropped[c] += drops[static_cast<std::size_t>(w * n_ch + c)];
    return result;
}

/// Checks sparse images for densify(): offsets start at 0, never decrease and end at
/// `n_entries`, every index in [0, per_event).  Throws std::invalid_argument naming the
/// event and entry at fault.
inline void validate_sparse(const std::int64_t* offsets, std::int64_t n_events, const std::int32_t* index,
                            std::int64_t n_entries, std::int64_t per_event) {
    if (n_events < 0 || per_event < 0 || n_entries < 0) throw std::invalid_argument("densify: negative sizes");
    if (offsets[0] != 0)
        throw std::invalid_argument("densify: offsets[0] = " + std::to_string(offsets[0]) + ", must be 0");
    for (std::int64_t i = 0; i < n_events; ++i)
        if (offsets[i + 1] < offsets[i])
            throw std::invalid_argument("densify: offsets decrease at event " + std::to_string(i) + " (offsets[" +
                                        std::to_string(i) + "] = " + std::to_string(offsets[i]) + ", offsets[" +
                                        std::to_string(i + 1) + "] = " + std::to_string(offsets[i + 1]) + ")");
    if (offsets[n_events] != n_entries)
        throw std::invalid_argument("densify: offsets end at " + std::to_string(offsets[n_events]) +
                                    " but there are " + std::to_string(n_entries) + " entries");
    for (std::int64_t k = 0; k < n_entries; ++k)
        if (index[k] < 0 || index[k] >= per_event) {
            const std::int64_t* it = std::upper_bound(offsets, offsets + n_events + 1, k);
            throw std::invalid_argument("densify: pixel index " + std::to_string(index[k]) + " of entry " +
                                        std::to_string(k) + " (event " + std::to_string(it - offsets - 1) +
                                        ") is outside [0, " + std::to_string(per_event) + ")");
        }
}

/// Scatter sparse images (as rasterize_sparse returns them) into `out`, n_events images of
/// `per_event` floats: out[i * per_event + index[k]] = value[k] for k in
/// [offsets[i], offsets[i+1]), every other pixel 0 (`out` is zero-filled first unless
/// `out_is_zeroed`).  Validates with validate_sparse() unless `validated`.  A pixel given
/// twice in one event keeps the last value.
inline void densify(const std::int64_t* offsets, std::int64_t n_events, const std::int32_t* index,
                    const float* value, std::int64_t n_entries, std::int64_t per_event, float* out,
                    int n_threads, bool out_is_zeroed = false, bool validated = false) {
    if (!validated) validate_sparse(offsets, n_events, index, n_entries, per_event);
    if (n_events == 0 || per_event == 0) return;
    parallel_for(n_events, resolve_threads(n_threads), [&](std::int64_t ev0, std::int64_t ev1, std::int64_t) {
        if (!out_is_zeroed) std::fill(out + ev0 * per_event, out + ev1 * per_event, 0.0f);
        for (std::int64_t ev = ev0; ev < ev1; ++ev) {
            float* img = out + ev * per_event;
            for (std::int64_t k = offsets[ev]; k < offsets[ev + 1]; ++k) img[index[k]] = value[k];
        }
    });
}

}  // namespace poetml
