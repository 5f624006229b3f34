// poetml C++ core: fixed-length feature vectors (pT-ordered, zero-padded object slots plus
// event-level quantities).
#pragma once

#include <cstring>

#include "poetml/core.hpp"

namespace poetml {

/// A selected collection the features read from.
struct FeatureCollection {
    Objects objects;
    Cuts cuts;
};

/// `count` objects of collection `collection` (index into the collections passed to
/// build_features), highest pT first, each written as the values of `columns` (one column
/// per requested field; a null column writes 0).  Missing objects are zero-padded.
struct FeatureSlot {
    std::size_t collection = 0;
    std::int64_t count = 0;
    std::vector<const float*> columns;
};

/// Event-level quantities that can follow the slots (mirrors poetml.features.EVENT_QUANTITIES).
enum class EventQuantity {
    ht,          ///< scalar sum of selected jet pT
    met,         ///< MET pT
    n_muon,      ///< number of selected muons
    n_electron,  ///< number of selected electrons
    n_jet,       ///< number of selected jets
    n_bjet,      ///< number of selected jets with btag > btag_threshold
    m_mumu,      ///< mass of the leading opposite-charge selected muon pair (0 if none)
    m_jj,        ///< mass of the two leading selected jets (0 if fewer than two)
};

/// What build_features writes (mirrors poetml.FeatureSpec once resolved against a batch).
struct FeatureSpec {
    std::vector<FeatureSlot> slots;
    std::vector<EventQuantity> event_quantities;
    /// Indices into the collections of the muon, electron, jet and MET collections the
    /// event quantities read; -1 when absent (then a quantity needing it is an error).
    std::int64_t muon = -1, electron = -1, jet = -1, met = -1;
    double btag_threshold = 0.8484;
    /// Muon mass [GeV] used for m_mumu when the muon collection has no mass column.
    double muon_mass = 0.1056584;
};

/// Number of floats per event build_features writes for `spec`.
inline std::int64_t n_features(const FeatureSpec& spec) {
    std::int64_t n = 0;
    for (const auto& s : spec.slots) n += s.count * static_cast<std::int64_t>(s.columns.size());
    return n + static_cast<std::int64_t>(spec.event_quantities.size());
}

namespace detail {

/// Indices of the selected objects of event `ev`, sorted by pT descending, ties in input
/// order (a stable insertion sort: events hold few objects).
inline void selected_sorted(const FeatureCollection& fc, std::int64_t ev, std::vector<std::int64_t>& idx) {
    const Objects& o = fc.objects;
    const std::int64_t k0 = o.begin(ev), k1 = o.end(ev);
    idx.resize(static_cast<std::size_t>(k1 - k0));
    // compact the selected indices without a branch per object, then sort them
    std::size_t n = 0;
    for (std::int64_t k = k0; k < k1; ++k) {
        idx[n] = k;
        n += passes(o, fc.cuts, k) ? 1u : 0u;
    }
    idx.resize(n);
    for (std::size_t i = 1; i < n; ++i) {
        const std::int64_t k = idx[i];
        const float pt = o.pt[k];
        std::size_t pos = i;
        while (pos > 0 && o.pt[idx[pos - 1]] < pt) {
            idx[pos] = idx[pos - 1];
            --pos;
        }
        idx[pos] = k;
    }
}

/// Invariant mass of two objects (double precision 4-vectors).
inline double pair_mass(const Objects& o, std::int64_t a, std::int64_t b, double default_mass) {
    double px = 0, py = 0, pz = 0, e = 0;
    for (std::int64_t k : {a, b}) {
        const double pt = o.pt[k], eta = o.eta_of(k), phi = o.phi[k];
        const double m = o.mass ? static_cast<double>(o.mass[k]) : default_mass;
        const double x = pt * std::cos(phi), y = pt * std::sin(phi), z = pt * std::sinh(eta);
        px += x;
        py += y;
        pz += z;
        e += std::sqrt(x * x + y * y + z * z + m * m);
    }
    const double m2 = e * e - (px * px + py * py + pz * pz);
    return m2 > 0.0 ? std::sqrt(m2) : 0.0;
}

}  // namespace detail

/// Fill `out`, shape (n_events, n_features(spec)) float32, for a batch of events.
///
/// Per event: for each slot, the selected objects of its collection sorted by pT
/// (descending, ties by input order), the first `count` written field by field
/// (`<coll>_0_<f1>, <coll>_0_<f2>, ..., <coll>_1_<f1>, ...`), the rest zero; then the event
/// quantities in the order given.  m_mumu takes the first opposite-charge pair (i < j) in
/// pT order; jets without a mass column count as massless in m_jj.  Events are split into
/// contiguous ranges over `n_threads` threads (<= 0: all cores); the result does not
/// depend on the number of threads.  `out` may hold anything (a reused buffer): every float of
/// every row is written, empty slots as zeros.
inline void build_features(const std::vector<FeatureCollection>& collections, std::int64_t n_events,
                           const FeatureSpec& spec, float* out, int n_threads) {
    const auto n_coll = static_cast<std::int64_t>(collections.size());
    for (const auto& fc : collections) {
        if (fc.objects.n_events != n_events)
            throw std::invalid_argument("collection '" + fc.objects.name + "' has " +
                                        std::to_string(fc.objects.n_events) + " events, expected " +
                                        std::to_string(n_events));
        validate_cuts(fc.objects, fc.cuts);
    }
    for (const auto& s : spec.slots) {
        if (s.collection >= collections.size())
            throw std::invalid_argument("feature slot refers to collection " + std::to_string(s.collection) +
                                        " of " + std::to_string(n_coll));
        if (s.count < 0) throw std::invalid_argument("feature slot count must be >= 0");
    }
    auto need = [&](std::int64_t idx, const char* what, const char* quantity) {
        if (idx < 0 || idx >= n_coll)
            throw std::invalid_argument(std::string("event quantity '") + quantity + "' needs the " + what +
                                        " collection");
    };
    for (EventQuantity q : spec.event_quantities) {
        switch (q) {
            case EventQuantity::ht: need(spec.jet, "jet", "ht"); break;
            case EventQuantity::met: need(spec.met, "met", "met"); break;
            case EventQuantity::n_muon: need(spec.muon, "muon", "n_muon"); break;
            case EventQuantity::n_electron: need(spec.electron, "electron", "n_electron"); break;
            case EventQuantity::n_jet: need(spec.jet, "jet", "n_jet"); break;
            case EventQuantity::n_bjet:
                need(spec.jet, "jet", "n_bjet");
                if (!collections[static_cast<std::size_t>(spec.jet)].objects.btag)
                    throw std::invalid_argument("event quantity 'n_bjet' needs the jet field 'btag'");
                break;
            case EventQuantity::m_mumu:
                need(spec.muon, "muon", "m_mumu");
                if (!collections[static_cast<std::size_t>(spec.muon)].objects.charge)
                    throw std::invalid_argument("event quantity 'm_mumu' needs the muon field 'charge'");
                break;
            case EventQuantity::m_jj: need(spec.jet, "jet", "m_jj"); break;
        }
    }
    const std::int64_t nf = n_features(spec);
    if (nf == 0 || n_events == 0) return;  // an empty output: nothing to do (for any n_events)
    const unsigned threads = resolve_threads(n_threads);
    parallel_for(n_events, threads, [&](std::int64_t ev0, std::int64_t ev1, std::int64_t) {
        if (ev1 <= ev0) return;
        std::vector<std::int64_t> idx;
        idx.reserve(64);
        for (std::int64_t ev = ev0; ev < ev1; ++ev) {
            float* row = out + ev * nf;
            for (const auto& s : spec.slots) {
                const FeatureCollection& fc = collections[s.collection];
                const auto nfield = static_cast<std::int64_t>(s.columns.size());
                if (s.count == 0 || nfield == 0) continue;
                detail::selected_sorted(fc, ev, idx);
                const std::int64_t n = std::min<std::int64_t>(s.count, static_cast<std::int64_t>(idx.size()));
                for (std::int64_t j = 0; j < n; ++j) {
                    const std::int64_t k = idx[static_cast<std::size_t>(j)];
                    for (std::int64_t f = 0; f < nfield; ++f) {
                        const float* col = s.columns[static_cast<std::size_t>(f)];
                        row[j * nfield + f] = col ? col[k] : 0.0f;
                    }
                }
                // the empty slots: every float of the row is written, so no memset pass
                std::fill(row + n * nfield, row + s.count * nfield, 0.0f);
                row += s.count * nfield;
            }
            for (EventQuantity q : spec.event_quantities) {
                float value = 0.0f;
                switch (q) {
                    case EventQuantity::ht: {
                        const FeatureCollection& jets = collections[static_cast<std::size_t>(spec.jet)];
                        double ht = 0.0;
                        for (std::int64_t k = jets.objects.begin(ev); k < jets.objects.end(ev); ++k)
                            if (passes(jets.objects, jets.cuts, k)) ht += static_cast<double>(jets.objects.pt[k]);
                        value = static_cast<float>(ht);
                        break;
                    }
                    case EventQuantity::met: {
                        const Objects& met = collections[static_cast<std::size_t>(spec.met)].objects;
                        value = met.end(ev) > met.begin(ev) ? met.pt[met.begin(ev)] : 0.0f;
                        break;
                    }
                    case EventQuantity::n_muon:
                    case EventQuantity::n_electron:
                    case EventQuantity::n_jet:
                    case EventQuantity::n_bjet: {
                        const std::int64_t ci = q == EventQuantity::n_muon       ? spec.muon
                                                : q == EventQuantity::n_electron ? spec.electron
                                                                                 : spec.jet;
                        const FeatureCollection& fc = collections[static_cast<std::size_t>(ci)];
                        std::int64_t n = 0;
                        for (std::int64_t k = fc.objects.begin(ev); k < fc.objects.end(ev); ++k)
                            if (passes(fc.objects, fc.cuts, k) &&
                                (q != EventQuantity::n_bjet ||
                                 static_cast<double>(fc.objects.btag[k]) > spec.btag_threshold))
                                ++n;
                        value = static_cast<float>(n);
                        break;
                    }
                    case EventQuantity::m_mumu: {
                        const FeatureCollection& mu = collections[static_cast<std::size_t>(spec.muon)];
                        detail::selected_sorted(mu, ev, idx);
                        bool found = false;
                        for (std::size_t a = 0; a < idx.size() && !found; ++a)
                            for (std::size_t b = a + 1; b < idx.size() && !found; ++b)
                                if (mu.objects.charge[idx[a]] * mu.objects.charge[idx[b]] < 0.0f) {
                                    value = static_cast<float>(
                                        detail::pair_mass(mu.objects, idx[a], idx[b], spec.muon_mass));
                                    found = true;
                                }
                        break;
                    }
                    case EventQuantity::m_jj: {
                        const FeatureCollection& jets = collections[static_cast<std::size_t>(spec.jet)];
                        detail::selected_sorted(jets, ev, idx);
                        if (idx.size() >= 2)
                            value = static_cast<float>(detail::pair_mass(jets.objects, idx[0], idx[1], 0.0));
                        break;
                    }
                }
                *row++ = value;
            }
        }
    });
}

}  // namespace poetml
