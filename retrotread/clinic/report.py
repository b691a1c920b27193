"""``retrotread report --client NAME``: one self-contained HTML page a clinician opens or prints.

Everything is inline (CSS and SVG; no scripts, fonts or images from elsewhere), so the file
can be mailed, archived or printed as it is. The page shows, per session: the time spent
backward, the longest stretch backward without a turn-around, how the walk felt (pain and Borg
CR10 exertion), the heart rate (mean and highest, with the ceiling), and the progression's
steps with their reasons, then the client's limits.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from retrotread.clinic import records
from retrotread.clinic.limits import ClientLimits
from retrotread.program import format_duration
from retrotread.progression import replay
from retrotread.store import BlockRecord, Client, SessionRecord, Status, Store

WIDTH, HEIGHT = 640, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 48, 16, 16, 36


@dataclass(frozen=True)
class SessionRow:
    record: SessionRecord
    retro_s: float
    longest_backward_s: float
    pain: int | None
    exertion: float | None
    hr_mean: float | None
    hr_max: int | None
    stage: str  # what progression offers after it
    reason: str


def longest_backward(blocks: Sequence[BlockRecord]) -> float:
    """The longest time backward without a turn-around, as the blocks were played."""
    longest = current = 0.0
    for block in sorted(blocks, key=lambda b: b.idx):
        if block.kind in ("retro", "retro-run"):
            current += block.actual_s if block.actual_s is not None else 0.0
            longest = max(longest, current)
        else:
            current = 0.0
    return longest


def gather(store: Store, client: Client) -> list[SessionRow]:
    sessions = [s for s in store.sessions(client) if s.status is not Status.RUNNING]
    evidence = {e.session_id: e for e in records.evidence(store, client)}
    steps = {step.evidence.session_id: step for step in replay(list(evidence.values()))}
    rows = []
    for record in sessions:
        felt = records.session_feeling(store, record.id)
        beats = [bpm for _, bpm in records.heart_rate(store, record.id)]
        step = steps.get(record.id)
        rows.append(
            SessionRow(
                record=record,
                retro_s=record.retro_s,
                longest_backward_s=longest_backward(store.blocks(record.id)),
                pain=felt.pain if felt else None,
                exertion=felt.exertion if felt else None,
                hr_mean=sum(beats) / len(beats) if beats else None,
                hr_max=max(beats) if beats else None,
                stage=step.stage.describe() if step else "",
                reason=step.reason if step else "",
            )
        )
    return rows


# -- plots ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    color: str
    bars: bool = False


def _nice_top(value: float) -> float:
    for top in (1, 2, 5, 10, 15, 20, 30, 60, 90, 120, 150, 180, 200, 240, 300, 600, 900, 1800):
        if value <= top:
            return float(top)
    return float(value)


def plot(
    plot_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    unit: str,
    top: float | None = None,
    line_at: tuple[float, str] | None = None,
) -> str:
    """An inline SVG chart: bars or lines, one point per session."""
    values = [v for s in series for v in s.values if v is not None]
    if line_at is not None:
        values.append(line_at[0])
    high = top if top is not None else _nice_top(max(values, default=1.0) or 1.0)
    inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    count = max(1, len(labels))
    slot = inner_w / count

    def x(i: int) -> float:
        return PAD_LEFT + slot * (i + 0.5)

    def y(v: float) -> float:
        return PAD_TOP + inner_h * (1 - min(v, high) / high)

    parts = [
        f'<svg id="{plot_id}" class="plot" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{html.escape(title)}</title>",
    ]
    for fraction in (0, 0.5, 1):
        gy = y(high * fraction)
        parts.append(
            f'<line class="grid" x1="{PAD_LEFT}" y1="{gy:.1f}" x2="{WIDTH - PAD_RIGHT}" '
            f'y2="{gy:.1f}"/>'
            f'<text class="axis" x="{PAD_LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end">'
            f"{high * fraction:g}</text>"
        )
    parts.append(
        f'<text class="axis" x="{PAD_LEFT - 6}" y="{PAD_TOP - 4}" text-anchor="end">'
        f"{html.escape(unit)}</text>"
    )
    bar_series = [s for s in series if s.bars]
    bar_w = slot * 0.7 / max(1, len(bar_series))
    for n, s in enumerate(bar_series):
        for i, v in enumerate(s.values):
            if v is None:
                continue
            left = x(i) - slot * 0.35 + n * bar_w
            parts.append(
                f'<rect class="bar" data-series="{html.escape(s.name)}" x="{left:.1f}" '
                f'y="{y(v):.1f}" width="{bar_w:.1f}" height="{y(0) - y(v):.1f}" '
                f'fill="{s.color}"><title>{html.escape(labels[i])}: {v:g} {unit}</title></rect>'
            )
    for s in series:
        if s.bars:
            continue
        points = [(x(i), y(v)) for i, v in enumerate(s.values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(
                f'<polyline class="line" data-series="{html.escape(s.name)}" points="{path}" '
                f'fill="none" stroke="{s.color}" stroke-width="2"/>'
            )
        for i, v in enumerate(s.values):
            if v is not None:
                parts.append(
                    f'<circle class="point" data-series="{html.escape(s.name)}" '
                    f'cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.5" fill="{s.color}">'
                    f"<title>{html.escape(labels[i])}: {v:g} {unit}</title></circle>"
                )
    if line_at is not None:
        ly = y(line_at[0])
        parts.append(
            f'<line class="ceiling" x1="{PAD_LEFT}" y1="{ly:.1f}" x2="{WIDTH - PAD_RIGHT}" '
            f'y2="{ly:.1f}" stroke="#c62828" stroke-dasharray="6 4"/>'
            f'<text class="axis" x="{WIDTH - PAD_RIGHT}" y="{ly - 4:.1f}" text-anchor="end" '
            f'fill="#c62828">{html.escape(line_at[1])}</text>'
        )
    step = max(1, len(labels) // 12)  # keep the labels apart
    for i, label in enumerate(labels):
        if i % step == 0:
            parts.append(
                f'<text class="axis" x="{x(i):.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" '
                f'text-anchor="middle">{html.escape(label)}</text>'
            )
    legend_x = PAD_LEFT
    for s in series:
        parts.append(
            f'<rect x="{legend_x}" y="{HEIGHT - 12}" width="10" height="10" fill="{s.color}"/>'
            f'<text class="axis" x="{legend_x + 14}" y="{HEIGHT - 3}">{html.escape(s.name)}</text>'
        )
        legend_x += 16 + 7 * len(s.name) + 18
    parts.append("</svg>")
    return "".join(parts)


# -- the page ------------------------------------------------------------------------------------

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #1b1b1b; margin: 24px auto;
       max-width: 760px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
.meta { color: #555; margin: 0 0 16px; }
.plot { display: block; max-width: 100%; height: auto; border: 1px solid #ddd;
        border-radius: 4px; background: #fff; }
.plot .grid { stroke: #e5e5e5; } .plot .axis { font-size: 11px; fill: #555; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #e5e5e5;
         vertical-align: top; }
td.num { text-align: right; white-space: nowrap; }
.empty { color: #777; font-style: italic; }
section { break-inside: avoid; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; }
               .plot { border: none; } }
"""


def _cell(value: float | None, fmt: str = "{:g}") -> str:
    return "—" if value is None else fmt.format(value)


def render(client: Client, rows: Sequence[SessionRow], limits: ClientLimits, today: date) -> str:
    labels = [f"#{r.record.id}" for r in rows]
    name = html.escape(client.name)
    sections = []
    if not rows:
        sections.append('<p class="empty">No sessions recorded yet.</p>')
    else:
        sections.append(
            "<section><h2>Time backward per session</h2>"
            + plot(
                "plot-retro-time",
                "Time backward per session",
                labels,
                [Series("time backward", [r.retro_s for r in rows], "#1565c0", bars=True)],
                unit="s",
            )
            + "</section>"
        )
        sections.append(
            "<section><h2>Longest stretch backward without a turn-around</h2>"
            + plot(
                "plot-longest-backward",
                "Longest backward stretch per session",
                labels,
                [Series("longest stretch", [r.longest_backward_s for r in rows], "#6a1b9a", True)],
                unit="s",
                line_at=(
                    (float(limits.longest_backward_s), f"limit {limits.longest_backward_s} s")
                    if limits.longest_backward_s
                    else None
                ),
            )
            + "</section>"
        )
        sections.append(
            "<section><h2>How it felt: pain and exertion</h2>"
            + plot(
                "plot-feelings",
                "Pain (0–10) and exertion (Borg CR10) per session",
                labels,
                [
                    Series("pain 0–10", [r.pain for r in rows], "#c62828"),
                    Series("exertion CR10", [r.exertion for r in rows], "#ef6c00"),
                ],
                unit="0–10",
                top=10,
            )
            + "</section>"
        )
        ceiling = limits.ceiling
        sections.append(
            "<section><h2>Heart rate per session</h2>"
            + plot(
                "plot-heart-rate",
                "Heart rate per session: mean and highest",
                labels,
                [
                    Series("mean bpm", [r.hr_mean and round(r.hr_mean) for r in rows], "#2e7d32"),
                    Series("highest bpm", [r.hr_max for r in rows], "#c62828"),
                ],
                unit="bpm",
                top=_nice_top(max([r.hr_max or 0 for r in rows] + [ceiling or 0, 100])),
                line_at=(float(ceiling), f"ceiling {ceiling}") if ceiling else None,
            )
            + "</section>"
        )
        steps = "".join(
            "<tr>"
            f"<td>#{r.record.id}</td>"
            f"<td>{datetime.fromtimestamp(r.record.started_at):%Y-%m-%d}</td>"
            f"<td>{html.escape(r.record.program)}</td>"
            f"<td>{html.escape(r.record.outcome.value if r.record.outcome else '—')}</td>"
            f'<td class="num">{format_duration(r.retro_s)}</td>'
            f'<td class="num">{_cell(r.pain)}</td>'
            f'<td class="num">{_cell(r.exertion)}</td>'
            f'<td class="num">{_cell(r.hr_max)}</td>'
            f"<td>{html.escape(r.stage)}</td>"
            f"<td>{html.escape(r.reason)}</td>"
            "</tr>"
            for r in rows
        )
        sections.append(
            '<section><h2>Progression, session by session</h2><table id="steps"><thead><tr>'
            "<th>session</th><th>date</th><th>program</th><th>outcome</th><th>backward</th>"
            "<th>pain</th><th>CR10</th><th>max bpm</th><th>next</th><th>why</th>"
            f"</tr></thead><tbody>{steps}</tbody></table></section>"
        )
    shown = limits.describe()
    limit_items = (
        "".join(f"<li>{html.escape(line)}</li>" for line in shown)
        if shown
        else '<li class="empty">none set: the program and the treadmill decide</li>'
    )
    sections.append(f'<section><h2>Limits</h2><ul id="limits">{limit_items}</ul></section>')
    note = f" — {html.escape(client.note)}" if client.note else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Retro walking — {name}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{STYLE}</style></head><body>"
        f"<h1>Retro walking: {name}</h1>"
        f'<p class="meta">{len(rows)} session(s), report of {today:%Y-%m-%d}{note}</p>'
        + "".join(sections)
        + "</body></html>\n"
    )


def report(store: Store, client: Client, today: date | None = None) -> str:
    """The client's report as one HTML page."""
    return render(
        client, gather(store, client), records.limits(store, client), today or date.today()
    )
