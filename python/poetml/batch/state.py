"""What the manifest of an output folder says (read-only): ``poetml batch status``."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .manifest import DATASET_NAME, Manifest, TaskRecord

__all__ = ["Status", "status"]


@dataclass(frozen=True)
class Status:
    """What ``poetml batch status`` reports about an output folder."""

    out_dir: Path
    fingerprint: Mapping[str, Any]
    tasks: tuple[TaskRecord, ...]
    sources: tuple[Mapping[str, Any], ...]
    dataset: Path | None
    dataset_events: int | None

    @property
    def done(self) -> list[TaskRecord]:
        return [t for t in self.tasks if t.status == "done"]

    @property
    def failed(self) -> list[TaskRecord]:
        return [t for t in self.tasks if t.status == "failed"]

    @property
    def pending(self) -> list[TaskRecord]:
        return [t for t in self.tasks if t.status not in ("done", "failed")]

    @property
    def failed_sources(self) -> list[Mapping[str, Any]]:
        return [s for s in self.sources if s["status"] == "failed"]

    @property
    def uncounted_sources(self) -> list[Mapping[str, Any]]:
        return [s for s in self.sources if s["status"] == "pending"]

    @property
    def complete(self) -> bool:
        return not (self.failed or self.pending or self.failed_sources or self.uncounted_sources)

    def to_json(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "kind": self.fingerprint.get("kind"),
            "spec_hash": self.fingerprint.get("hash"),
            "complete": self.complete,
            "counts": {
                "done": len(self.done),
                "failed": len(self.failed),
                "pending": len(self.pending),
                "files": len(self.sources),
                "files_failed": len(self.failed_sources),
                "files_not_counted": len(self.uncounted_sources),
                "events_done": sum(t.n_events or 0 for t in self.done),
            },
            "tasks": [dataclasses.asdict(t) for t in self.tasks],
            "sources": [dict(s) for s in self.sources],
            "dataset": str(self.dataset) if self.dataset else None,
            "dataset_events": self.dataset_events,
        }

    def format(self, limit: int | None = 20) -> str:
        fp = self.fingerprint
        lines = [
            (
                f"{self.out_dir}: {fp.get('kind', '?')} (spec {str(fp.get('hash', '?'))[:12]}), "
                f"{len(self.sources)} files, {len(self.tasks)} tasks, step size "
                f"{fp.get('step_size', '?')}"
            ),
            f"  done     {len(self.done):6d}  ({sum(t.n_events or 0 for t in self.done)} events)",
            f"  failed   {len(self.failed):6d}",
            f"  pending  {len(self.pending):6d}",
        ]
        if self.failed_sources or self.uncounted_sources:
            lines.append(
                f"  files failed before planning: {len(self.failed_sources)}, "
                f"not yet counted: {len(self.uncounted_sources)}"
            )

        def block(title: str, rows: list[str]) -> None:
            if not rows:
                return
            lines.append(f"{title}:")
            shown = rows if limit is None else rows[:limit]
            lines.extend(f"  {r}" for r in shown)
            if len(rows) > len(shown):
                lines.append(f"  ... and {len(rows) - len(shown)} more (--all lists them)")

        block(
            "failed",
            [f"{s['path']} (could not count entries): {s['error']}" for s in self.failed_sources]
            + [f"{t.where}: {t.error} (attempts: {t.attempts})" for t in self.failed],
        )
        block(
            "pending",
            [f"{s['path']} (entries not yet counted)" for s in self.uncounted_sources]
            + [f"{t.where}" + (f" ({t.error})" if t.error else "") for t in self.pending],
        )
        if self.dataset is not None:
            lines.append(f"dataset: {self.dataset} ({self.dataset_events} events)")
        else:
            lines.append(f"dataset: not written yet ({DATASET_NAME})")
        state = "complete" if self.complete else "INCOMPLETE"
        lines.append(f"status: {state}")
        return "\n".join(lines)


def status(out_dir: str | os.PathLike[str]) -> Status:
    """Read the manifest of a batch output folder (read-only)."""
    out = Path(out_dir).absolute()
    man = Manifest(out, create=False)
    try:
        fp = man.get_meta("fingerprint") or {}
        tasks = tuple(man.tasks())
        sources = tuple(dict(r) for r in man.source_rows())
    finally:
        man.close()
    ds = out / DATASET_NAME
    n = None
    if ds.exists():
        import h5py

        with h5py.File(ds, "r") as f:
            n = int(f.attrs.get("n_events", -1))
    return Status(out, fp, tasks, sources, ds if ds.exists() else None, n)
