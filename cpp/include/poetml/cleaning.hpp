// poetml C++ core: lepton-jet cleaning.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "poetml/core.hpp"

namespace poetml {

/// A lepton collection jets are cleaned against, with the selection its leptons must pass
/// to count.
struct CleaningLeptons {
    Objects objects;
    Cuts cuts;
};

namespace detail {

/// |phi_a - phi_b| folded into [0, pi] (both in double; the NumPy twin does the same).
inline double abs_dphi(double a, double b) {
    constexpr double two_pi = 6.283185307179586;
    constexpr double pi = 3.141592653589793;
    double d = std::fmod(std::fabs(a - b), two_pi);
    if (d > pi) d = two_pi - d;
    return d;
}

}  // namespace detail

/// Lepton-jet cleaning: `out[k]` = 0 for every jet `k` of `jets` that has a selected lepton
/// (one of `leptons` passing its Cuts) of the same event within Delta R < `dr`, else 1.
/// Jets in NanoAOD and POET contain the leptons (particle-flow jets cluster them); cleaning
/// stops a lepton being counted twice, as a lepton and as a jet.  Delta R^2 = Delta eta^2 +
/// Delta phi^2 in double, compared with `dr * dr`.  Validates every collection (same number
/// of events, offsets, finite values; std::invalid_argument naming the collection);
/// `out` has `jets.n_objects` elements and is fully written.  No global state: safe on
/// threads; `n_threads` as resolve_threads.
inline void clean_jets(const Objects& jets, const std::vector<CleaningLeptons>& leptons, double dr,
                       float* out, int n_threads) {
    validate(jets);
    if (!(dr >= 0.0) || !std::isfinite(dr)) {
        throw std::invalid_argument("clean_jets: dr must be finite and >= 0, got " + std::to_string(dr));
    }
    for (const auto& l : leptons) {
        validate(l.objects);
        validate_cuts(l.objects, l.cuts);
        if (l.objects.n_events != jets.n_events) {
            throw std::invalid_argument("clean_jets: collection '" + l.objects.name + "' has " +
                                        std::to_string(l.objects.n_events) + " events, '" + jets.name +
                                        "' " + std::to_string(jets.n_events));
        }
    }
    const double dr2 = dr * dr;
    parallel_for(jets.n_events, resolve_threads(n_threads), [&](std::int64_t b, std::int64_t e, std::int64_t) {
        std::vector<std::int64_t> sel;  // selected leptons of the event: (collection, index) packed
        std::vector<std::size_t> which;
        for (std::int64_t ev = b; ev < e; ++ev) {
            sel.clear();
            which.clear();
            for (std::size_t c = 0; c < leptons.size(); ++c) {
                const Objects& o = leptons[c].objects;
                for (std::int64_t k = o.begin(ev); k < o.end(ev); ++k) {
                    if (passes(o, leptons[c].cuts, k)) {
                        sel.push_back(k);
                        which.push_back(c);
                    }
                }
            }
            for (std::int64_t j = jets.begin(ev); j < jets.end(ev); ++j) {
                float keep = 1.0f;
                const double je = jets.eta_of(j);
                const double jp = jets.phi[j];
                for (std::size_t s = 0; s < sel.size(); ++s) {
                    const Objects& o = leptons[which[s]].objects;
                    const double deta = je - static_cast<double>(o.eta_of(sel[s]));
                    const double dphi = detail::abs_dphi(jp, static_cast<double>(o.phi[sel[s]]));
                    if (deta * deta + dphi * dphi < dr2) {
                        keep = 0.0f;
                        break;
                    }
                }
                out[j] = keep;
            }
        }
    });
}

}  // namespace poetml
