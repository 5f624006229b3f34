// -*- C++ -*-
//
// Package:    PoetML/PhysObjectExtractor
// Class:      MetAnalyzer
//
// Writes the missing transverse momentum of a MiniAOD event (pat::MET, `slimmedMETs`: PF
// MET with the type-1 correction computed when the MiniAOD was made) into the TTree `Events`
// of its TFileService directory (`mymets` in poet_cfg.py), one entry per event: plain float
// scalars, no vectors.  Branch names and C++ types are those of
// poetml.schema.POET_COLLECTIONS["met"]; tests/test_analyzers.py checks that they agree.

#include "FWCore/Framework/interface/Event.h"
#include "FWCore/Framework/interface/Frameworkfwd.h"
#include "FWCore/Framework/interface/MakerMacros.h"
#include "FWCore/Framework/interface/one/EDAnalyzer.h"
#include "FWCore/ParameterSet/interface/ConfigurationDescriptions.h"
#include "FWCore/ParameterSet/interface/ParameterSet.h"
#include "FWCore/ParameterSet/interface/ParameterSetDescription.h"
#include "FWCore/ServiceRegistry/interface/Service.h"
#include "FWCore/Utilities/interface/Exception.h"
#include "FWCore/Utilities/interface/InputTag.h"

#include "CommonTools/UtilAlgos/interface/TFileService.h"
#include "DataFormats/PatCandidates/interface/MET.h"

#include "TTree.h"

class MetAnalyzer : public edm::one::EDAnalyzer<edm::one::SharedResources> {
public:
  explicit MetAnalyzer(const edm::ParameterSet&);
  static void fillDescriptions(edm::ConfigurationDescriptions& descriptions);

private:
  void analyze(const edm::Event&, const edm::EventSetup&) override;

  const edm::EDGetTokenT<pat::METCollection> metToken_;

  // ----------member data: one variable per branch ---------------------------
  TTree* mtree;
  float met_e;
  float met_pt;
  float met_px;
  float met_py;
  float met_phi;
  float met_sumet;
  float met_significance;
};

MetAnalyzer::MetAnalyzer(const edm::ParameterSet& iConfig)
    : metToken_(consumes<pat::METCollection>(iConfig.getParameter<edm::InputTag>("mets"))) {
  usesResource("TFileService");
  edm::Service<TFileService> fs;
  mtree = fs->make<TTree>("Events", "Events");

  mtree->Branch("met_e", &met_e);
  mtree->GetBranch("met_e")->SetTitle("MET energy [GeV] (equals met_pt: the MET four-vector has no z component)");
  mtree->Branch("met_pt", &met_pt);
  mtree->GetBranch("met_pt")->SetTitle("missing transverse momentum [GeV]");
  mtree->Branch("met_px", &met_px);
  mtree->GetBranch("met_px")->SetTitle("missing momentum x-component [GeV]");
  mtree->Branch("met_py", &met_py);
  mtree->GetBranch("met_py")->SetTitle("missing momentum y-component [GeV]");
  mtree->Branch("met_phi", &met_phi);
  mtree->GetBranch("met_phi")->SetTitle("missing momentum azimuth [rad]");
  mtree->Branch("met_sumet", &met_sumet);
  mtree->GetBranch("met_sumet")->SetTitle("scalar sum of transverse energy [GeV]");
  mtree->Branch("met_significance", &met_significance);
  mtree->GetBranch("met_significance")->SetTitle("MET significance (-1 when the file holds no covariance)");
}

void MetAnalyzer::analyze(const edm::Event& iEvent, const edm::EventSetup&) {
  edm::Handle<pat::METCollection> mets;
  iEvent.getByToken(metToken_, mets);
  if (mets->empty())
    throw cms::Exception("ProductNotValid") << "MetAnalyzer: the MET collection is empty";
  const pat::MET& met = mets->front();

  met_e = met.energy();
  met_pt = met.pt();
  met_px = met.px();
  met_py = met.py();
  met_phi = met.phi();
  met_sumet = met.sumEt();
  met_significance = met.significance();

  mtree->Fill();
}

void MetAnalyzer::fillDescriptions(edm::ConfigurationDescriptions& descriptions) {
  edm::ParameterSetDescription desc;
  desc.add<edm::InputTag>("mets", edm::InputTag("slimmedMETs"));
  descriptions.add("mymets", desc);
}

// define this as a plug-in
DEFINE_FWK_MODULE(MetAnalyzer);
