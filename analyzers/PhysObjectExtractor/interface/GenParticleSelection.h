#ifndef PoetML_PhysObjectExtractor_GenParticleSelection_h
#define PoetML_PhysObjectExtractor_GenParticleSelection_h
// -*- C++ -*-
//
// Package:    PoetML/PhysObjectExtractor
// Class:      poet::GenParticleSelection
//
// Which generator particles of `prunedGenParticles` the GenParticleAnalyzer stores.
// GenParticleAnalyzer and MuonAnalyzer are configured with the same `input_particle`
// list in poet_cfg.py, so MuonAnalyzer can turn a muon's generator match (a key into
// prunedGenParticles) into an index into the stored GenPart_* vectors.
//
// Each entry is "status:pdgId".  pdgId matches both charges (|pdgId|); 0 in either
// place matches anything, so "0:0" keeps every particle and "1:0" every final-state one.

#include <cstdlib>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "DataFormats/HepMCCandidate/interface/GenParticle.h"
#include "DataFormats/HepMCCandidate/interface/GenParticleFwd.h"
#include "FWCore/Utilities/interface/Exception.h"

namespace poet {

  class GenParticleSelection {
  public:
    explicit GenParticleSelection(const std::vector<std::string>& patterns) {
      for (const std::string& p : patterns) {
        const std::size_t colon = p.find(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == p.size())
          throw cms::Exception("Configuration")
              << "input_particle entry '" << p << "' is not of the form status:pdgId (e.g. 1:13)";
        try {
          wanted_.emplace_back(std::stoi(p.substr(0, colon)), std::abs(std::stoi(p.substr(colon + 1))));
        } catch (const std::exception&) {
          throw cms::Exception("Configuration")
              << "input_particle entry '" << p << "': status and pdgId must be integers";
        }
      }
    }

    /// True if `p` matches any of the configured status:pdgId patterns.
    bool accept(const reco::GenParticle& p) const {
      const int id = std::abs(p.pdgId());
      for (const auto& w : wanted_) {
        if ((w.first == 0 || w.first == p.status()) && (w.second == 0 || w.second == id))
          return true;
      }
      return false;
    }

    /// Position of particles[key] among the accepted particles of `particles` (the index
    /// it has in the GenPart_* branches), or -1 when it is not stored.
    int storedIndex(const reco::GenParticleCollection& particles, std::size_t key) const {
      if (key >= particles.size() || !accept(particles[key]))
        return -1;
      int index = 0;
      for (std::size_t i = 0; i < key; ++i) {
        if (accept(particles[i]))
          ++index;
      }
      return index;
    }

  private:
    std::vector<std::pair<int, int>> wanted_;  // (status, |pdgId|), 0 = any
  };

}  // namespace poet

#endif
