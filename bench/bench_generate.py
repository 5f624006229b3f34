"""Speed of poetml.generate: events/s per process with and without MPI, scaling with worker
processes, and the full chain (Pythia + FastJet + detector + ROOT writing) against bare
Pythia ``nextBatch`` on the same process, measured in the same run.

    python bench/bench_generate.py                      # everything (about 5 minutes on 2 cores)
    python bench/bench_generate.py --quick              # fewer events
    python bench/bench_generate.py --cross-sections     # Pythia sigmaGen of every process
    python bench/bench_generate.py --validate [--mpi]   # Z peak vs real 2010 data, W mT, ...
    python bench/bench_generate.py --pileup [--mu 50]   # premixed pile-up: cost over no pile-up

Numbers are wall-clock on this machine; the ratio full / bare is the figure of merit
(target: <= 1.3 with MPI on).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from poetml.generate import PROCESSES, generate, make_pythia, measure_cross_section, next_events
from poetml.generate.processes import pythia_settings


def bare(process: str, n: int, mpi: bool, seed: int = 1) -> float:
    """Seconds for bare Pythia: init once + nextBatch(n) (the record stays in awkward)."""
    t0 = time.perf_counter()
    p = make_pythia(pythia_settings(process, seed=seed, mpi=mpi))
    next_events(p, n)
    return time.perf_counter() - t0


def full(process: str, n: int, mpi: bool, workers: int, tmp: Path, seed: int = 1) -> float:
    s = generate(
        process,
        n,
        tmp / f"{process}_{mpi}_{workers}.root",
        seed=seed,
        mpi=mpi,
        workers=workers,
        progress=False,
    )
    return s["seconds"]


def pileup_overhead(mu: float, n: int) -> None:
    """Premixed pile-up: DY with MPI, the same events without and with Poisson(mu) pile-up
    from the pool (generated first, timed apart), one worker, in the same run."""
    from poetml.generate.pileup import load_pool

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        full("dy", 20, False, 1, tmp)  # warm-up
        t0 = time.perf_counter()
        load_pool(cache_dir=tmp / "cache")
        t_pool = time.perf_counter() - t0
        t_none = generate("dy", n, tmp / "a.root", seed=2, workers=1, progress=False)["seconds"]
        t_pu = generate(
            "dy", n, tmp / "b.root", seed=2, workers=1, pileup=mu, progress=False,
            pileup_cache=tmp / "cache",
        )["seconds"]  # fmt: skip
        print(f"pile-up pool of 5000 minimum-bias events: generated once in {t_pool:.1f} s")
        print(f"dy, MPI on, {n} events, 1 worker: no pile-up {n / t_none:.1f} ev/s, "
              f"mu = {mu:g} premixed {n / t_pu:.1f} ev/s")  # fmt: skip
        print(f"RATIO pileup{mu:g}/no_pileup time: {t_pu / t_none:.2f}")


def validate(mpi: bool, n_dy: int = 6000) -> None:
    """Physics numbers quoted in the README (same estimators as the tests)."""
    import awkward as ak
    import numpy as np
    import uproot

    from poetml.generate import validation as val

    real = Path(__file__).resolve().parents[2] / "shared" / "data" / "uproot-Zmumu.root"
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data = val.z_peak(val.dimuons_real_2010(real))
        s = generate("dy", n_dy, tmp / "dy.root", seed=21, mpi=mpi, progress=False)
        sim = val.z_peak(val.dimuons_poet(s["path"]))
        print(
            f"Z -> mu mu, opposite-sign, pT > {val.MIN_PT} GeV, |eta| < {val.MAX_ETA}, "
            f"Voigt fit in 81-101 GeV (Z width fixed), MPI {'on' if mpi else 'off'}"
        )
        for label, z in (("real CMS 2010", data), (f"poetml dy {n_dy} ev", sim)):
            print(
                f"  {label:18s} n={z.n:5d} peak={z.peak:6.2f}+-{z.peak_err:.2f} GeV  "
                f"sigma={z.sigma:.2f}  FWHM={z.fwhm:.2f}  rms(81-101)={z.rms:.2f} GeV"
            )
        print(
            f"  difference: peak {sim.peak - data.peak:+.2f} GeV, FWHM "
            f"{100 * (sim.fwhm / data.fwhm - 1):+.1f} %, rms {100 * (sim.rms / data.rms - 1):+.1f} %"
        )
        s = generate("wjets", 4000, tmp / "w.root", seed=22, mpi=mpi, progress=False)
        mt = val.transverse_mass_w(s["path"])
        h, e = np.histogram(mt, bins=np.arange(0, 122, 4.0))
        sm = np.convolve(h, np.ones(3) / 3, mode="same")
        pk = int(np.argmax(sm))
        edge = 0.5 * (e[1:] + e[:-1])[pk + np.flatnonzero(sm[pk:] < 0.5 * sm[pk])[0]]
        print(
            f"W -> mu nu: {len(mt)} events, mT peak {0.5 * (e[pk] + e[pk + 1]):.0f} GeV, "
            f"half-maximum edge {edge:.0f} GeV, fraction mT > 100 GeV {np.mean(mt > 100):.3f}"
        )
        s = generate("ttbar", 1000, tmp / "tt.root", seed=23, mpi=mpi, progress=False)
        with uproot.open(s["path"]) as f:
            j = f["myjets/Events"].arrays(["jet_corrpt", "jet_eta", "jet_btag", "jet_hflav"])
        g = j[(j.jet_corrpt > 30) & (np.abs(j.jet_eta) < 2.4)]
        tag, fl = ak.flatten(g.jet_btag > 0.8484), ak.flatten(g.jet_hflav)
        print(
            f"ttbar: <n jets (30 GeV, |eta|<2.4)> = {ak.mean(ak.num(g.jet_corrpt)):.2f}, "
            f"b-tag eff b/c/light = {ak.mean(tag[fl == 5]):.3f}/{ak.mean(tag[fl == 4]):.3f}/"
            f"{ak.mean(tag[fl == 0]):.3f}, <n b-tags> = {ak.mean(ak.sum(g.jet_btag > 0.8484, axis=1)):.2f}"
        )
        s = generate("hzz4l", 1000, tmp / "h.root", seed=24, mpi=mpi, progress=False)
        m4 = val.four_lepton_mass(s["path"])
        print(
            f"H -> 4l: {len(m4)} events with 4 leptons, median m4l = {np.median(m4):.1f} GeV, "
            f"fraction within 10 GeV of 125: {np.mean(np.abs(m4 - 125) < 10):.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cross-sections", action="store_true")
    ap.add_argument("--validate", action="store_true")
    ap.add_argument("--mpi", action="store_true", help="with --validate: MPI on")
    ap.add_argument("--processes", nargs="*", default=list(PROCESSES))
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--pileup", action="store_true", help="premixed pile-up overhead only")
    ap.add_argument("--mu", type=float, default=50.0, help="with --pileup: mean pile-up")
    args = ap.parse_args()
    if args.pileup:
        pileup_overhead(args.mu, 300 if args.quick else 1000)
        return
    if args.cross_sections:
        print(f"{'process':12s} {'sigma [pb]':>12s} {'error':>10s}   (2000 events, MPI off)")
        for name in args.processes:
            s, e = measure_cross_section(name, 2000)
            print(f"{name:12s} {s:12.4g} {e:10.2g}")
        return
    if args.validate:
        validate(args.mpi)
        return
    n_on, n_off, n_ratio, n_scale = (150, 400, 500, 1000) if args.quick else (300, 1000, 1000, 2000)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        full("dy", 20, False, 1, tmp)  # warm-up: imports, FastJet banner
        print(
            f"events/s, 1 worker, full chain (Pythia + FastJet + detector + ROOT writing); "
            f"{n_on} events MPI on, {n_off} MPI off"
        )
        print(f"{'process':12s} {'MPI on':>9s} {'MPI off':>9s}")
        for name in args.processes:
            on = n_on / full(name, n_on, True, 1, tmp)
            off = n_off / full(name, n_off, False, 1, tmp)
            print(f"{name:12s} {on:9.1f} {off:9.1f}", flush=True)
        print(f"\nfull chain vs bare Pythia nextBatch, same process, {n_ratio} events, 1 worker")
        print(
            f"{'process':12s} {'MPI':>4s} {'bare ev/s':>10s} {'full ev/s':>10s} {'full/bare':>10s}"
        )
        for name in ("dy", "ttbar"):
            for mpi in (True, False):
                tb = bare(name, n_ratio, mpi)
                tf = full(name, n_ratio, mpi, 1, tmp)
                print(
                    f"{name:12s} {'on' if mpi else 'off':>4s} {n_ratio / tb:10.1f} "
                    f"{n_ratio / tf:10.1f} {tf / tb:10.2f}",
                    flush=True,
                )
        print(f"\nscaling with worker processes: ttbar, {n_scale} events, MPI on")
        base = None
        for w in args.workers:
            t = full("ttbar", n_scale, True, w, tmp)
            base = base or t
            print(f"workers={w}: {n_scale / t:7.1f} ev/s  speed-up {base / t:4.2f}", flush=True)


if __name__ == "__main__":
    main()
