// -*- C++ -*-
//
// Package:    PoetML/PhysObjectExtractor
// Class:      GenParticleAnalyzer
//
// Simulation only.  Writes the generator particles of `prunedGenParticles` chosen by the
// `input_particle` list ("status:pdgId", see interface/GenParticleSelection.h) and the
// generator-level MET into the TTree `Events` of its TFileService directory
// (`mygenparticles` in poet_cfg.py), one entry per event.  Branch names and C++ types are
// those of poetml.schema.POET_COLLECTIONS["genparticle"]; tests/test_analyzers.py checks
// that they agree.
//
// GenMET is the "true" generator MET MiniAOD keeps inside the reconstructed pat::MET
// (pat::MET::genMET(): the vector sum of the invisible final-state particles, neutrinos).

#include <string>
#include <vector>

#include "FWCore/Framework/interface/Event.h"
#include "FWCore/Framework/interface/Frameworkfwd.h"
#include "FWCore/Framework/interface/MakerMacros.h"
#include "FWCore/Framework/interface/one/EDAnalyzer.h"
#include "FWCore/MessageLogger/interface/MessageLogger.h"
#include "FWCore/ParameterSet/interface/ConfigurationDescriptions.h"
#include "FWCore/ParameterSet/interface/ParameterSet.h"
#include "FWCore/ParameterSet/interface/ParameterSetDescription.h"
#include "FWCore/ServiceRegistry/interface/Service.h"
#include "FWCore/Utilities/interface/InputTag.h"

#include "CommonTools/UtilAlgos/interface/TFileService.h"
#include "DataFormats/HepMCCandidate/interface/GenParticle.h"
#include "DataFormats/METReco/interface/GenMET.h"
#include "DataFormats/PatCandidates/interface/MET.h"

#include "PoetML/PhysObjectExtractor/interface/GenParticleSelection.h"

#include "TTree.h"

class GenParticleAnalyzer : public edm::one::EDAnalyzer<edm::one::SharedResources> {
public:
  explicit GenParticleAnalyzer(const edm::ParameterSet&);
  static void fillDescriptions(edm::ConfigurationDescriptions& descriptions);

private:
  void analyze(const edm::Event&, const edm::EventSetup&) override;
  void clear();

  const edm::EDGetTokenT<reco::GenParticleCollection> genToken_;
  const edm::EDGetTokenT<pat::METCollection> metToken_;
  const poet::GenParticleSelection selection_;
  bool warnedNoGenMET_ = false;

  // ----------member data: one variable per branch ---------------------------
  TTree* mtree;
  int numGenPart;
  std::vector<float> GenPart_pt;
  std::vector<float> GenPart_eta;
  std::vector<float> GenPart_phi;
  std::vector<float> GenPart_mass;
  std::vector<int> GenPart_pdgId;
  std::vector<int> GenPart_status;
  std::vector<float> GenPart_px;
  std::vector<float> GenPart_py;
  std::vector<float> GenPart_pz;
  float GenMET_pt;
  float GenMET_phi;
};

GenParticleAnalyzer::GenParticleAnalyzer(const edm::ParameterSet& iConfig)
    : genToken_(consumes<reco::GenParticleCollection>(iConfig.getParameter<edm::InputTag>("genparticles"))),
      metToken_(consumes<pat::METCollection>(iConfig.getParameter<edm::InputTag>("mets"))),
      selection_(iConfig.getParameter<std::vector<std::string>>("input_particle")) {
  usesResource("TFileService");
  edm::Service<TFileService> fs;
  mtree = fs->make<TTree>("Events", "Events");

  mtree->Branch("numGenPart", &numGenPart);
  mtree->GetBranch("numGenPart")->SetTitle("number of stored generator particles");
  mtree->Branch("GenPart_pt", &GenPart_pt);
  mtree->GetBranch("GenPart_pt")->SetTitle("generator particle transverse momentum [GeV]");
  mtree->Branch("GenPart_eta", &GenPart_eta);
  mtree->GetBranch("GenPart_eta")->SetTitle("generator particle pseudorapidity");
  mtree->Branch("GenPart_phi", &GenPart_phi);
  mtree->GetBranch("GenPart_phi")->SetTitle("generator particle azimuth [rad]");
  mtree->Branch("GenPart_mass", &GenPart_mass);
  mtree->GetBranch("GenPart_mass")->SetTitle("generator particle mass [GeV]");
  mtree->Branch("GenPart_pdgId", &GenPart_pdgId);
  mtree->GetBranch("GenPart_pdgId")->SetTitle("generator particle PDG ID");
  mtree->Branch("GenPart_status", &GenPart_status);
  mtree->GetBranch("GenPart_status")->SetTitle("generator status code (1: stable)");
  mtree->Branch("GenPart_px", &GenPart_px);
  mtree->GetBranch("GenPart_px")->SetTitle("generator particle momentum x-component [GeV]");
  mtree->Branch("GenPart_py", &GenPart_py);
  mtree->GetBranch("GenPart_py")->SetTitle("generator particle momentum y-component [GeV]");
  mtree->Branch("GenPart_pz", &GenPart_pz);
  mtree->GetBranch("GenPart_pz")->SetTitle("generator particle momentum z-component [GeV]");
  mtree->Branch("GenMET_pt", &GenMET_pt);
  mtree->GetBranch("GenMET_pt")->SetTitle("generator-level MET from invisible particles [GeV]");
  mtree->Branch("GenMET_phi", &GenMET_phi);
  mtree->GetBranch("GenMET_phi")->SetTitle("generator-level MET azimuth [rad]");
}

void GenParticleAnalyzer::clear() {
  numGenPart = 0;
  GenPart_pt.clear();
  GenPart_eta.clear();
  GenPart_phi.clear();
  GenPart_mass.clear();
  GenPart_pdgId.clear();
  GenPart_status.clear();
  GenPart_px.clear();
  GenPart_py.clear();
  GenPart_pz.clear();
  GenMET_pt = 0.f;
  GenMET_phi = 0.f;
}

void GenParticleAnalyzer::analyze(const edm::Event& iEvent, const edm::EventSetup&) {
  clear();

  edm::Handle<reco::GenParticleCollection> genParticles;
  iEvent.getByToken(genToken_, genParticles);

  // Same order and same selection as poet::GenParticleSelection::storedIndex, which
  // MuonAnalyzer uses for muon_genpartidx.
  for (const reco::GenParticle& p : *genParticles) {
    if (!selection_.accept(p))
      continue;
    GenPart_pt.push_back(p.pt());
    GenPart_eta.push_back(p.eta());
    GenPart_phi.push_back(p.phi());
    GenPart_mass.push_back(p.mass());
    GenPart_pdgId.push_back(p.pdgId());
    GenPart_status.push_back(p.status());
    GenPart_px.push_back(p.px());
    GenPart_py.push_back(p.py());
    GenPart_pz.push_back(p.pz());
    ++numGenPart;
  }

  edm::Handle<pat::METCollection> mets;
  iEvent.getByToken(metToken_, mets);
  const reco::GenMET* genMET = mets->empty() ? nullptr : mets->front().genMET();
  if (genMET != nullptr) {
    GenMET_pt = genMET->pt();
    GenMET_phi = genMET->phi();
  } else if (!warnedNoGenMET_) {
    warnedNoGenMET_ = true;
    edm::LogWarning("POET") << "GenParticleAnalyzer: the MET collection carries no generator MET; "
                               "GenMET_pt and GenMET_phi are written as 0";
  }

  mtree->Fill();
}

void GenParticleAnalyzer::fillDescriptions(edm::ConfigurationDescriptions& descriptions) {
  edm::ParameterSetDescription desc;
  desc.add<edm::InputTag>("genparticles", edm::InputTag("prunedGenParticles"));
  desc.add<edm::InputTag>("mets", edm::InputTag("slimmedMETs"));
  desc.add<std::vector<std::string>>("input_particle", {"1:11", "1:13", "1:22"});
  descriptions.add("mygenparticles", desc);
}

// define this as a plug-in
DEFINE_FWK_MODULE(GenParticleAnalyzer);
