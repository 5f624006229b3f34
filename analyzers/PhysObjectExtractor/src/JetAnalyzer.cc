// -*- C++ -*-
//
// Package:    PoetML/PhysObjectExtractor
// Class:      JetAnalyzer
//
// Writes the AK4 (PF CHS) jets of a MiniAOD event into the TTree `Events` of its
// TFileService directory (`myjets` in poet_cfg.py), one entry per event.  Branch names and
// C++ types are those of poetml.schema.POET_COLLECTIONS["jet"]; tests/test_analyzers.py
// checks that they agree.
//
// The input is a pat::Jet collection whose jet energy corrections were re-applied from the
// global tag in poet_cfg.py (updatedPatJets: L1FastJet, L2Relative, L3Absolute, plus
// L2L3Residual for collision data) after the loose PF jet ID.  For each jet:
//   jet_pt, jet_e         uncorrected (correctedJet("Uncorrected"))
//   jet_corrpt, jet_corre fully corrected (the jet as it comes)
//   jet_mass              corrected mass, so that (jet_corrpt, eta, phi, jet_mass) is one
//                         consistent four-vector, as NanoAOD Jet_pt/Jet_mass are
//   jet_btag              CSVv2, pfCombinedInclusiveSecondaryVertexV2BJetTags
//   jet_hflav             hadron flavour (5 b, 4 c, 0 light) in simulation, -1 in data
// No jet energy resolution smearing is applied.

#include <sstream>
#include <string>
#include <vector>

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
#include "DataFormats/PatCandidates/interface/Jet.h"

#include "TTree.h"

class JetAnalyzer : public edm::one::EDAnalyzer<edm::one::SharedResources> {
public:
  explicit JetAnalyzer(const edm::ParameterSet&);
  static void fillDescriptions(edm::ConfigurationDescriptions& descriptions);

private:
  void analyze(const edm::Event&, const edm::EventSetup&) override;
  void clear();
  void checkBtagLabel(const pat::Jet& jet);

  const bool isData_;
  const edm::EDGetTokenT<pat::JetCollection> jetToken_;
  const double minCorrPt_;
  const std::string btagLabel_;
  bool btagChecked_ = false;

  // ----------member data: one variable per branch ---------------------------
  TTree* mtree;
  int numjet;  // number of jets in the event
  std::vector<float> jet_e;
  std::vector<float> jet_pt;
  std::vector<float> jet_eta;
  std::vector<float> jet_phi;
  std::vector<float> jet_mass;
  std::vector<float> jet_btag;
  std::vector<int> jet_hflav;
  std::vector<float> jet_corrpt;
  std::vector<float> jet_corre;
};

JetAnalyzer::JetAnalyzer(const edm::ParameterSet& iConfig)
    : isData_(iConfig.getParameter<bool>("isData")),
      jetToken_(consumes<pat::JetCollection>(iConfig.getParameter<edm::InputTag>("jets"))),
      minCorrPt_(iConfig.getParameter<double>("minCorrPt")),
      btagLabel_(iConfig.getParameter<std::string>("btagDiscriminator")) {
  usesResource("TFileService");
  edm::Service<TFileService> fs;
  mtree = fs->make<TTree>("Events", "Events");

  mtree->Branch("numberjet", &numjet);
  mtree->GetBranch("numberjet")->SetTitle("number of jets in the event");
  mtree->Branch("jet_e", &jet_e);
  mtree->GetBranch("jet_e")->SetTitle("uncorrected jet energy [GeV]");
  mtree->Branch("jet_pt", &jet_pt);
  mtree->GetBranch("jet_pt")->SetTitle("uncorrected jet transverse momentum [GeV]");
  mtree->Branch("jet_eta", &jet_eta);
  mtree->GetBranch("jet_eta")->SetTitle("jet pseudorapidity");
  mtree->Branch("jet_phi", &jet_phi);
  mtree->GetBranch("jet_phi")->SetTitle("jet azimuth [rad]");
  mtree->Branch("jet_mass", &jet_mass);
  mtree->GetBranch("jet_mass")->SetTitle("corrected jet mass [GeV]");
  mtree->Branch("jet_btag", &jet_btag);
  mtree->GetBranch("jet_btag")->SetTitle("jet b-tag discriminant (CSVv2)");
  mtree->Branch("jet_hflav", &jet_hflav);
  mtree->GetBranch("jet_hflav")->SetTitle("jet hadron flavour: 5 b, 4 c, 0 light (simulation); -1 in data");
  mtree->Branch("jet_corrpt", &jet_corrpt);
  mtree->GetBranch("jet_corrpt")->SetTitle("corrected jet transverse momentum [GeV]");
  mtree->Branch("jet_corre", &jet_corre);
  mtree->GetBranch("jet_corre")->SetTitle("corrected jet energy [GeV]");
}

void JetAnalyzer::clear() {
  numjet = 0;
  jet_e.clear();
  jet_pt.clear();
  jet_eta.clear();
  jet_phi.clear();
  jet_mass.clear();
  jet_btag.clear();
  jet_hflav.clear();
  jet_corrpt.clear();
  jet_corre.clear();
}

// A pat::Jet answers bDiscriminator(label) with -1000 for a label it does not hold, which
// would silently fill jet_btag with -1000; check the label once against the first jet.
void JetAnalyzer::checkBtagLabel(const pat::Jet& jet) {
  btagChecked_ = true;
  for (const auto& p : jet.getPairDiscri()) {
    if (p.first == btagLabel_)
      return;
  }
  std::ostringstream available;
  for (const auto& p : jet.getPairDiscri())
    available << "\n  " << p.first;
  throw cms::Exception("Configuration") << "JetAnalyzer: b-tag discriminator '" << btagLabel_
                                        << "' is not stored in these jets; available:" << available.str();
}

void JetAnalyzer::analyze(const edm::Event& iEvent, const edm::EventSetup&) {
  clear();

  edm::Handle<pat::JetCollection> jets;
  iEvent.getByToken(jetToken_, jets);

  for (const pat::Jet& jet : *jets) {
    if (jet.pt() < minCorrPt_)
      continue;
    if (!btagChecked_)
      checkBtagLabel(jet);

    // Jets without correction factors (jecSetsAvailable() false) are uncorrected already.
    const pat::Jet uncorrected = jet.jecSetsAvailable() ? jet.correctedJet("Uncorrected") : jet;

    jet_e.push_back(uncorrected.energy());
    jet_pt.push_back(uncorrected.pt());
    jet_eta.push_back(jet.eta());
    jet_phi.push_back(jet.phi());
    jet_mass.push_back(jet.mass());
    jet_btag.push_back(jet.bDiscriminator(btagLabel_));
    jet_hflav.push_back(isData_ ? -1 : jet.hadronFlavour());
    jet_corrpt.push_back(jet.pt());
    jet_corre.push_back(jet.energy());

    ++numjet;
  }

  mtree->Fill();
}

void JetAnalyzer::fillDescriptions(edm::ConfigurationDescriptions& descriptions) {
  edm::ParameterSetDescription desc;
  desc.add<bool>("isData", false);
  desc.add<edm::InputTag>("jets", edm::InputTag("slimmedJets"));
  desc.add<double>("minCorrPt", 15.0);
  desc.add<std::string>("btagDiscriminator", "pfCombinedInclusiveSecondaryVertexV2BJetTags");
  descriptions.add("myjets", desc);
}

// define this as a plug-in
DEFINE_FWK_MODULE(JetAnalyzer);
