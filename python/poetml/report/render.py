"""Rendering a report: ``report.md`` and ``report.html`` from generic sections.

A report is a title and a list of sections.  A section has a title, free text, tables
(lists of rows, the first row being the header), images (PNG paths, linked relative to the
report) and warnings.  Sections may be :class:`Section` values or plain dicts with the same
keys, so they can come from JSON.  Files are written atomically (temporary name, then
renamed).  The HTML is rendered directly from the same sections (no Markdown converter
needed).  Nothing here computes a metric or draws a plot.
"""

from __future__ import annotations

import datetime as _dt
import html as _html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._atomic import write_text

__all__ = ["Image", "Section", "Table", "format_value", "write_report"]


@dataclass(frozen=True)
class Table:
    """Rows of cells; ``rows[0]`` is the header.  Cells are numbers, strings or ``None``."""

    rows: Sequence[Sequence[Any]]
    caption: str = ""


@dataclass(frozen=True)
class Image:
    """A PNG (path absolute or relative to the report directory) and its caption."""

    path: str | os.PathLike[str]
    caption: str = ""


@dataclass(frozen=True)
class Section:
    """One part of a report.  ``subsections`` nest one heading level deeper."""

    title: str
    text: str = ""
    tables: Sequence[Table | Sequence[Sequence[Any]] | Mapping[str, Any]] = field(
        default_factory=tuple
    )
    images: Sequence[Image | str | os.PathLike[str] | Mapping[str, Any]] = field(
        default_factory=tuple
    )
    warnings: Sequence[str] = field(default_factory=tuple)
    subsections: Sequence[Any] = field(default_factory=tuple)


_SECTION_KEYS = ("title", "text", "tables", "images", "warnings", "subsections")


def _section(obj: Any) -> Section:
    if isinstance(obj, Section):
        return obj
    if isinstance(obj, Mapping):
        unknown = set(obj) - set(_SECTION_KEYS)
        if unknown:
            raise ValueError(
                f"report section has unknown key(s) {sorted(unknown)}; valid: {list(_SECTION_KEYS)}"
            )
        if "title" not in obj:
            raise ValueError(f"report section needs a 'title' (got keys {sorted(obj)})")
        return Section(**obj)
    raise TypeError(f"a report section must be a Section or a dict, got {type(obj).__name__}")


def _table(obj: Any) -> Table:
    if isinstance(obj, Table):
        t = obj
    elif isinstance(obj, Mapping):
        if "rows" not in obj:
            raise ValueError(f"a table dict needs 'rows' (got keys {sorted(obj)})")
        t = Table(obj["rows"], obj.get("caption", ""))
    else:
        t = Table(obj)
    rows = [list(r) for r in t.rows]
    if not rows:
        raise ValueError(f"table {t.caption!r} has no rows (a header row is required)")
    width = len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != width:
            raise ValueError(
                f"table {t.caption!r}: row {i} has {len(r)} cells, the header has {width}"
            )
    return Table(rows, t.caption)


def _image(obj: Any) -> Image:
    if isinstance(obj, Image):
        return obj
    if isinstance(obj, Mapping):
        return Image(obj["path"], obj.get("caption", ""))
    return Image(obj)


def format_value(v: Any, digits: int = 4) -> str:
    """A table cell as text: floats to ``digits`` significant digits, ``None``/NaN as "–"."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) or hasattr(v, "dtype"):
        f = float(v)
        if math.isnan(f):
            return "–"
        if math.isinf(f):
            return "∞" if f > 0 else "−∞"
        if f == 0:
            return "0"
        if 1e-3 <= abs(f) < 1e5:
            return f"{f:.{digits}g}" if abs(f) >= 1 else f"{f:.{digits}f}".rstrip("0").rstrip(".")
        return f"{f:.{digits}g}"
    return str(v)


def _rel_link(path: str | os.PathLike[str], outdir: Path) -> str:
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    try:
        return Path(os.path.relpath(p, outdir)).as_posix()
    except ValueError:  # another drive on Windows
        return p.as_posix()


def _md_cell(v: Any) -> str:
    return format_value(v).replace("|", "\\|").replace("\n", " ")


# --------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------


def _markdown(title: str, intro: str, sections: list[Section], outdir: Path, stamp: str) -> str:
    out = [f"# {title}", ""]
    if stamp:
        out += [f"*{stamp}*", ""]
    if intro:
        out += [intro.strip(), ""]
    all_warnings = [w for s in sections for w in _all_warnings(s)]
    if all_warnings:
        out += ["> **Warnings**", ">"]
        out += [f"> - {w}" for w in all_warnings]
        out += [""]

    def emit(sec: Section, level: int) -> None:
        out.extend([f"{'#' * level} {sec.title}", ""])
        if sec.text:
            out.extend([sec.text.strip(), ""])
        for w in sec.warnings:
            out.extend([f"> **Warning:** {w}", ""])
        for t in (_table(t) for t in sec.tables):
            if t.caption:
                out.extend([f"**{t.caption}**", ""])
            header, *body = t.rows
            out.append("| " + " | ".join(_md_cell(c) for c in header) + " |")
            out.append(
                "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(header))) + "|"
            )
            for r in body:
                out.append("| " + " | ".join(_md_cell(c) for c in r) + " |")
            out.append("")
        for im in (_image(i) for i in sec.images):
            link = _rel_link(im.path, outdir)
            alt = im.caption or Path(link).stem
            out.extend([f"![{alt}]({link})", ""])
            if im.caption:
                out.extend([f"*{im.caption}*", ""])
        for sub in sec.subsections:
            emit(_section(sub), min(level + 1, 6))

    for sec in sections:
        emit(sec, 2)
    return "\n".join(out).rstrip() + "\n"


def _all_warnings(sec: Section) -> list[str]:
    return [*sec.warnings, *(w for s in sec.subsections for w in _all_warnings(_section(s)))]


_CSS = """
body{font-family:Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border:1px solid #bbb;padding:0.25em 0.6em}
th{background:#eee}
td.num{text-align:right;font-family:monospace}
img{max-width:100%;border:1px solid #ddd}
figure{margin:1em 0}
figcaption{font-style:italic;color:#555}
.warning{background:#fff3cd;border-left:4px solid #e0a800;padding:0.5em 1em;margin:0.5em 0}
caption{font-weight:bold;text-align:left;padding-bottom:0.3em}
"""


def _html_doc(title: str, intro: str, sections: list[Section], outdir: Path, stamp: str) -> str:
    e = _html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    if stamp:
        out.append(f"<p><em>{e(stamp)}</em></p>")
    if intro:
        out += [f"<p>{e(p.strip())}</p>" for p in intro.strip().split("\n\n")]
    all_warnings = [w for s in sections for w in _all_warnings(s)]
    if all_warnings:
        out.append('<div class="warning"><strong>Warnings</strong><ul>')
        out += [f"<li>{e(w)}</li>" for w in all_warnings]
        out.append("</ul></div>")

    def emit(sec: Section, level: int) -> None:
        out.append(f"<h{level}>{e(sec.title)}</h{level}>")
        if sec.text:
            out.extend(f"<p>{e(p.strip())}</p>" for p in sec.text.strip().split("\n\n"))
        for w in sec.warnings:
            out.append(f'<div class="warning"><strong>Warning:</strong> {e(w)}</div>')
        for t in (_table(t) for t in sec.tables):
            header, *body = t.rows
            out.append("<table>")
            if t.caption:
                out.append(f"<caption>{e(t.caption)}</caption>")
            out.append("<tr>" + "".join(f"<th>{e(format_value(c))}</th>" for c in header) + "</tr>")
            for r in body:
                cells = [
                    f'<td class="num">{e(format_value(c))}</td>'
                    if i
                    else f"<td>{e(format_value(c))}</td>"
                    for i, c in enumerate(r)
                ]
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</table>")
        for im in (_image(i) for i in sec.images):
            link = _rel_link(im.path, outdir)
            out.append(f'<figure><img src="{e(link)}" alt="{e(im.caption or Path(link).stem)}">')
            if im.caption:
                out.append(f"<figcaption>{e(im.caption)}</figcaption>")
            out.append("</figure>")
        for sub in sec.subsections:
            emit(_section(sub), min(level + 1, 6))

    for sec in sections:
        emit(sec, 2)
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(
    outdir: str | os.PathLike[str],
    title: str,
    sections: Sequence[Section | Mapping[str, Any]],
    *,
    intro: str = "",
    html: bool = True,
    timestamp: bool = True,
) -> Path:
    """Write ``outdir/report.md`` (and ``outdir/report.html`` with ``html=True``) and
    return the Markdown path.

    All warnings of all sections are also collected in a box at the top.  Image links are
    relative to ``outdir``; a missing image is an error (naming the file), so a report never
    points at a plot that was not made.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    secs = [_section(s) for s in sections]

    def check(sec: Section) -> None:
        for t in sec.tables:
            _table(t)
        for im in (_image(i) for i in sec.images):
            p = Path(im.path)
            full = p if p.is_absolute() else outdir / p
            if not full.is_file():
                raise FileNotFoundError(
                    f"report section {sec.title!r}: image {full} does not exist"
                )
        for sub in sec.subsections:
            check(_section(sub))

    for s in secs:
        check(s)
    stamp = ""
    if timestamp:
        from .._version import __version__

        now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        stamp = f"Written {now} by poetml {__version__}"
    md_path = outdir / "report.md"
    write_text(md_path, _markdown(title, intro, secs, outdir, stamp))
    if html:
        write_text(outdir / "report.html", _html_doc(title, intro, secs, outdir, stamp))
    return md_path
