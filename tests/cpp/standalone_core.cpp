// A plain C++17 program using the poetml core with no Python anywhere: proves that ROOT
// macros and CMSSW modules can include cpp/include/poetml.  Built and run by
// tests/test_cpp_standalone.py:  g++ -std=c++17 -Wall -Wextra -Werror -pthread -I cpp/include
// Exit code 0 and "OK" on success; a message naming the failed check otherwise.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "poetml/poetml.hpp"

static int failures = 0;

static void check(bool ok, const char* what) {
    if (!ok) {
        std::printf("FAILED: %s\n", what);
        ++failures;
    }
}

static bool close(double a, double b) { return std::fabs(a - b) <= 1e-5 * (1.0 + std::fabs(b)); }

int main() {
    // Two events.  Event 0: muons at (eta 0.01, phi 0.01) with 10 GeV, at (eta -2.49, phi
    // +pi) with 5 GeV (phi = +pi wraps to column 0), at eta 2.6 with 7 GeV (dropped);
    // event 1: one muon at (eta 1.0, phi -1.0), 3 GeV.  MET: 20 GeV at phi -pi/2 and 1 GeV.
    const std::vector<std::int64_t> offsets{0, 3, 4};
    const std::vector<float> pt{10.f, 5.f, 7.f, 3.f}, eta{0.01f, -2.49f, 2.6f, 1.0f},
        phi{0.01f, 3.14159265f, 0.f, -1.0f};
    const std::vector<float> met_pt{20.f, 1.f}, met_phi{-1.5707963f, 0.f};

    poetml::Objects mu;
    mu.name = "muon";
    mu.n_events = 2;
    mu.n_objects = 4;
    mu.offsets = offsets.data();
    mu.pt = pt.data();
    mu.eta = eta.data();
    mu.phi = phi.data();
    poetml::Objects met;
    met.name = "met";
    met.n_events = 2;
    met.n_objects = 2;
    met.pt = met_pt.data();
    met.phi = met_phi.data();

    poetml::validate(mu);
    poetml::validate(met);
    std::vector<poetml::Channel> channels{{mu, poetml::Cuts{}}, {met, poetml::Cuts{}}};
    poetml::ImageSpec spec;  // 32 x 32, eta [-2.5, 2.5)
    const std::int64_t C = 2, per_event = 32 * 32 * C;
    std::vector<float> img(2 * per_event, -1.f);
    std::vector<std::int64_t> dropped(C, -1);
    poetml::rasterize(channels, 2, spec, img.data(), dropped.data(), 2);
    auto at = [&](std::int64_t ev, std::int64_t ix, std::int64_t iy, std::int64_t c) {
        return img[static_cast<std::size_t>(ev * per_event + (ix * 32 + iy) * C + c)];
    };
    // eta 0.01 -> u = 2.51 * 6.4 = 16.064 -> 16; phi 0.01 -> (pi + 0.01) * 32 / 2pi -> 16
    check(at(0, 16, 16, 0) == 10.f, "muon at (16, 16)");
    // eta -2.49 -> row 0; phi = +pi (float32 rounds above pi) -> column 32 -> wraps to 0
    check(at(0, 0, 0, 0) == 5.f, "muon at phi = +pi wraps to column 0");
    check(dropped[0] == 1 && dropped[1] == 0, "one muon dropped outside eta");
    // MET at eta 0 -> row 16; phi -pi/2 -> column 8
    check(at(0, 16, 8, 1) == 20.f, "MET at (16, 8)");
    // eta 1.0 -> u = 3.5 * 6.4 = 22.4 -> 22; phi -1 -> (pi - 1) * 32 / 2pi = 10.9 -> 10
    check(at(1, 22, 10, 0) == 3.f, "event 1 muon at (22, 10)");
    double sum0 = 0, sum1 = 0;
    for (std::int64_t p = 0; p < per_event; ++p) {
        sum0 += img[static_cast<std::size_t>(p)];
        sum1 += img[static_cast<std::size_t>(per_event + p)];
    }
    check(sum0 == 35.0 && sum1 == 4.0, "image sums are the in-acceptance pT (output zero-filled)");

    // Gaussian: every accepted object still deposits its pT, spread over several pixels.
    spec.mode = poetml::ImageMode::gaussian;
    spec.sigma = 1.5;
    poetml::rasterize(channels, 2, spec, img.data(), dropped.data(), 1);
    sum0 = 0;
    int lit = 0;
    for (std::int64_t p = 0; p < per_event; ++p) {
        sum0 += img[static_cast<std::size_t>(p)];
        lit += img[static_cast<std::size_t>(p)] > 0.f;
    }
    check(close(sum0, 35.0), "gaussian image sum");
    check(lit > 20, "gaussian spreads over pixels");
    check(at(0, 16, 16, 0) > at(0, 16, 18, 0) && at(0, 16, 18, 0) > 0.f, "gaussian peaks at the object");

    // Saturation: 3 bits after a 2 GeV LSB: 10 GeV -> 5, 20 GeV -> min(10, 7) = 7.
    spec.mode = poetml::ImageMode::histogram;
    spec.saturate_bits = 3;
    spec.lsb_gev = 2.0;
    poetml::rasterize(channels, 2, spec, img.data(), dropped.data(), 1);
    check(at(0, 16, 16, 0) == 5.f && at(0, 16, 8, 1) == 7.f, "saturation");

    bool threw = false;
    // Sparse: the non-zero pixels of the same images; densified, they are those images.
    // 3 GeV (event 1's muon) and 1 GeV (its MET) saturate to 1 and 0: one entry left.
    std::vector<std::int64_t> sdropped(C, -1);
    const poetml::SparseImages sp = poetml::rasterize_sparse(channels, 2, spec, sdropped.data(), 2);
    check(sp.offsets.size() == 3 && sp.offsets[0] == 0, "sparse offsets");
    check(sp.offsets[2] - sp.offsets[1] == 1, "event 1: only the pixel left after saturation");
    check(sdropped == dropped, "sparse drops equal dense drops");
    std::vector<float> back(2 * per_event, -1.f);
    poetml::densify(sp.offsets.data(), 2, sp.index.data(), sp.value.data(),
                    static_cast<std::int64_t>(sp.index.size()), per_event, back.data(), 2);
    check(back == img, "rasterize_sparse densified equals rasterize");
    std::vector<std::int32_t> bad_index = sp.index;
    bad_index[0] = static_cast<std::int32_t>(per_event);
    threw = false;
    try {
        poetml::densify(sp.offsets.data(), 2, bad_index.data(), sp.value.data(),
                        static_cast<std::int64_t>(sp.index.size()), per_event, back.data(), 1);
    } catch (const std::invalid_argument& e) {
        threw = std::string(e.what()).find("pixel index 2048 of entry 0 (event 0) is outside [0, 2048)") != std::string::npos;
    }
    check(threw, "densify refuses an index outside the image");

    // Invalid input: NaN eta names the event and field.
    std::vector<float> bad_eta = eta;
    bad_eta[3] = std::nanf("");
    poetml::Objects bad = mu;
    bad.eta = bad_eta.data();
    threw = false;
    try {
        poetml::validate(bad);
    } catch (const std::invalid_argument& e) {
        const std::string msg = e.what();
        threw = msg.find("event 1") != std::string::npos && msg.find("'eta'") != std::string::npos;
    }
    check(threw, "NaN eta raises invalid_argument naming event 1 and eta");

    // Features: the two leading muons of event 0, pT-ordered.
    poetml::FeatureSpec fspec;
    poetml::FeatureSlot slot;
    slot.collection = 0;
    slot.count = 2;
    slot.columns = {pt.data(), eta.data()};
    fspec.slots.push_back(slot);
    fspec.muon = 0;
    fspec.event_quantities = {poetml::EventQuantity::n_muon};
    std::vector<poetml::FeatureCollection> colls{{mu, poetml::Cuts{}}};
    std::vector<float> feat(2 * 5, -1.f);
    poetml::build_features(colls, 2, fspec, feat.data(), 2);
    const std::vector<float> expect{10.f, 0.01f, 7.f, 2.6f, 3.f, 3.f, 1.0f, 0.f, 0.f, 1.f};
    check(feat == expect, "build_features slots and n_muon");

    if (failures) return 1;
    std::printf("OK\n");
    return 0;
}
