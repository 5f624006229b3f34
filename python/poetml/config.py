"""YAML run configurations -> one typed, frozen :class:`RunConfig`.

Every stage owns its section as a frozen dataclass (so a notebook can build one without
YAML); :class:`RunConfig` has one typed field per section.  :func:`parse` builds it from a
mapping (unknown sections and keys, and bad values, are errors listing the valid ones, all
reported at once); :func:`load` reads a whole run configuration file.  The mapping helpers
:func:`from_mapping`, :func:`to_mapping` and :func:`load_yaml` live in :mod:`poetml._mapping`
and are re-exported here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._mapping import from_mapping, load_yaml, to_mapping
from .datasets.labelled import DatasetConfig
from .evaluation.config import EvaluationConfig
from .exceptions import ConfigError
from .features import FeatureSpec
from .firmware.config import FirmwareConfig
from .images import ImageSpec
from .models import ModelConfig
from .reading import ReadingConfig
from .selection import Selection
from .training import TrainingConfig

__all__ = [
    "STAGE_NAMES",
    "VARIANTS",
    "OutputConfig",
    "ReadingConfig",
    "RunConfig",
    "from_mapping",
    "load",
    "load_yaml",
    "parse",
    "section_names",
    "to_mapping",
]

#: Model variants: float; QKeras twin; float pruned; QKeras twin pruned (fine-tuned from the
#: trained quantized model).
VARIANTS = ("float", "quantized", "pruned", "quantized_pruned")

#: The stages of ``poetml run`` (:data:`poetml.pipeline.STAGES` runs them), in their usual order.
STAGE_NAMES = ("data", "train", "evaluate", "firmware")


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """Where and what ``poetml run`` does: ``output`` directory (default
    ``out/<config file name>``), model ``variants`` (see :data:`VARIANTS`), ``stages`` in
    order, ``generate_missing`` (generate the default dataset when a process needs it)."""

    output: str | None = None
    variants: tuple[str, ...] = ("float", "quantized")
    stages: tuple[str, ...] = ("data", "train", "evaluate")
    generate_missing: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad:
            raise ConfigError(
                f"unknown variants {bad}; valid variants: {', '.join(VARIANTS)}", key="variants"
            )
        if "float" not in self.variants:
            raise ConfigError("variants must include 'float' (the reference model)", key="variants")
        if not self.stages:
            raise ConfigError(f"name at least one stage ({', '.join(STAGE_NAMES)})", key="stages")
        if self.output is not None and not self.output:
            raise ConfigError(
                "must name a directory (or be left out: out/<config name>)", key="output"
            )


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A whole configuration file: one field per section, each the section's own dataclass
    (a section left out of the file has its defaults).

    A top-level ``selection:`` applies to both ``images`` and ``features`` unless a section
    gives its own.  ``path`` is the file it came from (None when built in code).
    """

    reading: ReadingConfig = dataclasses.field(default_factory=ReadingConfig)
    selection: Selection = dataclasses.field(default_factory=Selection)
    images: ImageSpec = dataclasses.field(default_factory=ImageSpec)
    features: FeatureSpec = dataclasses.field(default_factory=FeatureSpec)
    dataset: DatasetConfig = dataclasses.field(default_factory=DatasetConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    run: OutputConfig = dataclasses.field(default_factory=OutputConfig)
    firmware: FirmwareConfig = dataclasses.field(default_factory=FirmwareConfig)
    path: Path | None = None


def section_names() -> tuple[str, ...]:
    """The sections a run configuration may have, in order (the fields of RunConfig)."""
    return tuple(f.name for f in dataclasses.fields(RunConfig) if f.name != "path")


def parse(data: Mapping[str, Any], where: str = "config") -> RunConfig:
    """Validate a configuration mapping into a :class:`RunConfig`."""
    classes = {f.name: f.default_factory for f in dataclasses.fields(RunConfig) if f.name != "path"}
    errors: list[str] = []  # one per section: all of them are reported at once
    unknown = [k for k in data if k not in classes]
    if unknown:
        errors.append(
            f"{where}: unknown section{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; valid sections: {', '.join(classes)}"
        )
    out: dict[str, Any] = {}
    selection = data.get("selection")
    for name, cls in classes.items():
        if name not in data:
            continue
        section = {} if data[name] is None else data[name]  # `images:` with no body
        if (
            name in ("images", "features")
            and selection is not None
            and isinstance(section, Mapping)
            and "selection" not in section
        ):
            section = {**section, "selection": selection}
        try:
            out[name] = from_mapping(cls, section, f"{where}: {name}")  # type: ignore[arg-type]
        except ConfigError as exc:
            errors.append(str(exc))
            if name == "selection":  # reported once, not again for images and features
                selection = None
    for name in ("images", "features"):
        if name not in data and selection is not None:
            try:
                out[name] = from_mapping(
                    classes[name],  # type: ignore[arg-type]
                    {"selection": selection},
                    f"{where}: {name}",
                )
            except ConfigError as exc:
                errors.append(str(exc))
    if errors:
        raise ConfigError("\n".join(errors))
    return RunConfig(**out)


def load(path: str | Path) -> RunConfig:
    """Load and validate a YAML run configuration."""
    path = Path(path)
    cfg = parse(load_yaml(path), where=str(path))
    return dataclasses.replace(cfg, path=path)
