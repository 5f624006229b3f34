// -*- C++ -*-
//
// Package:    PoetML/PhysObjectExtractor
// Class:      MuonAnalyzer
//
// Writes the muons of a MiniAOD event (pat::Muon, `slimmedMuons`) into the TTree `Events`
// of its TFileService directory (the module label, `mymuons` in poet_cfg.py), one entry per
// event.  Branch names and C++ types are those of poetml.schema.POET_COLLECTIONS["muon"];
// tests/test_analyzers.py parses the Branch() calls below and fails if they drift apart.
//
// Every event is filled, even one without a primary vertex, so that the trees of all POET
// analyzers stay aligned entry by entry (poetml joins them by entry number).

#include <algorithm>
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
#include "FWCore/Utilities/interface/InputTag.h"

#include "CommonTools/UtilAlgos/interface/TFileService.h"
#include "DataFormats/HepMCCandidate/interface/GenParticle.h"
#include "DataFormats/PatCandidates/interface/Muon.h"
#include "DataFormats/VertexReco/interface/Vertex.h"
#include "DataFormats/VertexReco/interface/VertexFwd.h"

#include "PoetML/PhysObjectExtractor/interface/GenParticleSelection.h"

#include "TTree.h"

class MuonAnalyzer : public edm::one::EDAnalyzer<edm::one::SharedResources> {
public:
  explicit MuonAnalyzer(const edm::ParameterSet&);
  static void fillDescriptions(edm::ConfigurationDescriptions& descriptions);

private:
  void analyze(const edm::Event&, const edm::EventSetup&) override;
  void clear();

  const bool isData_;
  const edm::EDGetTokenT<pat::MuonCollection> muonToken_;
  const edm::EDGetTokenT<reco::VertexCollection> vtxToken_;
  edm::EDGetTokenT<reco::GenParticleCollection> genToken_;  // simulation only
  const poet::GenParticleSelection genSelection_;

  // ----------member data: one variable per branch ---------------------------
  TTree* mtree;
  int nummuon;  // number of muons in the event
  std::vector<float> muon_e;
  std::vector<float> muon_pt;
  std::vector<float> muon_px;
  std::vector<float> muon_py;
  std::vector<float> muon_pz;
  std::vector<float> muon_eta;
  std::vector<float> muon_phi;
  std::vector<int> muon_ch;
  std::vector<int> muon_isLoose;
  std::vector<int> muon_isMedium;
  std::vector<int> muon_isTight;
  std::vector<float> muon_pfreliso03all;
  std::vector<float> muon_pfreliso04all;
  std::vector<float> muon_pfreliso04DBCorr;
  std::vector<float> muon_dxy;
  std::vector<float> muon_dz;
  std::vector<float> muon_dxyError;
  std::vector<float> muon_dzError;
  std::vector<int> muon_genpartidx;
};

MuonAnalyzer::MuonAnalyzer(const edm::ParameterSet& iConfig)
    : isData_(iConfig.getParameter<bool>("isData")),
      muonToken_(consumes<pat::MuonCollection>(iConfig.getParameter<edm::InputTag>("muons"))),
      vtxToken_(consumes<reco::VertexCollection>(iConfig.getParameter<edm::InputTag>("vertices"))),
      genSelection_(iConfig.getParameter<std::vector<std::string>>("input_particle")) {
  if (!isData_)
    genToken_ = consumes<reco::GenParticleCollection>(iConfig.getParameter<edm::InputTag>("genparticles"));

  usesResource("TFileService");
  edm::Service<TFileService> fs;
  mtree = fs->make<TTree>("Events", "Events");

  mtree->Branch("numbermuon", &nummuon);
  mtree->GetBranch("numbermuon")->SetTitle("number of muons in the event");
  mtree->Branch("muon_e", &muon_e);
  mtree->GetBranch("muon_e")->SetTitle("muon energy [GeV]");
  mtree->Branch("muon_pt", &muon_pt);
  mtree->GetBranch("muon_pt")->SetTitle("muon transverse momentum [GeV]");
  mtree->Branch("muon_px", &muon_px);
  mtree->GetBranch("muon_px")->SetTitle("muon momentum x-component [GeV]");
  mtree->Branch("muon_py", &muon_py);
  mtree->GetBranch("muon_py")->SetTitle("muon momentum y-component [GeV]");
  mtree->Branch("muon_pz", &muon_pz);
  mtree->GetBranch("muon_pz")->SetTitle("muon momentum z-component [GeV]");
  mtree->Branch("muon_eta", &muon_eta);
  mtree->GetBranch("muon_eta")->SetTitle("muon pseudorapidity");
  mtree->Branch("muon_phi", &muon_phi);
  mtree->GetBranch("muon_phi")->SetTitle("muon azimuth [rad]");
  mtree->Branch("muon_ch", &muon_ch);
  mtree->GetBranch("muon_ch")->SetTitle("muon charge");
  mtree->Branch("muon_isLoose", &muon_isLoose);
  mtree->GetBranch("muon_isLoose")->SetTitle("muon passes the loose ID");
  mtree->Branch("muon_isMedium", &muon_isMedium);
  mtree->GetBranch("muon_isMedium")->SetTitle("muon passes the medium ID");
  mtree->Branch("muon_isTight", &muon_isTight);
  mtree->GetBranch("muon_isTight")->SetTitle("muon passes the tight ID (w.r.t. the leading primary vertex)");
  mtree->Branch("muon_pfreliso03all", &muon_pfreliso03all);
  mtree->GetBranch("muon_pfreliso03all")->SetTitle("muon PF relative isolation dR<0.3, all particles (charged from the PV + neutral + photons)");
  mtree->Branch("muon_pfreliso04all", &muon_pfreliso04all);
  mtree->GetBranch("muon_pfreliso04all")->SetTitle("muon PF relative isolation dR<0.4, all particles (charged from the PV + neutral + photons)");
  mtree->Branch("muon_pfreliso04DBCorr", &muon_pfreliso04DBCorr);
  mtree->GetBranch("muon_pfreliso04DBCorr")->SetTitle("muon PF relative isolation dR<0.4, delta-beta corrected (neutral + photons - 0.5 x pile-up charged, floored at 0)");
  mtree->Branch("muon_dxy", &muon_dxy);
  mtree->GetBranch("muon_dxy")->SetTitle("muon transverse impact parameter w.r.t. the primary vertex [cm]");
  mtree->Branch("muon_dz", &muon_dz);
  mtree->GetBranch("muon_dz")->SetTitle("muon longitudinal impact parameter w.r.t. the primary vertex [cm]");
  mtree->Branch("muon_dxyError", &muon_dxyError);
  mtree->GetBranch("muon_dxyError")->SetTitle("uncertainty on muon_dxy [cm] (-1: no track)");
  mtree->Branch("muon_dzError", &muon_dzError);
  mtree->GetBranch("muon_dzError")->SetTitle("uncertainty on muon_dz [cm] (-1: no track)");
  mtree->Branch("muon_genpartidx", &muon_genpartidx);
  mtree->GetBranch("muon_genpartidx")->SetTitle("index of the matched generator particle in GenPart_* (-1: none)");
}

void MuonAnalyzer::clear() {
  nummuon = 0;
  muon_e.clear();
  muon_pt.clear();
  muon_px.clear();
  muon_py.clear();
  muon_pz.clear();
  muon_eta.clear();
  muon_phi.clear();
  muon_ch.clear();
  muon_isLoose.clear();
  muon_isMedium.clear();
  muon_isTight.clear();
  muon_pfreliso03all.clear();
  muon_pfreliso04all.clear();
  muon_pfreliso04DBCorr.clear();
  muon_dxy.clear();
  muon_dz.clear();
  muon_dxyError.clear();
  muon_dzError.clear();
  muon_genpartidx.clear();
}

// PF isolation sum of a cone relative to the muon pT: charged hadrons from the primary
// vertex plus neutral hadrons and photons (POET's "all").
static float relativeIsolation(const reco::MuonPFIsolation& iso, double pt) {
  return (iso.sumChargedHadronPt + iso.sumNeutralHadronEt + iso.sumPhotonEt) / pt;
}

// The same with the delta-beta pile-up correction that CMS muon selections use: neutral
// deposits minus half the charged pile-up deposits, floored at 0 (POET's "DBCorr").
static float relativeIsolationDeltaBeta(const reco::MuonPFIsolation& iso, double pt) {
  const double neutral = std::max(0.0, iso.sumNeutralHadronEt + iso.sumPhotonEt - 0.5 * iso.sumPUPt);
  return (iso.sumChargedHadronPt + neutral) / pt;
}

void MuonAnalyzer::analyze(const edm::Event& iEvent, const edm::EventSetup&) {
  clear();

  edm::Handle<pat::MuonCollection> muons;
  iEvent.getByToken(muonToken_, muons);

  edm::Handle<reco::VertexCollection> vertices;
  iEvent.getByToken(vtxToken_, vertices);
  const reco::Vertex* pv = vertices->empty() ? nullptr : &vertices->front();

  edm::Handle<reco::GenParticleCollection> genParticles;
  if (!isData_)
    iEvent.getByToken(genToken_, genParticles);

  for (const pat::Muon& mu : *muons) {
    muon_e.push_back(mu.energy());
    muon_pt.push_back(mu.pt());
    muon_px.push_back(mu.px());
    muon_py.push_back(mu.py());
    muon_pz.push_back(mu.pz());
    muon_eta.push_back(mu.eta());
    muon_phi.push_back(mu.phi());
    muon_ch.push_back(mu.charge());
    muon_isLoose.push_back(mu.isLooseMuon());
    muon_isMedium.push_back(mu.isMediumMuon());
    muon_isTight.push_back(pv != nullptr && mu.isTightMuon(*pv));
    muon_pfreliso03all.push_back(relativeIsolation(mu.pfIsolationR03(), mu.pt()));
    muon_pfreliso04all.push_back(relativeIsolation(mu.pfIsolationR04(), mu.pt()));
    muon_pfreliso04DBCorr.push_back(relativeIsolationDeltaBeta(mu.pfIsolationR04(), mu.pt()));

    const reco::TrackRef track = mu.muonBestTrack();
    if (track.isNonnull()) {
      muon_dxy.push_back(pv ? track->dxy(pv->position()) : track->dxy());
      muon_dz.push_back(pv ? track->dz(pv->position()) : track->dz());
      muon_dxyError.push_back(track->dxyError());
      muon_dzError.push_back(track->dzError());
    } else {
      muon_dxy.push_back(0.f);
      muon_dz.push_back(0.f);
      muon_dxyError.push_back(-1.f);
      muon_dzError.push_back(-1.f);
    }

    // The generator match PAT embedded in the muon refers to prunedGenParticles.
    int genIndex = -1;
    if (!isData_ && genParticles.isValid()) {
      const reco::GenParticleRef gen = mu.genParticleRef();
      if (gen.isNonnull() && gen.id() == genParticles.id())
        genIndex = genSelection_.storedIndex(*genParticles, gen.key());
    }
    muon_genpartidx.push_back(genIndex);

    ++nummuon;
  }

  mtree->Fill();
}

void MuonAnalyzer::fillDescriptions(edm::ConfigurationDescriptions& descriptions) {
  edm::ParameterSetDescription desc;
  desc.add<bool>("isData", false);
  desc.add<edm::InputTag>("muons", edm::InputTag("slimmedMuons"));
  desc.add<edm::InputTag>("vertices", edm::InputTag("offlineSlimmedPrimaryVertices"));
  desc.add<edm::InputTag>("genparticles", edm::InputTag("prunedGenParticles"));
  desc.add<std::vector<std::string>>("input_particle", {"1:11", "1:13", "1:22"});
  descriptions.add("mymuons", desc);
}

// define this as a plug-in
DEFINE_FWK_MODULE(MuonAnalyzer);
