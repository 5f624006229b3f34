"""Type stub of poetml._core, the pybind11 module built from cpp/bindings (see
cpp/include/poetml/*.hpp for the exact definitions of the kernels)."""

from collections.abc import Sequence
from typing import Any, Literal, TypeAlias, overload

import numpy as np
import numpy.typing as npt

_F32: TypeAlias = npt.NDArray[np.float32]
_I64: TypeAlias = npt.NDArray[np.int64]

class Columns:
    """One collection's float32 C-contiguous 1-D columns + int64 offsets (None: one value
    per event).  Wrong dtype or layout: TypeError; length mismatch: ValueError."""

    def __init__(
        self,
        name: str,
        offsets: _I64 | None,
        pt: _F32,
        phi: _F32,
        *,
        eta: _F32 | None = None,
        charge: _F32 | None = None,
        mass: _F32 | None = None,
        tight_id: _F32 | None = None,
        iso: _F32 | None = None,
        btag: _F32 | None = None,
    ) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def n_events(self) -> int: ...
    @property
    def n_objects(self) -> int: ...

class Cuts:
    """pt >= min_pt, |eta| <= max_abs_eta, tight_id > 0.5 (if tight_id), iso <= max_iso (if set)."""

    def __init__(
        self,
        min_pt: float = 0.0,
        max_abs_eta: float = ...,
        tight_id: bool = False,
        max_iso: float | None = None,
    ) -> None: ...
    @property
    def min_pt(self) -> float: ...
    @property
    def max_abs_eta(self) -> float: ...
    @property
    def tight_id(self) -> bool: ...
    @property
    def max_iso(self) -> float | None: ...

def rasterize(
    channels: Sequence[tuple[Columns, Cuts]],
    n_events: int,
    *,
    n_eta: int,
    n_phi: int,
    eta_min: float,
    eta_max: float,
    mode: str = "histogram",
    sigma: float = 1.0,
    glyph_radius0: float = 0.5,
    glyph_radius_per_log: float = 0.5,
    glyph_width: float = 0.5,
    glyph_width_positive: float = 1.0,
    log1p: bool = False,
    normalize: bool = False,
    saturate_bits: int = 0,
    lsb_gev: float = 0.5,
    n_threads: int = 0,
    out: _F32 | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
def rasterize_sparse(
    channels: Sequence[tuple[Columns, Cuts]],
    n_events: int,
    *,
    n_eta: int,
    n_phi: int,
    eta_min: float,
    eta_max: float,
    mode: str = "histogram",
    sigma: float = 1.0,
    glyph_radius0: float = 0.5,
    glyph_radius_per_log: float = 0.5,
    glyph_width: float = 0.5,
    glyph_width_positive: float = 1.0,
    log1p: bool = False,
    normalize: bool = False,
    saturate_bits: int = 0,
    lsb_gev: float = 0.5,
    n_threads: int = 0,
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32], npt.NDArray[np.int64]
]: ...
def densify(
    offsets: _I64,
    index: npt.NDArray[np.int32],
    value: _F32,
    *,
    n_eta: int,
    n_phi: int,
    n_channels: int,
    n_threads: int = 0,
    out: _F32 | None = None,
) -> npt.NDArray[np.float32]: ...
def build_features(
    collections: Sequence[tuple[Columns, Cuts]],
    n_events: int,
    slots: Sequence[tuple[int, int, Sequence[_F32 | None]]],
    *,
    event_quantities: Sequence[str] = ...,
    muon: int = -1,
    electron: int = -1,
    jet: int = -1,
    met: int = -1,
    btag_threshold: float = 0.8484,
    muon_mass: float = 0.1056584,
    n_threads: int = 0,
    out: _F32 | None = None,
) -> npt.NDArray[np.float32]: ...
def clean_jets(
    jets: Columns,
    leptons: Sequence[tuple[Columns, Cuts]],
    dr: float,
    *,
    n_threads: int = 0,
) -> npt.NDArray[np.float32]: ...

# ---- bit-exact firmware emulator (cpp/include/poetml/emulate.hpp, bind_emulate.cpp)

_F64: TypeAlias = npt.NDArray[np.float64]
#: (width, integer, signed, quantization, overflow)
_Format: TypeAlias = tuple[int, int, bool, str, str]

class EmuNetwork:
    """A network for the bit-exact emulator, checked on construction (ValueError naming the
    layer for anything it cannot emulate)."""

    def __init__(
        self,
        tensors: Sequence[tuple[str, Sequence[int], _Format]],
        layers: Sequence[dict[str, Any]],
        input: int,
        output: int,
    ) -> None: ...
    @property
    def n_inputs(self) -> int: ...
    @property
    def n_outputs(self) -> int: ...
    @property
    def output_frac(self) -> int: ...
    @property
    def layer_names(self) -> list[str]: ...

@overload
def emulate(
    network: EmuNetwork, x: _F64, *, n_threads: int = 0, raw: Literal[False] = False
) -> _F64: ...
@overload
def emulate(
    network: EmuNetwork, x: _F64, *, n_threads: int = 0, raw: Literal[True]
) -> tuple[_F64, _I64]: ...
@overload
def emulate(
    network: EmuNetwork, x: _F64, *, n_threads: int = 0, raw: bool = False
) -> _F64 | tuple[_F64, _I64]: ...
def emu_cast(raw: _I64, frac_from: int, to: _Format) -> _I64: ...
def emu_from_double(x: _F64, to: _Format) -> _I64: ...
