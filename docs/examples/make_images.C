// make_images.C: event images of a POET ntuple with the poetml C++ core, in a ROOT macro.
//   root -l -b -q 'make_images.C("ntuple.root")'      (from the poetml repository root)
// The core is header-only C++17: no library to load, no Python.  Muons (tight ID, relative
// isolation < 0.15, pT > 3 GeV) and MET go into a 32 x 32 x 2 histogram image per event.
R__ADD_INCLUDE_PATH(cpp/include)
#include "poetml/poetml.hpp"

#include <cstdint>
#include <cstdio>
#include <vector>

#include "TFile.h"
#include "TTreeReader.h"
#include "TTreeReaderArray.h"
#include "TTreeReaderValue.h"

void make_images(const char* path = "ntuple.root") {
    TFile file(path);
    TTreeReader muons("mymuons/Events", &file), mets("mymets/Events", &file);
    TTreeReaderArray<float> pt(muons, "muon_pt"), eta(muons, "muon_eta"), phi(muons, "muon_phi"),
        iso(muons, "muon_pfreliso04all");
    TTreeReaderArray<int> tight(muons, "muon_isTight");
    TTreeReaderValue<float> met_pt(mets, "met_pt"), met_phi(mets, "met_phi");

    // One batch: flat float32 columns plus int64 offsets (the layout poetml._core gets too).
    std::vector<std::int64_t> offsets{0};
    std::vector<float> mu_pt, mu_eta, mu_phi, mu_iso, mu_tight, m_pt, m_phi;
    while (muons.Next() && mets.Next()) {
        for (std::size_t k = 0; k < pt.GetSize(); ++k) {
            mu_pt.push_back(pt[k]);
            mu_eta.push_back(eta[k]);
            mu_phi.push_back(phi[k]);
            mu_iso.push_back(iso[k]);
            mu_tight.push_back(static_cast<float>(tight[k]));
        }
        offsets.push_back(static_cast<std::int64_t>(mu_pt.size()));
        m_pt.push_back(*met_pt);
        m_phi.push_back(*met_phi);
    }
    const auto n_events = static_cast<std::int64_t>(m_pt.size());

    poetml::Objects mu;  // borrows the arrays, owns nothing
    mu.name = "muon";
    mu.n_events = n_events;
    mu.n_objects = static_cast<std::int64_t>(mu_pt.size());
    mu.offsets = offsets.data();
    mu.pt = mu_pt.data();
    mu.eta = mu_eta.data();
    mu.phi = mu_phi.data();
    mu.tight_id = mu_tight.data();
    mu.iso = mu_iso.data();
    poetml::Objects met;  // null offsets: one object per event
    met.name = "met";
    met.n_events = n_events;
    met.n_objects = n_events;
    met.pt = m_pt.data();
    met.phi = m_phi.data();
    poetml::validate(mu);  // std::invalid_argument naming collection, field and event
    poetml::validate(met);

    poetml::Cuts muon_cuts;
    muon_cuts.min_pt = 3.0;
    muon_cuts.tight_id = true;
    muon_cuts.use_max_iso = true;
    muon_cuts.max_iso = 0.15;
    const std::vector<poetml::Channel> channels{{mu, muon_cuts}, {met, poetml::Cuts{}}};

    poetml::ImageSpec spec;  // 32 x 32, eta in [-2.5, 2.5), histogram
    const std::int64_t n_channels = 2;
    std::vector<float> images(static_cast<std::size_t>(n_events * spec.n_eta * spec.n_phi * n_channels));
    std::vector<std::int64_t> dropped(n_channels);
    poetml::rasterize(channels, n_events, spec, images.data(), dropped.data(), /*n_threads=*/0);
    // images[((event * n_eta + ix) * n_phi + iy) * n_channels + channel], channels last

    std::printf("%lld events, %lld selected muons outside |eta| < 2.5\n",
                static_cast<long long>(n_events), static_cast<long long>(dropped[0]));
}
