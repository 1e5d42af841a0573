"""studies.csv and report.html of a screening run.

The report is one self-contained HTML file (inline CSS and SVG, overlays as data: URIs, no
script, nothing fetched), so it can be mailed, archived or opened on an offline workstation.
"""

from __future__ import annotations

import base64
import html
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ddad_rt.screen.decode import decode_item
from ddad_rt.screen.overlay import overlay_png
from ddad_rt.viz import score_label

INTENDED_USE = (
    "Research and workflow triage: ranks images of the modality and anatomy the model was "
    "trained on by how unlike the training population's normal images they look, so that "
    "people can look at the most unusual ones first. It does not detect any specific disease, "
    "was not validated clinically, and must not be used to rule anything in or out.")


@dataclass
class Tally:
    """What the report needs from the result rows, gathered in one pass over the journal
    (rows are never all in memory; studies are aggregated in the run index, on disk).

    Attributes:
        images: result rows.
        files: files with rows (each has a frame 0).
        flagged: flagged rows.
        scores: every row's flagged-on score (8 bytes per image).
        top: the most anomalous rows, most anomalous first.
        studies: studies (DICOM StudyInstanceUID, else the file); flagged_studies: those
            whose highest score is above the threshold.
    """

    images: int = 0
    files: int = 0
    flagged: int = 0
    scores: array = field(default_factory=lambda: array("d"))
    top: list[dict] = field(default_factory=list)
    studies: int = 0
    flagged_studies: int = 0


@dataclass
class ErrorSummary:
    """The error rows the report shows: how many, by reason, and the first few."""

    total: int
    by_reason: dict[str, int]
    first: list[dict]


def _top_key(r: dict) -> tuple:
    return (-r["score"], r["path"], r["frame"])


def tally(rows: Iterable[dict], threshold: float | None, top_n: int, index) -> Tally:
    """One pass over the result rows: counts, scores, the top ``top_n``; each row is added
    to its study in ``index`` (a ddad_rt.screen.index.RunIndex), whose studies() then
    streams studies.csv."""
    t = Tally()
    for r in rows:
        t.images += 1
        t.files += int(r["frame"]) == 0
        t.flagged += bool(r["flag"])
        t.scores.append(float(r["score"]))
        if top_n > 0:
            t.top.append(r)
            if len(t.top) > 4 * top_n + 64:
                t.top = sorted(t.top, key=_top_key)[:top_n]
        index.add_to_study(r)
    t.top = sorted(t.top, key=_top_key)[:max(top_n, 0)]
    t.studies, t.flagged_studies = index.study_counts(threshold)
    return t


def _histogram_svg(scores: np.ndarray, threshold: float | None, key: str) -> str:
    w, h, ml, mb, mt = 640, 220, 44, 36, 14
    if len(scores) == 0:
        return "<p>No images were scored.</p>"
    lo, hi = float(scores.min()), float(scores.max())
    if threshold is not None:
        lo, hi = min(lo, threshold), max(hi, threshold)
    if hi <= lo:
        hi = lo + 1e-6
    bins = 40
    counts, edges = np.histogram(scores, bins=bins, range=(lo, hi))
    top = max(int(counts.max()), 1)
    pw, ph = w - ml - 10, h - mb - mt
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
              f'role="img" aria-label="histogram of {html.escape(score_label(key))} scores">'),
              f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>']
    bw = pw / bins
    for i, c in enumerate(counts):
        if c == 0:
            continue
        bh = c / top * (ph - 2)
        above = threshold is not None and edges[i] >= threshold
        colour = "#d9412b" if above else "#2e6fd6"
        parts.append(f'<rect x="{ml + i * bw:.1f}" y="{mt + ph - bh:.1f}" width="{bw - 1:.1f}" '
                     f'height="{bh:.1f}" fill="{colour}"><title>{int(c)} images, '
                     f'{edges[i]:.4g} to {edges[i + 1]:.4g}</title></rect>')
    if threshold is not None:
        x = ml + (threshold - lo) / (hi - lo) * pw
        parts.append(f'<line x1="{x:.1f}" y1="{mt}" x2="{x:.1f}" y2="{mt + ph}" stroke="#000" '
                     f'stroke-dasharray="4 3"/><text x="{x + 4:.1f}" y="{mt + 12}" '
                     f'font-size="11">threshold {threshold:.4g}</text>')
    parts.append(f'<text x="{ml}" y="{h - 18}" font-size="11">{lo:.4g}</text>')
    parts.append(f'<text x="{ml + pw}" y="{h - 18}" font-size="11" text-anchor="end">{hi:.4g}</text>')
    parts.append(f'<text x="{ml + pw / 2}" y="{h - 4}" font-size="11" text-anchor="middle">'
                 f'{html.escape(score_label(key))} score</text>')
    parts.append(f'<text x="{ml - 6}" y="{mt + 10}" font-size="11" text-anchor="end">{top}</text>')
    parts.append(f'<text x="{ml - 6}" y="{mt + ph}" font-size="11" text-anchor="end">0</text>')
    parts.append("</svg>")
    return "".join(parts)


def _top_overlays(engine, rows: list[dict], key: str, map_scale
                  ) -> dict[tuple[str, int], str]:
    """Data URIs of the overlays of ``rows`` (re-decoded and re-scored: the run keeps no
    pixels)."""
    out: dict[tuple[str, int], str] = {}
    wanted: dict[str, set[int]] = {}
    for r in rows:
        wanted.setdefault(r["path"], set()).add(int(r["frame"]))
    images, index = [], []
    for path, frames in wanted.items():
        item = decode_item(path, engine.image_size)
        for frame, img in item.frames:
            if frame in frames:
                images.append(img)
                index.append((path, frame))
    if not images:
        return out
    r = engine.score(np.stack(images), maps=True, scores=(key,))
    for i, (path, frame) in enumerate(index):
        s = float(r.scores[key][i])
        png = overlay_png(images[i], r.maps[key][i], map_scale, f"{key} {s:.5g}")
        out[(path, frame)] = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return out


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1b1b1b;max-width:1100px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.warn{background:#fff3cd;border:1px solid #e0c36a;padding:8px 12px;font-weight:600}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}.kv th{width:220px}.flag{color:#b3261e;font-weight:600}
.path{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all;max-width:360px}
img.ov{display:block;width:320px;height:auto;image-rendering:auto}
"""


def _text(value: str) -> str:
    """HTML text of a string from the archive: markup escaped (a file may be named
    "<script>...") and bytes that are not UTF-8 (surrogate escapes of a Latin-1 name) shown
    as \\xNN, so the report stays valid UTF-8 and shows the name as it is on disk."""
    shown = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return html.escape(shown, quote=True)


def _kv(rows: list[tuple[str, object]]) -> str:
    return "<table class=kv>" + "".join(
        f"<tr><th>{_text(k)}</th><td>{_text(str(v))}</td></tr>" for k, v in rows
    ) + "</table>"


def write_report(path: Path, *, engine, manifest: dict, tallied: Tally, errors: ErrorSummary,
                 summary, key: str, map_scale, split: str, total_seconds: float) -> None:
    """Writes report.html (atomically)."""
    info = engine.info
    scores = np.frombuffer(tallied.scores, dtype=np.float64) if len(tallied.scores) else np.zeros(0)
    scores = scores[np.isfinite(scores)]
    training = manifest.get("training", {})
    data = training.get("data", {})
    cfg = training.get("config", {})
    op = manifest.get("operating_points") or {}
    top = tallied.top
    uris = _top_overlays(engine, top, key, map_scale) if top else {}

    run_rows = [
        ("files", summary.files), ("images (frames)", summary.images),
        ("flagged images", summary.flagged), ("studies", summary.studies),
        ("flagged studies", summary.flagged_studies), ("errors (files)", summary.errors),
        ("operating point", summary.operating_point),
        ("threshold", "none" if summary.threshold is None else f"{summary.threshold:.6g}"),
        ("score", f"{score_label(key)} ({key})"),
        ("this run", f"{summary.seconds:.1f} s, {summary.images_per_second:.1f} images/s"
                     + (f", {summary.skipped_done} files already done" if summary.skipped_done else "")),
        ("engine", f"{info['backend']} on {info['device']}, {info['precision']}; {split}"),
        ("report written in", f"{total_seconds:.1f} s after the start"),
    ]
    model_rows = [
        ("intended use", INTENDED_USE),
        ("modality", manifest.get("modality") or "not stated"),
        ("model", (f"DDAD-ASR, {manifest['backbone']} backbone, K={manifest['k']} members per "
                   f"module, {manifest['image_size'][0]}x{manifest['image_size'][1]} input")),
        ("scores", ", ".join(f"{score_label(k)} ({k})" for k in manifest["scores"])
                   + f"; flagged on {key}"),
        ("training data", f"{data.get('normal', '?')} known-normal images, "
                          f"{data.get('unlabeled', '?')} unlabeled"
                          + (f" (anomaly rate {data['anomaly_rate']:.2f})" if "anomaly_rate" in data else "")
                          + f"; {cfg.get('epochs', '?')} epochs, seed {cfg.get('seed', '?')}"),
        ("bundle identity", info["bundle_identity"]),
        ("calibration", (f"{op['n_images']} normal images not used in training "
                         f"({op['calibrated_at']}); thresholds at specificity "
                         f"{', '.join(op['thresholds'])}") if op else
                        ("not calibrated" + ("" if summary.threshold is not None
                                             else ": no image is flagged"))),
    ]
    out = [(f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'>"
            f"<title>ddad_rt screening report</title><style>{CSS}</style></head><body>"),
            "<h1>ddad_rt screening report</h1>",
           ("<p class=warn>Not for diagnostic use. Scores rank images by how unusual they look to "
            "the model; a flag is a prompt to look, not a finding.</p>"),
            "<h2>Run</h2>", _kv(run_rows),
            "<h2>Model card</h2>", _kv(model_rows),
            "<h2>Scores</h2>", _histogram_svg(scores, summary.threshold, key),
            f"<p>{len(scores)} images; blue: at or below the threshold, red: above it.</p>",
            f"<h2>Most anomalous images (top {len(top)})</h2>"]
    if top:
        out.append("<table id=top><thead><tr><th>#</th><th>overlay (input | heatmap)</th>"
                   "<th>file</th><th>frame</th><th>study</th><th>score</th><th>flag</th>"
                   "</tr></thead><tbody>")
        for i, r in enumerate(top, 1):
            uri = uris.get((r["path"], int(r["frame"])))
            img = (f"<img class=ov alt='overlay of {_text(Path(r['path']).name)}' src='{uri}'>"
                   if uri else "(image no longer readable)")
            flag = "<span class=flag>flagged</span>" if r["flag"] else ""
            out.append(f"<tr><td>{i}</td><td>{img}</td><td class=path>{_text(r['path'])}</td>"
                       f"<td>{r['frame']}</td><td class=path>{_text(r.get('study_uid') or '')}</td>"
                       f"<td>{r['score']:.6g}</td><td>{flag}</td></tr>")
        out.append("</tbody></table>")
    else:
        out.append("<p>No images were scored.</p>")
    out.append(f"<h2>Errors ({errors.total} files)</h2>")
    if errors.total:
        out.append(_kv(sorted(errors.by_reason.items())))
        out.append(f"<p>Every file and its reason is in errors.csv; the first "
                   f"{len(errors.first)}:</p>"
                   "<table id=errors><thead><tr><th>file</th><th>reason</th><th>message</th>"
                   "</tr></thead><tbody>")
        for e in errors.first:
            out.append(f"<tr><td class=path>{_text(e['path'])}</td><td>"
                       f"{_text(e['reason'])}</td><td>{_text(e['message'])}</td></tr>")
        out.append("</tbody></table>")
    else:
        out.append("<p>None.</p>")
    out.append("</body></html>\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(out), encoding="utf-8", errors="backslashreplace")
    tmp.replace(path)
