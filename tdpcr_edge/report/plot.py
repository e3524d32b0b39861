"""report.png: PSNR and mIoU against p50 latency, one panel each, the Pareto front drawn and
circled. Each panel's scale is the in-budget rows'; over-budget rows outside it are pinned at
its edge with their real value in the label, so a far-off INT8 does not squeeze the rows one
may deploy into a line. Labels are placed beside their points by a search over candidate
boxes (adjustText would do it, but needs scipy, which would grow the torch-free runtime
install by about half for a figure)."""

from __future__ import annotations

from pathlib import Path

from ..io_utils import atomic_path
from .rows import PARETO_RESOLUTION, pareto_front, row_label

PANELS = (("psnr", "PSNR (dB)", "dB", ".2f"), ("miou", "mIoU (%)", "%", ".1f"))
DPI = 110
LABEL_PT = 8
# Labels keep this clear of a point's centre: the radius of the Pareto front's circle.
MARKER_PT = 6
# Axes fraction over-budget rows off the in-budget scale are pinned at, below and above.
PIN = (0.05, 0.95)


MODEL_COLORS = ("tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:cyan", "tab:olive", "tab:pink")


def _in_budget(row: dict) -> bool:
    # pytest-benchmark input judges no drift: its rows count as in budget.
    return row.get("within_budget") is not False


def _limits(values: list[float], pad_low: float, pad_high: float, least: float) -> tuple[float, float]:
    """Limits that put ``values`` between the fractions ``pad_low`` and ``1 - pad_high`` of the
    axis, the values spanning at least ``least`` (rows that measure alike)."""
    lo, hi = min(values), max(values)
    if hi - lo < least:
        lo, hi = (lo + hi - least) / 2, (lo + hi + least) / 2
    total = (hi - lo) / (1 - pad_low - pad_high)
    return lo - pad_low * total, hi + pad_high * total


def _draw_panel(ax, rows: list[dict], metric: str, unit: str, fmt: str) -> tuple[list, list]:
    """Points, the front and the limits of one panel; returns the labels to place, as
    (text, xy, transform of xy), and the front's points (data)."""
    measured = [r for r in rows if r.get(metric) is not None and r.get("latency_ms_p50") is not None]
    if not measured:
        ax.text(0.5, 0.5, f"no {metric} measured", ha="center", va="center", transform=ax.transAxes)
        return [], []
    ok = [r for r in measured if _in_budget(r)]
    over = [r for r in measured if not _in_budget(r)]
    # The scale is the in-budget rows': an over-budget row far below them would squeeze them
    # into one line. A panel of alike rows still spans a few printed steps, so it does not
    # magnify differences the table cannot show.
    scale = [r[metric] for r in ok] or [r[metric] for r in measured]
    least = 4 * PARETO_RESOLUTION.get(metric, 0.0) or 0.02 * abs(scale[0]) or 1.0
    first = _limits(scale, 0.1, 0.1, least)
    low = [r for r in over if r[metric] < first[0]]
    high = [r for r in over if r[metric] > first[1]]
    # Room between the pinned row and the lowest (highest) in-budget row for their labels.
    y0, y1 = _limits(scale, 0.22 if low else 0.1, 0.22 if high else 0.1, least)
    lats = [r["latency_ms_p50"] for r in measured]
    xpad = 0.06 * (max(lats) - min(lats)) or 0.05 * abs(lats[0]) or 1.0
    ax.set_xlim(min(lats) - xpad, max(lats) + xpad)
    ax.set_ylim(y0, y1)

    front = pareto_front(rows, metric)
    fxy = [(rows[i]["latency_ms_p50"], rows[i][metric]) for i in front]
    if fxy:
        ax.step([p[0] for p in fxy], [p[1] for p in fxy], where="post", color="tab:red", lw=1.2, zorder=1)
    # One colour per model in a report of several; one front over all of them.
    for i, model in enumerate(dict.fromkeys(r.get("model") for r in ok)):
        own = [r for r in ok if r.get("model") == model]
        color = MODEL_COLORS[i % len(MODEL_COLORS)] if model else "tab:blue"
        label = model or "backend / precision"
        ax.scatter([r["latency_ms_p50"] for r in own], [r[metric] for r in own], color=color, zorder=2, label=label)
    if fxy:
        ax.scatter([p[0] for p in fxy], [p[1] for p in fxy], s=120, facecolors="none", edgecolors="tab:red", zorder=3, label="Pareto front")
    shown = [r for r in over if r not in low and r not in high]
    if shown:
        ax.scatter(
            [r["latency_ms_p50"] for r in shown],
            [r[metric] for r in shown],
            marker="x",
            s=70,
            color="tab:gray",
            zorder=4,
            label="over the drift budget",
        )
    pin = ax.get_xaxis_transform()  # x in data, y in axes fractions
    for pinned, y, marker in ((low, PIN[0], "v"), (high, PIN[1], "^")):
        if pinned:
            ax.scatter(
                [r["latency_ms_p50"] for r in pinned],
                [y] * len(pinned),
                transform=pin,
                marker=marker,
                s=60,
                color="tab:gray",
                zorder=4,
                label="over the budget, off the scale (value in its label)",
            )
    labels = [(row_label(r), (r["latency_ms_p50"], r[metric]), ax.transData) for r in ok + shown]
    labels += [
        (f"{row_label(r)} ({r[metric]:{fmt}} {unit})", (r["latency_ms_p50"], y), pin)
        for pinned, y in ((low, PIN[0]), (high, PIN[1]))
        for r in pinned
    ]
    return labels, fxy


def _overlap(a: tuple, b: tuple) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _crosses(rect: tuple, p: tuple, q: tuple, samples: int = 24) -> bool:
    return any(
        rect[0] < p[0] + (q[0] - p[0]) * t / samples < rect[2] and rect[1] < p[1] + (q[1] - p[1]) * t / samples < rect[3]
        for t in range(samples + 1)
    )


def _nearest(p: tuple, rect: tuple) -> tuple:
    """The point of ``rect`` nearest ``p``: where a label's connector meets its box."""
    return min(max(p[0], rect[0]), rect[2]), min(max(p[1], rect[1]), rect[3])


def _distance(p: tuple, rect: tuple) -> float:
    q = _nearest(p, rect)
    return ((q[0] - p[0]) ** 2 + (q[1] - p[1]) ** 2) ** 0.5


def _candidates(p: tuple, w: float, h: float, gap: float):
    """Boxes (x0, y0, x1, y1) round point ``p`` for a label ``w`` by ``h``, with a small
    preference: right of the point, then above or below, then left."""
    x, y = p
    step = h / 2 + 1
    for dx in (0.0, 6.0, 14.0, 26.0):
        for m in range(-10, 11):
            y_0 = y - h / 2 + m * step
            yield (x + gap + dx, y_0, x + gap + dx + w, y_0 + h), 0.0
            yield (x - gap - dx - w, y_0, x - gap - dx, y_0 + h), 4.0
    for k in range(7):
        for f in (0.0, 0.25, 0.5, 0.75, 1.0):
            x_0 = x - f * w
            yield (x_0, y + gap + k * step, x_0 + w, y + gap + k * step + h), 2.0
            yield (x_0, y - gap - k * step - h, x_0 + w, y - gap - k * step), 2.0


def _place_labels(ax, items: list, front: list, renderer) -> None:
    """Puts each label beside its point: of the candidate boxes round it, the one inside the
    axes and clear of the labels placed before it that is nearest its point, shunning other
    points, boxes nearer another point, the front's step line, and connectors crossing
    labels. A label set off from its point gets a thin line to it. Crowded points go first,
    while room is left near them."""
    if not items:
        return
    px_per_pt = ax.figure.dpi / 72
    gap = MARKER_PT * px_per_pt + 1
    area = ax.get_window_extent(renderer)
    inner = (area.x0 + 2, area.y0 + 2, area.x1 - 2, area.y1 - 2)
    anchors = [tuple(tr.transform(xy)) for _, xy, tr in items]
    steps = [tuple(ax.transData.transform(p)) for p in front]
    segments = [(a, (b[0], a[1])) for a, b in zip(steps, steps[1:])] + [((b[0], a[1]), b) for a, b in zip(steps, steps[1:])]
    sizes, rel = [], []
    for (text, xy, tr), a in zip(items, anchors):
        t = ax.annotate(text, xy, xycoords=tr, xytext=(0, 0), textcoords="offset points", fontsize=LABEL_PT, ha="left", va="bottom")
        bb = t.get_window_extent(renderer)
        sizes.append((bb.width, bb.height))
        rel.append((bb.x0 - a[0], bb.y0 - a[1]))
        t.remove()
    reach = 4 * max(h for _, h in sizes)
    crowd = [sum(abs(a[0] - b[0]) < reach and abs(a[1] - b[1]) < reach for b in anchors) for a in anchors]
    placed: list[tuple] = []
    connectors: list[tuple] = []
    for k in sorted(range(len(items)), key=lambda k: (-crowd[k], anchors[k][0], anchors[k][1])):
        a, (w, h) = anchors[k], sizes[k]
        others = [b for j, b in enumerate(anchors) if j != k]

        def cost(candidate):
            rect, prefer = candidate
            d = _distance(a, rect)
            moved = d > gap + 2
            # Hard: the part outside the axes and over placed labels; a box with none wins.
            inside = inner[0] <= rect[0] and rect[2] <= inner[2] and inner[1] <= rect[1] and rect[3] <= inner[3]
            hard = (0.0 if inside else w * h - _overlap(rect, inner)) + sum(
                _overlap(rect, (q[0] - 1, q[1] - 1, q[2] + 1, q[3] + 1)) for q in placed
            )
            soft = d + prefer
            soft += 400 * sum(_distance(b, rect) < gap - 1 for b in others)
            # A box as near another point as its own would read as that point's label.
            soft += 25 * sum(_distance(b, rect) < d + 3 for b in others if b != a)
            soft += 40 * sum(_crosses(rect, *s) for s in segments)
            soft += 200 * sum(_crosses(rect, *c) for c in connectors)
            if moved:
                soft += 10 + 200 * sum(_crosses(q, a, _nearest(a, rect)) for q in placed)
            return hard, soft

        rect, _ = min(_candidates(a, w, h, gap), key=cost)
        placed.append(rect)
        text, xy, tr = items[k]
        offset = ((rect[0] - a[0] - rel[k][0]) / px_per_pt, (rect[1] - a[1] - rel[k][1]) / px_per_pt)
        arrow = None
        if _distance(a, rect) > gap + 2:
            # The shortest line from the point to its box, so it crosses as little as it can.
            end = _nearest(a, rect)
            connectors.append((a, end))
            arrow = dict(
                arrowstyle="-", lw=0.6, color="0.45", shrinkA=1, shrinkB=MARKER_PT, relpos=((end[0] - rect[0]) / w, (end[1] - rect[1]) / h)
            )
        t = ax.annotate(
            text,
            xy,
            xycoords=tr,
            xytext=offset,
            textcoords="offset points",
            fontsize=LABEL_PT,
            ha="left",
            va="bottom",
            arrowprops=arrow,
            annotation_clip=False,
            zorder=5,
        )
        t.set_in_layout(False)  # the layout, fixed before placing, must not move under the labels


def figure(report: dict):
    """The report's figure: a matplotlib ``Figure`` on an Agg canvas, its labels placed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.6), dpi=DPI, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    panels = []
    for ax, (metric, ylabel, unit, fmt) in zip(axes, PANELS):
        panels.append((ax, *_draw_panel(ax, report["rows"], metric, unit, fmt)))
        ax.set_xlabel("latency p50 (ms per tile)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    legend: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    if legend:
        # Beneath the panels, so no label has to dodge it.
        fig.legend(list(legend.values()), list(legend), loc="outside lower center", ncols=min(len(legend), 5), fontsize=8, frameon=False)
    who = "Models'" if report.get("models") else "TDP-CR"
    fig.suptitle(f"{who} accuracy against latency: {report.get('device_label', '')}, {report.get('date', '')}", fontsize=10)
    canvas.draw()  # fixes the layout; labels are placed in its pixels
    renderer = canvas.get_renderer()
    for ax, labels, front in panels:
        _place_labels(ax, labels, front, renderer)
    return fig


def plot(report: dict, path: Path) -> None:
    fig = figure(report)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
