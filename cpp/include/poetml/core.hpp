// poetml C++ core: shared pieces (object columns, selections, validation, threading).
// Pure C++17, no Python: usable from ROOT macros or CMSSW modules.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace poetml {

/// pi as the double Python's math.pi holds; the phi binning uses it on both sides.
constexpr double kPi = 3.141592653589793;

/// One collection of objects over a batch of events, as flat float32 columns + offsets.
///
/// Objects of event i are [offsets[i], offsets[i+1]).  A null `offsets` means exactly one
/// object per event (object i belongs to event i), which is how MET is passed.  A null
/// column means the field is absent: `eta`, `charge` and `mass` then read as 0; a
/// selection column that is null must not be used by a cut (see Cuts).  The arrays are
/// borrowed, never owned.
struct Objects {
    std::string name;                      ///< collection name, used in error messages
    std::int64_t n_events = 0;             ///< number of events
    std::int64_t n_objects = 0;            ///< length of every column
    const std::int64_t* offsets = nullptr; ///< n_events + 1 offsets, or null (one per event)
    const float* pt = nullptr;             ///< transverse momentum [GeV] (required)
    const float* eta = nullptr;            ///< pseudorapidity (null: 0)
    const float* phi = nullptr;            ///< azimuth [rad] (required)
    const float* charge = nullptr;         ///< electric charge (null: 0)
    const float* mass = nullptr;           ///< mass [GeV] (null: see users)
    const float* tight_id = nullptr;       ///< tight ID flag 1/0 (null: absent)
    const float* iso = nullptr;            ///< relative isolation (null: absent)
    const float* btag = nullptr;           ///< b-tag discriminant (null: absent)

    /// First object of event `i`.
    std::int64_t begin(std::int64_t i) const { return offsets ? offsets[i] : i; }
    /// One past the last object of event `i`.
    std::int64_t end(std::int64_t i) const { return offsets ? offsets[i + 1] : i + 1; }
    /// Eta of object `k` (0 when the collection has no eta column, e.g. MET).
    float eta_of(std::int64_t k) const { return eta ? eta[k] : 0.0f; }
};

/// Object selection.  An object passes when
/// `pt >= min_pt`, `|eta| <= max_abs_eta`, (if `tight_id`) `tight_id column > 0.5` and
/// (if `use_max_iso`) `iso column <= max_iso`; comparisons are done in double.
/// A cut that needs a column the Objects lack is an error (the caller decides to skip it).
struct Cuts {
    double min_pt = 0.0;
    double max_abs_eta = std::numeric_limits<double>::infinity();
    bool tight_id = false;
    bool use_max_iso = false;
    double max_iso = 0.0;
};

/// True when object `k` of `o` passes `c`.
/// The comparisons are combined with `&`, not `&&`: whether an object passes is data and
/// unpredictable, so one branch on the result beats a mispredicted branch per cut (the
/// column pointers are only read when their cut is on, which is the same for every object).
inline bool passes(const Objects& o, const Cuts& c, std::int64_t k) {
    bool ok = static_cast<double>(o.pt[k]) >= c.min_pt;
    ok &= std::fabs(static_cast<double>(o.eta_of(k))) <= c.max_abs_eta;
    if (c.tight_id) ok &= o.tight_id[k] > 0.5f;
    if (c.use_max_iso) ok &= static_cast<double>(o.iso[k]) <= c.max_iso;
    return ok;
}

namespace detail {

inline std::int64_t event_of(const Objects& o, std::int64_t k) {
    if (!o.offsets) return k;
    // last event whose first object is <= k (skipping empty events)
    const std::int64_t* it = std::upper_bound(o.offsets, o.offsets + o.n_events + 1, k);
    return static_cast<std::int64_t>(it - o.offsets) - 1;
}

inline void check_finite(const Objects& o, const float* col, const char* field, bool non_negative) {
    if (!col) return;
    for (std::int64_t k = 0; k < o.n_objects; ++k) {
        const float v = col[k];
        if (!std::isfinite(v) || (non_negative && v < 0.0f)) {
            const std::int64_t ev = event_of(o, k);
            std::ostringstream msg;
            msg << "collection '" << o.name << "', field '" << field << "': value " << v
                << " at event " << ev << " (object " << (k - o.begin(ev)) << " of the event, "
                << "flat index " << k << ") is "
                << (std::isfinite(v) ? "negative" : "not finite");
            throw std::invalid_argument(msg.str());
        }
    }
}

}  // namespace detail

/// Check `o` for consistency: pt and phi present, offsets start at 0, never decrease and
/// end at n_objects (or n_objects == n_events without offsets), pt/eta/phi/mass finite and
/// pt >= 0.  Throws std::invalid_argument naming the collection, event and field.
inline void validate(const Objects& o) {
    if (!o.pt || !o.phi) {
        throw std::invalid_argument("collection '" + o.name + "': pt and phi columns are required");
    }
    if (o.n_events < 0 || o.n_objects < 0) {
        throw std::invalid_argument("collection '" + o.name + "': negative sizes");
    }
    if (o.offsets) {
        if (o.offsets[0] != 0) {
            throw std::invalid_argument("collection '" + o.name + "': offsets[0] = " +
                                        std::to_string(o.offsets[0]) + ", must be 0");
        }
        for (std::int64_t i = 0; i < o.n_events; ++i) {
            if (o.offsets[i + 1] < o.offsets[i]) {
                throw std::invalid_argument(
                    "collection '" + o.name + "': offsets decrease at event " + std::to_string(i) +
                    " (offsets[" + std::to_string(i) + "] = " + std::to_string(o.offsets[i]) +
                    ", offsets[" + std::to_string(i + 1) + "] = " + std::to_string(o.offsets[i + 1]) +
                    ")");
            }
        }
        if (o.offsets[o.n_events] != o.n_objects) {
            throw std::invalid_argument(
                "collection '" + o.name + "': offsets end at " + std::to_string(o.offsets[o.n_events]) +
                " but the columns hold " + std::to_string(o.n_objects) + " objects");
        }
    } else if (o.n_objects != o.n_events) {
        throw std::invalid_argument("collection '" + o.name + "': " + std::to_string(o.n_objects) +
                                    " values for " + std::to_string(o.n_events) +
                                    " events (one per event expected)");
    }
    detail::check_finite(o, o.pt, "pt", true);
    detail::check_finite(o, o.eta, "eta", false);
    detail::check_finite(o, o.phi, "phi", false);
    detail::check_finite(o, o.mass, "mass", false);
}

/// Check that the columns `c` needs exist in `o`; throws std::invalid_argument otherwise.
inline void validate_cuts(const Objects& o, const Cuts& c) {
    if (c.tight_id && !o.tight_id) {
        throw std::invalid_argument("collection '" + o.name +
                                    "': the tight_id cut is on but there is no tight_id column");
    }
    if (c.use_max_iso && !o.iso) {
        throw std::invalid_argument("collection '" + o.name +
                                    "': the isolation cut is on but there is no iso column");
    }
}

/// Number of threads to use: `n_threads` if > 0, else all cores (at least 1).
inline unsigned resolve_threads(int n_threads) {
    if (n_threads > 0) return static_cast<unsigned>(n_threads);
    const unsigned hw = std::thread::hardware_concurrency();
    return hw ? hw : 1u;
}

/// Run `fn(begin, end, worker)` over [0, n) split into contiguous ranges, one per worker
/// thread (at most `n_threads`, at least one item per worker).  The first exception a
/// worker throws is rethrown after all workers joined.
template <class Fn>
void parallel_for(std::int64_t n, unsigned n_threads, Fn&& fn) {
    const std::int64_t workers =
        std::max<std::int64_t>(1, std::min<std::int64_t>(static_cast<std::int64_t>(n_threads), n));
    if (workers == 1) {
        fn(std::int64_t{0}, n, std::int64_t{0});
        return;
    }
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(workers));
    std::vector<std::thread> pool;
    pool.reserve(static_cast<std::size_t>(workers));
    for (std::int64_t w = 0; w < workers; ++w) {
        const std::int64_t b = n * w / workers;
        const std::int64_t e = n * (w + 1) / workers;
        pool.emplace_back([&fn, &errors, b, e, w] {
            try {
                fn(b, e, w);
            } catch (...) {
                errors[static_cast<std::size_t>(w)] = std::current_exception();
            }
        });
    }
    for (auto& t : pool) t.join();
    for (auto& err : errors) {
        if (err) std::rethrow_exception(err);
    }
}

/// Number of worker ranges parallel_for uses for `n` items and `n_threads` threads.
inline std::int64_t n_workers(std::int64_t n, unsigned n_threads) {
    return std::max<std::int64_t>(1, std::min<std::int64_t>(static_cast<std::int64_t>(n_threads), n));
}

}  // namespace poetml
