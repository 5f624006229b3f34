"""The ``firmware:`` configuration section (a frozen dataclass, no heavy imports)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from ..exceptions import ConfigError

__all__ = ["FirmwareConfig"]

BACKENDS = ("Vitis", "Vivado")
IO_TYPES = ("auto", "io_parallel", "io_stream")
STRATEGIES = ("Latency", "Resource")
SCORES = ("auto", "reconstruction", "latent", "output")
#: score kinds of an autoencoder (the others are a classifier's output)
ANOMALY_SCORES = ("reconstruction", "latent")


@dataclasses.dataclass(frozen=True)
class FirmwareConfig:
    """How a trained QKeras model becomes an hls4ml trigger project.

    * backend: hls4ml backend, ``Vitis`` (default) or ``Vivado``.
    * part: FPGA part; the default is the Virtex UltraScale+ VU13P of the CMS Level-1 boards.
    * clock_period: target clock period in ns (40 MHz bunch crossings, 200 MHz fabric: 5 ns).
    * io_type: ``auto`` picks ``io_parallel`` for dense models and ``io_stream`` for CNNs.
    * strategy: hls4ml ``Latency`` (fully unrolled) or ``Resource`` (reuses multipliers).
    * reuse_factor: multiplications sharing one multiplier (1 = fully parallel).
    * score: what the firmware outputs.  ``auto``: ``reconstruction`` for an autoencoder
      (``latent`` when its decoder has a layer hls4ml's bit-exact conversion cannot map, such
      as UpSampling2D), ``output`` for a classifier.  ``reconstruction``: the whole
      autoencoder plus its reconstruction error, the sum of the squared errors over the
      present objects (the offline anomaly score times the number of inputs it averages,
      see :mod:`poetml.firmware.score_model`).  ``latent``: the encoder followed by the
      squared latent norm, the encoder-only score the CMS AXOL1TL trigger deploys (it suits
      a variational autoencoder trained for it; on a plain autoencoder it separates much
      less).
      ``output``: the model's own output, a final softmax removed (classifiers: logits).
    * latent_bits: width of the fixed-point quantizer put on the latent vector before
      squaring; its integer bits are chosen from the calibration events so no latent value
      saturates.
    * error_bits: width of the fixed-point quantizer put on the reconstruction errors before
      squaring (<= 12, so QKeras squares them exactly in float32); its integer bits are
      chosen from the calibration events so no error of theirs saturates.
    * trigger_class: for classifiers, the class whose logit is the trigger score (negative
      counts from the end; -1 is the last class).
    * rate_khz: trigger rate the threshold is set for; rate = false-positive rate x
      ``collision_rate_mhz``.
    * events: events used for validation and threshold (0: all test events available).
    * min_exact_fraction / tolerance_lsb: validation passes when at least this fraction of
      outputs agree exactly with QKeras and no output differs by more than this many LSBs.
    * workers: processes/threads for the batched C simulation (0: all cores).
    * referee_events: events the C simulation (the referee) scores when the bit-exact
      emulator scores all of them (every event up to this many, else this many spread evenly;
      0: every event).  The emulator must equal the C simulation on each of them.
    * project_name: name of the HLS top function and project.
    * variant: model variant ``poetml run`` deploys (``auto``: ``quantized_pruned`` if trained,
      else ``quantized``).
    * synth: also run vendor synthesis (needs vitis_hls/vivado_hls on PATH).
    """

    backend: Literal["Vitis", "Vivado"] = "Vitis"
    part: str = "xcvu13p-flga2577-2-e"
    clock_period: float = 5.0
    io_type: Literal["auto", "io_parallel", "io_stream"] = "auto"
    strategy: Literal["Latency", "Resource"] = "Latency"
    reuse_factor: int = 1
    score: Literal["auto", "reconstruction", "latent", "output"] = "auto"
    latent_bits: int = 10
    error_bits: int = 12
    trigger_class: int = -1
    rate_khz: float = 1.0
    collision_rate_mhz: float = 40.0
    events: int = 0
    min_exact_fraction: float = 1.0
    tolerance_lsb: float = 0.0
    workers: int = 0
    referee_events: int = 50_000
    project_name: str = "poetml_nn"
    synth: bool = False
    variant: str = "auto"

    def __post_init__(self) -> None:
        import math

        def bad(key: str, message: str) -> ConfigError:
            return ConfigError(message, key=key)

        if self.backend not in BACKENDS:
            raise bad("backend", f"{self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.io_type not in IO_TYPES:
            raise bad("io_type", f"{self.io_type!r} is not one of {', '.join(IO_TYPES)}")
        if self.strategy not in STRATEGIES:
            raise bad("strategy", f"{self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if self.score not in SCORES:
            raise bad("score", f"{self.score!r} is not one of {', '.join(SCORES)}")
        if self.reuse_factor < 1:
            raise bad("reuse_factor", f"reuse_factor must be >= 1, got {self.reuse_factor}")
        if not (math.isfinite(self.clock_period) and self.clock_period > 0):
            raise bad("clock_period", f"clock_period must be > 0 ns, got {self.clock_period}")
        if not 2 <= self.error_bits <= 12:
            raise bad(
                "error_bits",
                f"error_bits must be in [2, 12] so squared errors are exact in float32, "
                f"got {self.error_bits}",
            )
        if not 2 <= self.latent_bits <= 12:
            raise bad(
                "latent_bits",
                f"latent_bits must be in [2, 12] so squared latents add up exactly in float32, "
                f"got {self.latent_bits}",
            )
        if not (math.isfinite(self.collision_rate_mhz) and self.collision_rate_mhz > 0):
            raise bad(
                "collision_rate_mhz",
                f"collision_rate_mhz must be > 0, got {self.collision_rate_mhz}",
            )
        if not self.rate_khz > 0:
            raise bad("rate_khz", f"rate_khz must be > 0, got {self.rate_khz}")
        if self.rate_khz * 1e3 >= self.collision_rate_mhz * 1e6:
            raise bad(
                "rate_khz",
                f"rate_khz={self.rate_khz} is not below the collision rate "
                f"{self.collision_rate_mhz} MHz",
            )
        if not 0.0 <= self.min_exact_fraction <= 1.0:
            raise bad(
                "min_exact_fraction",
                f"min_exact_fraction must be in [0, 1], got {self.min_exact_fraction}",
            )
        for key in ("tolerance_lsb", "events", "workers", "referee_events"):
            if not getattr(self, key) >= 0:
                raise bad(key, f"{key} must be >= 0, got {getattr(self, key)}")
        if not self.project_name.isidentifier() or self.project_name in (
            "trigger_decision",
            "poetml_trigger_decision",
            "trigger",
        ):
            raise bad(
                "project_name",
                f"project_name {self.project_name!r} must be a C identifier other than the "
                "trigger's names (trigger, trigger_decision)",
            )
        if self.variant not in ("auto", "quantized", "quantized_pruned"):
            raise bad(
                "variant",
                f"{self.variant!r} is not a quantized variant; valid: auto, quantized, "
                "quantized_pruned",
            )

    @property
    def target_fpr(self) -> float:
        """False-positive rate giving ``rate_khz`` at ``collision_rate_mhz``."""
        return self.rate_khz * 1e3 / (self.collision_rate_mhz * 1e6)
