#!/usr/bin/env python3
"""Plot median latency against MACs from a `metronome profile` CSV, one panel per
(batch, threads), one colour per base model, as a self-contained SVG (no plotting library).

    python3 scripts/plot_profile.py profile.csv docs/profile-latency-vs-macs.svg [--force]

MACs are the cost model's for the profiled batch; both axes are logarithmic. Only model rows
with status ok are drawn; failed configurations are counted in each panel's title.
"""
import argparse
import csv
import math
import os
import sys
from collections import defaultdict

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]


def log_ticks(lo, hi):
    ticks = []
    e = math.floor(math.log10(lo))
    while 10 ** e <= hi * 1.0001:
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= v <= hi:
                ticks.append(v)
        e += 1
    return ticks


def label(v):
    if v >= 1e9:
        return f"{v / 1e9:g}G"
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile")
    ap.add_argument("svg")
    ap.add_argument("--force", action="store_true", help="overwrite the SVG if it exists")
    args = ap.parse_args()
    if os.path.exists(args.svg) and not args.force:
        sys.exit(f"{args.svg} already exists; pass --force to overwrite it")
    with open(args.profile, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("row") == "model"]
    if not rows:
        sys.exit(f"{args.profile} has no model rows")
    panels = defaultdict(list)
    failed = defaultdict(int)
    for r in rows:
        key = (int(r["batch"]), int(r["threads"]))
        if r["status"] == "ok":
            panels[key].append((float(r["macs"]), float(r["median_ms"]), r["base_model"] or r["model"]))
        else:
            failed[key] += 1
    families = sorted({p[2] for pts in panels.values() for p in pts})
    colour = {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(families)}
    keys = sorted(panels)
    cols = 2 if len(keys) > 1 else 1
    nrows = math.ceil(len(keys) / cols)
    pw, ph, ml, mt, mb, mr = 420, 300, 70, 40, 50, 20
    width = cols * (pw + ml + mr)
    legend_h = 30
    height = nrows * (ph + mt + mb) + legend_h
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for i, key in enumerate(keys):
        pts = panels[key]
        ox = (i % cols) * (pw + ml + mr) + ml
        oy = (i // cols) * (ph + mt + mb) + mt
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        xlo, xhi = min(xs) / 1.3, max(xs) * 1.3
        ylo, yhi = min(ys) / 1.3, max(ys) * 1.3

        def px(x):
            return ox + (math.log10(x) - math.log10(xlo)) / (math.log10(xhi) - math.log10(xlo)) * pw

        def py(y):
            return oy + ph - (math.log10(y) - math.log10(ylo)) / (math.log10(yhi) - math.log10(ylo)) * ph

        batch, threads = key
        title = f"batch {batch}, {threads} thread{'s' if threads > 1 else ''}: {len(pts)} models"
        if failed[key]:
            title += f", {failed[key]} failed"
        out.append(f'<text x="{ox + pw / 2}" y="{oy - 12}" text-anchor="middle" font-size="13">{title}</text>')
        out.append(f'<rect x="{ox}" y="{oy}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
        for t in log_ticks(xlo, xhi):
            x = px(t)
            out.append(f'<line x1="{x:.1f}" y1="{oy}" x2="{x:.1f}" y2="{oy + ph}" stroke="#ddd"/>')
            out.append(f'<text x="{x:.1f}" y="{oy + ph + 14}" text-anchor="middle">{label(t)}</text>')
        for t in log_ticks(ylo, yhi):
            y = py(t)
            out.append(f'<line x1="{ox}" y1="{y:.1f}" x2="{ox + pw}" y2="{y:.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{ox - 5}" y="{y + 4:.1f}" text-anchor="end">{label(t)}</text>')
        out.append(f'<text x="{ox + pw / 2}" y="{oy + ph + 32}" text-anchor="middle">MACs (batch {batch})</text>')
        out.append(f'<text x="{ox - 48}" y="{oy + ph / 2}" text-anchor="middle" transform="rotate(-90 {ox - 48} {oy + ph / 2})">median latency (ms)</text>')
        for x, y, fam in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{colour[fam]}" fill-opacity="0.8"><title>{fam}: {x:.3g} MACs, {y:.3f} ms</title></circle>')
    lx = ml
    ly = height - legend_h / 2
    for fam in families:
        out.append(f'<circle cx="{lx}" cy="{ly}" r="5" fill="{colour[fam]}"/>')
        out.append(f'<text x="{lx + 9}" y="{ly + 4}">{fam}</text>')
        lx += 18 + 7 * len(fam)
    out.append("</svg>")
    os.makedirs(os.path.dirname(os.path.abspath(args.svg)), exist_ok=True)
    with open(args.svg, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {args.svg}: {sum(len(p) for p in panels.values())} points in {len(keys)} panels, {len(families)} families")


if __name__ == "__main__":
    main()
