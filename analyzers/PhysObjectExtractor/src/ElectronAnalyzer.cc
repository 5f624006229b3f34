// -*- C++ -*-
//
// Package:    PoetML/PhysObjectExtractor
// Class:      ElectronAnalyzer
//
// Writes the electrons of a MiniAOD event (pat::Electron, `slimmedElectrons`) into the TTree
// `Events` of its TFileService directory (`myelectrons` in poet_cfg.py), one entry per event.
// Branch names and C++ types are those of poetml.schema.POET_COLLECTIONS["electron"];
// tests/test_analyzers.py checks that they agree.
//
// IDs: the cut-based Spring15 (25 ns) working points that 2015 MiniAOD stores inside each
// pat::Electron; the names are parameters.  Isolation: PF isolation in a cone of 0.3,
// relative to pT, with the rho * effective-area pile-up correction those IDs use.

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "FWCore/Framework/interface/Event.h"
#include "FWCore/Framework/interface/Frameworkfwd.h"
#include "FWCore/Framework/interface/MakerMacros.h"
#include "FWCore/Framework/interface/one/EDAnalyzer.h"
#include "FWCore/ParameterSet/interface/ConfigurationDescriptions.h"
#include "FWCore/ParameterSet/interface/FileInPath.h"
#include "FWCore/ParameterSet/interface/ParameterSet.h"
#include "FWCore/ParameterSet/interface/ParameterSetDescription.h"
#include "FWCore/ServiceRegistry/interface/Service.h"
#include "FWCore/Utilities/interface/Exception.h"
#include "FWCore/Utilities/interface/InputTag.h"

#include "CommonTools/UtilAlgos/interface/TFileService.h"
#include "DataFormats/PatCandidates/interface/Electron.h"
#include "DataFormats/VertexReco/interface/Vertex.h"
#include "DataFormats/VertexReco/interface/VertexFwd.h"
#include "RecoEgamma/EgammaTools/interface/EffectiveAreas.h"

#include "TTree.h"

class ElectronAnalyzer : public edm::one::EDAnalyzer<edm::one::SharedResources> {
public:
  explicit ElectronAnalyzer(const edm::ParameterSet&);
  static void fillDescriptions(edm::ConfigurationDescriptions& descriptions);

private:
  void analyze(const edm::Event&, const edm::EventSetup&) override;
  void clear();
  int passes(const pat::Electron& el, const std::string& id) const;

  const edm::EDGetTokenT<pat::ElectronCollection> electronToken_;
  const edm::EDGetTokenT<reco::VertexCollection> vtxToken_;
  const edm::EDGetTokenT<double> rhoToken_;
  const EffectiveAreas effectiveAreas_;
  const std::string idLoose_, idMedium_, idTight_;

  // ----------member data: one variable per branch ---------------------------
  TTree* mtree;
  int numelectron;  // number of electrons in the event
  std::vector<float> electron_e;
  std::vector<float> electron_pt;
  std::vector<float> electron_px;
  std::vector<float> electron_py;
  std::vector<float> electron_pz;
  std::vector<float> electron_eta;
  std::vector<float> electron_phi;
  std::vector<int> electron_ch;
  std::vector<float> electron_iso;
  std::vector<int> electron_isLoose;
  std::vector<int> electron_isMedium;
  std::vector<int> electron_isTight;
  std::vector<float> electron_dxy;
  std::vector<float> electron_dz;
  std::vector<float> electron_dxyError;
  std::vector<float> electron_dzError;
};

ElectronAnalyzer::ElectronAnalyzer(const edm::ParameterSet& iConfig)
    : electronToken_(consumes<pat::ElectronCollection>(iConfig.getParameter<edm::InputTag>("electrons"))),
      vtxToken_(consumes<reco::VertexCollection>(iConfig.getParameter<edm::InputTag>("vertices"))),
      rhoToken_(consumes<double>(iConfig.getParameter<edm::InputTag>("rho"))),
      effectiveAreas_(iConfig.getParameter<edm::FileInPath>("effAreasConfigFile").fullPath()),
      idLoose_(iConfig.getParameter<std::string>("idLoose")),
      idMedium_(iConfig.getParameter<std::string>("idMedium")),
      idTight_(iConfig.getParameter<std::string>("idTight")) {
  usesResource("TFileService");
  edm::Service<TFileService> fs;
  mtree = fs->make<TTree>("Events", "Events");

  mtree->Branch("numberelectron", &numelectron);
  mtree->GetBranch("numberelectron")->SetTitle("number of electrons in the event");
  mtree->Branch("electron_e", &electron_e);
  mtree->GetBranch("electron_e")->SetTitle("electron energy [GeV]");
  mtree->Branch("electron_pt", &electron_pt);
  mtree->GetBranch("electron_pt")->SetTitle("electron transverse momentum [GeV]");
  mtree->Branch("electron_px", &electron_px);
  mtree->GetBranch("electron_px")->SetTitle("electron momentum x-component [GeV]");
  mtree->Branch("electron_py", &electron_py);
  mtree->GetBranch("electron_py")->SetTitle("electron momentum y-component [GeV]");
  mtree->Branch("electron_pz", &electron_pz);
  mtree->GetBranch("electron_pz")->SetTitle("electron momentum z-component [GeV]");
  mtree->Branch("electron_eta", &electron_eta);
  mtree->GetBranch("electron_eta")->SetTitle("electron pseudorapidity");
  mtree->Branch("electron_phi", &electron_phi);
  mtree->GetBranch("electron_phi")->SetTitle("electron azimuth [rad]");
  mtree->Branch("electron_ch", &electron_ch);
  mtree->GetBranch("electron_ch")->SetTitle("electron charge");
  mtree->Branch("electron_iso", &electron_iso);
  mtree->GetBranch("electron_iso")->SetTitle("electron PF relative isolation dR<0.3, rho*EA corrected");
  mtree->Branch("electron_isLoose", &electron_isLoose);
  mtree->GetBranch("electron_isLoose")->SetTitle("electron passes the cut-based loose ID");
  mtree->Branch("electron_isMedium", &electron_isMedium);
  mtree->GetBranch("electron_isMedium")->SetTitle("electron passes the cut-based medium ID");
  mtree->Branch("electron_isTight", &electron_isTight);
  mtree->GetBranch("electron_isTight")->SetTitle("electron passes the cut-based tight ID");
  mtree->Branch("electron_dxy", &electron_dxy);
  mtree->GetBranch("electron_dxy")->SetTitle("electron transverse impact parameter w.r.t. the primary vertex [cm]");
  mtree->Branch("electron_dz", &electron_dz);
  mtree->GetBranch("electron_dz")->SetTitle("electron longitudinal impact parameter w.r.t. the primary vertex [cm]");
  mtree->Branch("electron_dxyError", &electron_dxyError);
  mtree->GetBranch("electron_dxyError")->SetTitle("uncertainty on electron_dxy [cm]");
  mtree->Branch("electron_dzError", &electron_dzError);
  mtree->GetBranch("electron_dzError")->SetTitle("uncertainty on electron_dz [cm]");
}

void ElectronAnalyzer::clear() {
  numelectron = 0;
  electron_e.clear();
  electron_pt.clear();
  electron_px.clear();
  electron_py.clear();
  electron_pz.clear();
  electron_eta.clear();
  electron_phi.clear();
  electron_ch.clear();
  electron_iso.clear();
  electron_isLoose.clear();
  electron_isMedium.clear();
  electron_isTight.clear();
  electron_dxy.clear();
  electron_dz.clear();
  electron_dxyError.clear();
  electron_dzError.clear();
}

// 1 if the electron passes the ID stored under `id`; a missing ID is a configuration
// error that lists the IDs the file does have.
int ElectronAnalyzer::passes(const pat::Electron& el, const std::string& id) const {
  if (!el.isElectronIDAvailable(id)) {
    std::ostringstream available;
    for (const pat::Electron::IdPair& p : el.electronIDs())
      available << "\n  " << p.first;
    throw cms::Exception("Configuration") << "ElectronAnalyzer: electron ID '" << id
                                          << "' is not stored in this file; available IDs:" << available.str();
  }
  return el.electronID(id) > 0.5f ? 1 : 0;
}

void ElectronAnalyzer::analyze(const edm::Event& iEvent, const edm::EventSetup&) {
  clear();

  edm::Handle<pat::ElectronCollection> electrons;
  iEvent.getByToken(electronToken_, electrons);

  edm::Handle<reco::VertexCollection> vertices;
  iEvent.getByToken(vtxToken_, vertices);
  // Fill every event (no early return) so the POET trees stay aligned entry by entry.
  const math::XYZPoint origin(0., 0., 0.);
  const math::XYZPoint& pv = vertices->empty() ? origin : vertices->front().position();

  edm::Handle<double> rho;
  iEvent.getByToken(rhoToken_, rho);

  for (const pat::Electron& el : *electrons) {
    electron_e.push_back(el.energy());
    electron_pt.push_back(el.pt());
    electron_px.push_back(el.px());
    electron_py.push_back(el.py());
    electron_pz.push_back(el.pz());
    electron_eta.push_back(el.eta());
    electron_phi.push_back(el.phi());
    electron_ch.push_back(el.charge());

    const reco::GsfElectron::PflowIsolationVariables& pfIso = el.pfIsolationVariables();
    const float area = effectiveAreas_.getEffectiveArea(std::abs(el.superCluster()->eta()));
    const double neutral = std::max(0.0, pfIso.sumNeutralHadronEt + pfIso.sumPhotonEt - (*rho) * area);
    electron_iso.push_back((pfIso.sumChargedHadronPt + neutral) / el.pt());

    electron_isLoose.push_back(passes(el, idLoose_));
    electron_isMedium.push_back(passes(el, idMedium_));
    electron_isTight.push_back(passes(el, idTight_));

    const reco::GsfTrackRef track = el.gsfTrack();
    electron_dxy.push_back(track->dxy(pv));
    electron_dz.push_back(track->dz(pv));
    electron_dxyError.push_back(track->dxyError());
    electron_dzError.push_back(track->dzError());

    ++numelectron;
  }

  mtree->Fill();
}

void ElectronAnalyzer::fillDescriptions(edm::ConfigurationDescriptions& descriptions) {
  edm::ParameterSetDescription desc;
  desc.add<edm::InputTag>("electrons", edm::InputTag("slimmedElectrons"));
  desc.add<edm::InputTag>("vertices", edm::InputTag("offlineSlimmedPrimaryVertices"));
  desc.add<edm::InputTag>("rho", edm::InputTag("fixedGridRhoFastjetAll"));
  desc.add<edm::FileInPath>(
      "effAreasConfigFile",
      edm::FileInPath("RecoEgamma/ElectronIdentification/data/Spring15/effAreaElectrons_cone03_pfNeuHadronsAndPhotons_25ns.txt"));
  desc.add<std::string>("idLoose", "cutBasedElectronID-Spring15-25ns-V1-standalone-loose");
  desc.add<std::string>("idMedium", "cutBasedElectronID-Spring15-25ns-V1-standalone-medium");
  desc.add<std::string>("idTight", "cutBasedElectronID-Spring15-25ns-V1-standalone-tight");
  descriptions.add("myelectrons", desc);
}

// define this as a plug-in
DEFINE_FWK_MODULE(ElectronAnalyzer);
