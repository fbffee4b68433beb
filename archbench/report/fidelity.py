"""Renderings of a fidelity study: its rank table (τ, ρ with intervals, top-25% overlap, against params and
MACs) in the terminal, Markdown, CSV, JSON and HTML, and the verdict line a search report shows for its space.
"""
from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from archbench.errors import UserError
from archbench.store.run import RunFolder

if TYPE_CHECKING:
    from rich.console import Console

    from archbench.fidelity.analysis import FidelityAnalysis

FIDELITY_KIND = "fidelity"
HEADERS = ("signal", "n", "Kendall τ [95% CI]", "Spearman ρ [95% CI]", "top-25% overlap", "vs params", "vs macs", "seed-to-seed τ")


@dataclass(frozen=True)
class FidelityStudy:
    """One fidelity run folder as a report reads it: where, which space, its settings, its analysis."""

    path: Path
    space: str | None
    options: dict[str, Any]
    analysis: FidelityAnalysis
    created_at: str

    @property
    def label(self) -> str:
        return self.path.name


def run_kind(path: Path) -> str | None:
    """The ``kind`` in a run folder's manifest (None without a readable one)."""
    try:
        data = RunFolder(path).read_manifest_data()
    except UserError:
        return None
    return str(data.get("kind", "search")) if data else None


def load_study(path: Path) -> FidelityStudy:
    """A study's analysis: ``fidelity.json`` when it is current, else analysed again from its parts.

    Raises:
        UserError: not a fidelity study, or no evaluation finished yet (one line naming the folder).
    """
    from archbench.fidelity.analysis import FidelityAnalysis
    from archbench.fidelity.runner import analyse_run

    folder = RunFolder(path)
    manifest = folder.read_manifest()
    if manifest.kind != FIDELITY_KIND:
        raise UserError(f"{path}: a {manifest.kind} run, not a fidelity study")
    if not folder.part_files():
        raise UserError(f"{path}: the fidelity study has no finished evaluation yet")
    stored = folder.analysis_path
    newest_part = max(p.stat().st_mtime for p in folder.part_files())
    if stored.is_file() and stored.stat().st_mtime >= newest_part:
        try:
            analysis = FidelityAnalysis.from_dict(json.loads(stored.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            analysis = analyse_run(folder.path)  # damaged: the parts are the truth
    else:
        analysis = analyse_run(folder.path)  # an unfinished or resumed study: analyse what is there
    return FidelityStudy(folder.path, manifest.space.get("name"), manifest.options, analysis, manifest.created_at)


# ---- the table ----------------------------------------------------------------------------------
def rows(analysis: FidelityAnalysis) -> list[dict[str, str]]:
    """One display row per signal, keyed by :data:`HEADERS`."""
    out = []
    for r in analysis.rows:
        out.append({
            "signal": r.label,
            "n": str(r.n),
            "Kendall τ [95% CI]": r.interval("kendall_tau"),
            "Spearman ρ [95% CI]": r.interval("spearman_rho"),
            "top-25% overlap": "–" if r.top_overlap != r.top_overlap else f"{r.top_overlap:.0%} of {r.top_k}",
            "vs params": r.beats_params or "–",
            "vs macs": r.beats_macs or "–",
            "seed-to-seed τ": "–" if r.seed_tau is None or r.seed_tau != r.seed_tau else f"{r.seed_tau:.2f}",
        })
    return out


def settings_line(study: FidelityStudy) -> str:
    """What was compared: archs, seeds, the two fidelities in brief."""
    o = study.options

    def brief(config: dict[str, Any]) -> str:
        return f"{config.get('epochs')} ep, {config.get('proxy_img_size')} px, width ×{config.get('proxy_width_mult')}, depth ×{config.get('proxy_depth_mult')}"

    proxy, reference = o.get("proxy", {}), o.get("reference", {})
    return (
        f"space {study.space}; {study.analysis.n_archs} archs; dataset {proxy.get('dataset')}; "
        f"proxy {brief(proxy)} × {o.get('seeds')} seeds; reference {brief(reference)} × {o.get('reference_seeds')} seed(s)"
    )


def noise_line(analysis: FidelityAnalysis) -> str:
    parts = []
    if analysis.proxy_seed_tau is not None:
        parts.append(f"proxy seed-to-seed τ {analysis.proxy_seed_tau:.2f} over {analysis.proxy_seed_pairs} pair(s) (the noise ceiling)")
    if analysis.single_seed_tau is not None:
        parts.append(f"one proxy seed vs reference τ {analysis.single_seed_tau:.2f} (what a search sees)")
    if analysis.reference_seed_tau is not None:
        parts.append(f"reference seed-to-seed τ {analysis.reference_seed_tau:.2f}")
    return "; ".join(parts) or "one proxy seed: no noise ceiling (use --seeds 2 or more)"


LEGEND = (
    "τ, ρ: rank correlation of the signal (oriented: larger predicts better, losses negated) with the reference "
    "accuracy, percentile-bootstrap intervals over architectures; vs params/macs: beats or loses when the paired "
    "bootstrap interval of the τ difference excludes 0, else ties."
)


def print_fidelity(analysis: FidelityAnalysis, console: Console, *, study: FidelityStudy | None = None) -> None:
    """The study's table, noise ceilings and verdict in the terminal."""
    from rich.table import Table

    title = f"fidelity: {study.label}" if study else "fidelity: cheap signals against the reference accuracy"
    table = Table(title=title, caption=settings_line(study) if study else None, show_edge=False)
    for header in HEADERS:
        table.add_column(header, justify="left" if header == "signal" else "right")
    for row in rows(analysis):
        table.add_row(*(row[h] for h in HEADERS))
    console.print(table)
    console.print(noise_line(analysis), soft_wrap=True, highlight=False)
    console.print(f"[bold]verdict:[/] {analysis.verdict()}", soft_wrap=True, highlight=False)


def to_markdown(studies: Sequence[FidelityStudy], *, plot_paths: dict[str, str] | None = None) -> str:
    lines = []
    for study in studies:
        lines += [f"## Fidelity study {study.label}", "", settings_line(study), ""]
        lines += ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" if h == "signal" else "---:" for h in HEADERS) + "|"]
        lines += ["| " + " | ".join(r[h] for h in HEADERS) + " |" for r in rows(study.analysis)]
        lines += ["", noise_line(study.analysis), "", f"**Verdict:** {study.analysis.verdict()}", ""]
        if plot_paths and study.label in plot_paths:
            lines += [f"![signals against the reference]({plot_paths[study.label]})", ""]
    lines += [LEGEND, ""]
    return "\n".join(lines)


def to_csv(studies: Sequence[FidelityStudy]) -> str:
    import pandas as pd

    frames = [s.analysis.to_frame().assign(run=s.label, space=s.space) for s in studies]
    frame = pd.concat(frames, ignore_index=True)
    return frame[["run", "space", *[c for c in frame.columns if c not in ("run", "space")]]].to_csv(index=False)


def to_json(studies: Sequence[FidelityStudy]) -> str:
    out = [{"run": s.label, "path": str(s.path), "space": s.space, "options": s.options, **s.analysis.to_dict(), "verdict": s.analysis.verdict()} for s in studies]
    return json.dumps(out, indent=1, allow_nan=False) + "\n"


def to_html(studies: Sequence[FidelityStudy]) -> str:
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
        "td{text-align:right}td:first-child{text-align:left}"
    )
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'><title>archbench fidelity</title>", f"<style>{style}</style></head><body>"]
    for study in studies:
        esc = html.escape
        parts += [f"<h2>Fidelity study {esc(study.label)}</h2>", f"<p>{esc(settings_line(study))}</p><table><tr>"]
        parts += [f"<th>{esc(h)}</th>" for h in HEADERS] + ["</tr>"]
        for row in rows(study.analysis):
            parts.append("<tr>" + "".join(f"<td>{esc(row[h])}</td>" for h in HEADERS) + "</tr>")
        parts += ["</table>", f"<p>{esc(noise_line(study.analysis))}</p>", f"<p><b>Verdict:</b> {esc(study.analysis.verdict())}</p>"]
        png = _scatter_png(study)
        if png:
            parts.append(f"<img alt='signals against the reference' src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
    parts += [f"<p><small>{html.escape(LEGEND)}</small></p></body></html>\n"]
    return "".join(parts)


def print_studies(studies: Sequence[FidelityStudy], console: Console) -> None:
    for study in studies:
        print_fidelity(study.analysis, console, study=study)
    console.print(LEGEND, soft_wrap=True, highlight=False, style="dim")


def _scatter_png(study: FidelityStudy) -> bytes | None:
    folder = RunFolder(study.path)
    if folder.scatter_path.is_file():
        return folder.scatter_path.read_bytes()
    from archbench.fidelity.plot import scatter_png
    from archbench.store import read_trials

    buffer = io.BytesIO(scatter_png(read_trials(study.path, on_bad="skip"), study.analysis, None))
    return buffer.getvalue()


# ---- the verdict a search report shows ----------------------------------------------------------
def verdicts_for_spaces(spaces: Sequence[str], search_dirs: Sequence[Path]) -> dict[str, FidelityStudy]:
    """The newest finished fidelity study of each space in ``spaces``, looked for beside the searches
    (their parent folders, e.g. ``runs/``); spaces without one are left out."""
    found: dict[str, FidelityStudy] = {}
    parents = {p.resolve().parent for p in search_dirs}
    candidates = sorted({c for parent in parents if parent.is_dir() for c in parent.iterdir() if c.is_dir()})
    for path in candidates:
        if run_kind(path) != FIDELITY_KIND or not RunFolder(path).analysis_path.is_file():
            continue
        try:
            study = load_study(path)
        except UserError:
            continue
        if study.space in spaces and (study.space not in found or study.created_at > found[study.space].created_at):
            found[study.space] = study
    return found


def verdict_lines(studies: dict[str, FidelityStudy]) -> list[str]:
    return [f"fidelity of {space} ({study.path}): {study.analysis.verdict()}" for space, study in sorted(studies.items())]


__all__ = [
    "FidelityStudy", "HEADERS", "LEGEND", "load_study", "print_fidelity", "print_studies", "run_kind", "to_csv", "to_html",
    "to_json", "to_markdown", "verdict_lines", "verdicts_for_spaces",
]
