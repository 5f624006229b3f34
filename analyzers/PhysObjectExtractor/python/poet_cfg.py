# POET-style cmsRun configuration for the poetml analyzers (CMSSW_10_6_X, 2015 MiniAOD).
#
#   cmsRun python/poet_cfg.py                         # simulation, 100 events
#   cmsRun python/poet_cfg.py isData=True maxEvents=1000
#   cmsRun python/poet_cfg.py inputFiles=file:my.root outputFile=out.root maxEvents=-1
#
# Output: one ROOT file (default myoutput.root) with a directory per analyzer, named after
# its module label: mymuons/Events, myelectrons/Events, myjets/Events, mymets/Events and, in
# simulation, mygenparticles/Events.  The labels must equal the directories of
# poetml.schema.POET_COLLECTIONS; tests/test_analyzers.py checks it.  Read the file with
# `poetml inspect myoutput.root`.
#
# CMSSW_10_6 runs its configurations with Python 2.7: keep this file 2.7-compatible.
from __future__ import print_function

import FWCore.ParameterSet.Config as cms
import FWCore.ParameterSet.Types as CfgTypes
from FWCore.ParameterSet.VarParsing import VarParsing

# No preset ("analysis"/"python" would pre-register maxEvents, inputFiles and an outputFile
# that gets "_numEvent<N>" appended); every option is registered here.
options = VarParsing()
options.register("isData", False, VarParsing.multiplicity.singleton, VarParsing.varType.bool,
                 "True for collision data, False for simulation")
options.register("maxEvents", 100, VarParsing.multiplicity.singleton, VarParsing.varType.int,
                 "number of events to process (-1: all)")
options.register("inputFiles", "", VarParsing.multiplicity.list, VarParsing.varType.string,
                 "input MiniAOD files (root://... or file:...); default: an open-data example")
options.register("outputFile", "myoutput.root", VarParsing.multiplicity.singleton,
                 VarParsing.varType.string, "TFileService output file")
options.register("reapplyJEC", True, VarParsing.multiplicity.singleton, VarParsing.varType.bool,
                 "re-apply the jet energy corrections of the global tag (needs conditions access)")
options.register("globalTag", "", VarParsing.multiplicity.singleton, VarParsing.varType.string,
                 "global tag (default: the 2015 open-data tag for data or simulation)")
options.register("conditionsSqlite", False, VarParsing.multiplicity.singleton,
                 VarParsing.varType.bool,
                 "read the global tag from the open-data sqlite snapshot on "
                 "/cvmfs/cms-opendata-conddb.cern.ch instead of Frontier")
options.register("lumiMask", "", VarParsing.multiplicity.singleton, VarParsing.varType.string,
                 "certified-luminosity JSON applied to data, e.g. "
                 "Cert_13TeV_16Dec2015ReReco_Collisions15_25ns_JSON_v2.txt")
options.parseArguments()
isData = options.isData

process = cms.Process("POET")

process.load("FWCore.MessageService.MessageLogger_cfi")
process.MessageLogger.cerr.threshold = "WARNING"
process.MessageLogger.cerr.FwkReport.reportEvery = 1000
process.options = cms.untracked.PSet(wantSummary=cms.untracked.bool(True))
process.maxEvents = cms.untracked.PSet(input=cms.untracked.int32(options.maxEvents))

# ---- Input: 2015 MiniAOD from the CERN Open Data portal (xrootd) -----------------------
if options.inputFiles:
    fileNames = options.inputFiles
elif isData:
    fileNames = ["root://eospublic.cern.ch//eos/opendata/cms/Run2015D/DoubleMuon/MINIAOD/"
                 "16Dec2015-v1/10000/000913F7-E9A7-E511-A286-003048FFD79C.root"]
else:
    fileNames = ["root://eospublic.cern.ch//eos/opendata/cms/mc/RunIIFall15MiniAODv2/"
                 "TT_TuneCUETP8M1_13TeV-powheg-pythia8/MINIAODSIM/"
                 "PU25nsData2015v1_76X_mcRun2_asymptotic_v12_ext3-v1/00000/"
                 "02837459-03C2-E511-8EA2-002590A887AC.root"]
process.source = cms.Source("PoolSource", fileNames=cms.untracked.vstring(*fileNames))

if isData and options.lumiMask:
    import FWCore.PythonUtilities.LumiList as LumiList
    lumis = LumiList.LumiList(filename=options.lumiMask).getCMSSWString().split(",")
    process.source.lumisToProcess = CfgTypes.untracked(CfgTypes.VLuminosityBlockRange())
    process.source.lumisToProcess.extend(lumis)

# ---- Conditions: only the jet energy corrections need them --------------------------------
if options.reapplyJEC:
    process.load("Configuration.StandardSequences.Services_cff")
    process.load("Configuration.StandardSequences.FrontierConditions_GlobalTag_cff")
    globalTag = options.globalTag or (
        "76X_dataRun2_16Dec2015_v0" if isData else "76X_mcRun2_asymptotic_RunIIFall15DR76_v1")
    process.GlobalTag.globaltag = globalTag
    if options.conditionsSqlite:
        process.GlobalTag.connect = cms.string(
            "sqlite_file:/cvmfs/cms-opendata-conddb.cern.ch/%s.db" % globalTag)

# ---- Generator particles kept in mygenparticles ("status:pdgId", |pdgId|, 0 = any) --------
# Shared by GenParticleAnalyzer and MuonAnalyzer (muon_genpartidx indexes GenPart_*).
genParticleSelection = cms.vstring(
    "1:11", "1:13", "1:22",          # final-state electrons, muons, photons
    "1:12", "1:14", "1:16",          # final-state neutrinos
    "2:15",                          # decayed taus
    "22:6", "22:23", "22:24", "22:25",  # hard-process top, Z, W, Higgs (Pythia 8 status 22)
)

# ---- POET analyzers: each writes <label>/Events -------------------------------------------
process.mymuons = cms.EDAnalyzer("MuonAnalyzer",
                                 isData=cms.bool(isData),
                                 muons=cms.InputTag("slimmedMuons"),
                                 vertices=cms.InputTag("offlineSlimmedPrimaryVertices"),
                                 genparticles=cms.InputTag("prunedGenParticles"),
                                 input_particle=genParticleSelection)

process.myelectrons = cms.EDAnalyzer("ElectronAnalyzer",
                                     electrons=cms.InputTag("slimmedElectrons"),
                                     vertices=cms.InputTag("offlineSlimmedPrimaryVertices"),
                                     rho=cms.InputTag("fixedGridRhoFastjetAll"),
                                     effAreasConfigFile=cms.FileInPath(
                                         "RecoEgamma/ElectronIdentification/data/Spring15/"
                                         "effAreaElectrons_cone03_pfNeuHadronsAndPhotons_25ns.txt"),
                                     idLoose=cms.string("cutBasedElectronID-Spring15-25ns-V1-standalone-loose"),
                                     idMedium=cms.string("cutBasedElectronID-Spring15-25ns-V1-standalone-medium"),
                                     idTight=cms.string("cutBasedElectronID-Spring15-25ns-V1-standalone-tight"))

# Jets: loose PF jet ID (2015 definition), then the corrections of the global tag.  These
# modules sit on a Task (run when the JetAnalyzer asks for their product) and the ID selector
# has filter=False: no event is ever dropped here, or the POET trees would lose their
# entry-by-entry alignment.
from PhysicsTools.SelectorUtils.pfJetIDSelector_cfi import pfJetIDSelector

process.looseAK4Jets = cms.EDFilter("PFJetIDSelectionFunctorFilter",
                                    filterParams=pfJetIDSelector.clone(
                                        version=cms.string("RUNIISTARTUP"),
                                        quality=cms.string("LOOSE")),
                                    src=cms.InputTag("slimmedJets"),
                                    filter=cms.bool(False))
jetTask = cms.Task(process.looseAK4Jets)
jetInput = "looseAK4Jets"

if options.reapplyJEC:
    from PhysicsTools.PatAlgos.producersLayer1.jetUpdater_cff import (
        updatedPatJetCorrFactors, updatedPatJets)

    process.patJetCorrFactorsReapplyJEC = updatedPatJetCorrFactors.clone(
        src=cms.InputTag("looseAK4Jets"),
        levels=["L1FastJet", "L2Relative", "L3Absolute"],
        payload="AK4PFchs")
    if isData:
        process.patJetCorrFactorsReapplyJEC.levels.append("L2L3Residual")
    process.slimmedJetsNewJEC = updatedPatJets.clone(
        jetSource=cms.InputTag("looseAK4Jets"),
        jetCorrFactorsSource=cms.VInputTag(cms.InputTag("patJetCorrFactorsReapplyJEC")))
    jetTask.add(process.patJetCorrFactorsReapplyJEC, process.slimmedJetsNewJEC)
    jetInput = "slimmedJetsNewJEC"

process.myjets = cms.EDAnalyzer("JetAnalyzer",
                                isData=cms.bool(isData),
                                jets=cms.InputTag(jetInput),
                                minCorrPt=cms.double(15.0),
                                btagDiscriminator=cms.string("pfCombinedInclusiveSecondaryVertexV2BJetTags"))

process.mymets = cms.EDAnalyzer("MetAnalyzer",
                                mets=cms.InputTag("slimmedMETs"))

process.mygenparticles = cms.EDAnalyzer("GenParticleAnalyzer",
                                        genparticles=cms.InputTag("prunedGenParticles"),
                                        mets=cms.InputTag("slimmedMETs"),
                                        input_particle=genParticleSelection)

# ---- Output and path ---------------------------------------------------------------------
process.TFileService = cms.Service("TFileService", fileName=cms.string(options.outputFile))

process.p = cms.Path(process.mymuons + process.myelectrons + process.myjets + process.mymets,
                     jetTask)
if not isData:
    process.p += process.mygenparticles

print("POET: isData =", isData, "| maxEvents =", options.maxEvents,
      "| output =", options.outputFile)
for name in fileNames:
    print("POET: input", name)
