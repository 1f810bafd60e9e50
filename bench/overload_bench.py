#!/usr/bin/env python3
"""Overload: the overload example beside a deliberate interferer, with and without degrading.

A CPU hog runs on one core at a set duty cycle (busy B ms in every P ms) at SCHED_FIFO
priority 70, above Metronome's jobs (50) and workers (60): interference from outside the task
set that no WCET measured beforehand covers. The same set runs twice in one session, side by
side: once with the planner at full width only, once with its widths and `on_overrun:
degrade`. Reported per task: jobs, misses, miss ratio, p99 and max response, mean width, and
the interference episodes Metronome detected. Writes bench/OVERLOAD.md.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRONOME = os.path.join(ROOT, ".build/release/metronome")


def hog(core, busy_ms, period_ms):
    """A child process that burns `busy_ms` of every `period_ms` on `core` at SCHED_FIFO 70."""
    code = f"""
import os, time
os.sched_setaffinity(0, {{{core}}})
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(70))
except PermissionError:
    pass
period, busy = {period_ms} / 1000, {busy_ms} / 1000
start = time.monotonic()
n = 0
while True:
    t0 = start + n * period
    while time.monotonic() < t0 + busy:
        pass
    n += 1
    delay = start + n * period - time.monotonic()
    if delay > 0:
        time.sleep(delay)
"""
    return subprocess.Popen([sys.executable, "-c", code])


def run(yaml_text, duration, out, start_hog):
    """Runs the set; the hog starts once the timing runs are over, as the jobs begin, so
    that the WCETs are measured without it (it is interference the set was not built for)."""
    path = os.path.join(out, "set.yaml")
    with open(path, "w") as f:
        f.write(yaml_text)
    proc = subprocess.Popen([METRONOME, "run", path, "--duration", duration, "--out", os.path.join(out, "run"), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    h = None
    log = []
    try:
        for line in proc.stderr:
            log.append(line)
            if line.startswith("running for") and h is None:
                h = start_hog()
        stdout = proc.stdout.read()
        proc.wait()
    finally:
        if h is not None:
            h.kill()
            h.wait()
    if proc.returncode != 0:
        sys.exit("metronome run failed:\n" + "".join(log))
    if h is None:
        sys.exit("the run never said 'running for'; cannot place the hog:\n" + "".join(log))
    return json.loads(stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", default="20s")
    p.add_argument("--core", type=int, default=0, help="the core the hog runs on")
    p.add_argument("--busy", type=float, default=6, help="ms of every period the hog computes")
    p.add_argument("--period", type=float, default=10, help="the hog's period, ms")
    p.add_argument("--out", default=os.path.join(ROOT, "bench/OVERLOAD.md"))
    args = p.parse_args()
    with open(os.path.join(ROOT, "examples/overload.yaml")) as f:
        adaptive = f.read()
    fixed = re.sub(r"widths: \[[^\]]*\], on_overrun: degrade, ", "", adaptive)
    assert fixed != adaptive
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, text in [("full width only", fixed), ("widths + degrade", adaptive)]:
            out = os.path.join(tmp, label.replace(" ", "_"))
            os.makedirs(out)
            print(f"== {label}: hog on core {args.core}, {args.busy} of every {args.period} ms", flush=True)
            summary = run(text, args.duration, out, lambda: hog(args.core, args.busy, args.period))
            rows.append((label, summary))
    lines = [f"# Overload: the overload example beside a CPU hog ({args.busy} ms of every {args.period} ms at SCHED_FIFO 70 on core {args.core}), {args.duration} per run", "",
             "The hog starts when the jobs do (after the timing runs), so the WCETs do not include it.", "",
             "| run | task | jobs | misses | miss ratio | p99 ms | max ms | mean width |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for label, s in rows:
        for t in s["tasks"]:
            r = t.get("response_ms") or {}
            width = f"{t['mean_width']:.2f}" if t.get("mean_width") is not None else "1.00"
            lines.append(f"| {label} | {t['name']} | {t['jobs']} | {t['misses']} | {t['miss_ratio']:.3f} | "
                         f"{r.get('p99', 0):.2f} | {r.get('max', 0):.2f} | {width} |")
    lines.append("")
    for label, s in rows:
        misses = sum(t["misses"] for t in s["tasks"])
        lines.append(f"- {label}: {len(s.get('interference', []))} interference episode(s) detected; "
                     f"{s.get('misses_explained_by_interference', 0)} of {misses} misses fall inside one.")
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
