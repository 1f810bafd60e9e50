#!/usr/bin/env python3
"""The demo task set in Metronome vs the same four models run the way users do it without it.

Metronome: `metronome run examples/demo.yaml --duration D` (fixed priorities, layer
preemption, SCHED_FIFO when permitted), read back from its summary.json.

Without Metronome: the usual hand-written setup. One ONNX Runtime InferenceSession per task
(intra-op 1 thread, inter-op 1, sequential) in its own Python thread, pinned to the task's core,
released periodically at absolute times start + n·period (sleeping until each, so releases
never drift), the same periods and duration, and Metronome's default overrun rule: a release
that falls while the task's previous job still runs is skipped and counted as a miss. Threads
run at normal priority and the OS scheduler shares a core between its two tasks. ONNX Runtime
releases the GIL inside `run`, so the four sessions compute in parallel; the GIL is held only
for the few microseconds of bookkeeping between jobs.

A second ONNX Runtime variant adds what an expert user would: SCHED_FIFO for each thread, with
the tasks' priorities (rank order of the task set's `priority`, else rate-monotonic). It
separates what real-time priorities alone give from what Metronome's dispatcher adds.

Both sides use the same ONNX graphs (exported by `metronome export`) and random inputs.
Reports jobs, misses and p99/max response per task, and the ratios, in bench/REALTIME.md.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import onnxruntime as ort
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def duration_ns(text):
    text = str(text).strip()
    for unit in sorted(UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * UNITS[unit])
    raise ValueError(f"duration without a unit: {text!r}")


def sleep_until(t_ns):
    """Sleeps until the absolute monotonic time t_ns (the target is absolute, so errors never
    accumulate; Python has no clock_nanosleep(TIMER_ABSTIME), so the remaining time is slept)."""
    while True:
        left = t_ns - time.monotonic_ns()
        if left <= 0:
            return
        time.sleep(left / 1e9)


def run_metronome(binary, taskset, duration_s):
    with tempfile.TemporaryDirectory(prefix="metronome-rt-bench-") as out:
        proc = subprocess.run([binary, "run", taskset, "--duration", str(duration_s), "--out", out, "--force"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"metronome run failed:\n{proc.stdout}\n{proc.stderr}")
        with open(os.path.join(out, "summary.json")) as f:
            return json.load(f), proc.stdout


class Task:
    def __init__(self, spec, path, inputs, seed, fifo_priority=None):
        self.fifo_priority = fifo_priority
        self.name = spec["name"]
        self.period = duration_ns(spec["period"])
        self.deadline = duration_ns(spec.get("deadline", spec["period"]))
        self.offset = duration_ns(spec.get("offset", "0ms"))
        self.core = spec["cores"][0]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        rng = np.random.default_rng(seed)
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        self.feeds = [{inp.name: rng.uniform(-1, 1, shape).astype(np.float32)} for _ in range(inputs)]
        self.responses = []  # ns, completed jobs
        self.jobs = 0
        self.misses = 0
        self.skipped = 0
        self.error = None

    def worker(self, barrier, start_box, duration):
        try:
            os.sched_setaffinity(threading.get_native_id(), {self.core})
            if self.fifo_priority is not None:
                os.sched_setscheduler(threading.get_native_id(), os.SCHED_FIFO, os.sched_param(self.fifo_priority))
            for k in range(2):  # warm-up before the common start, as Metronome does
                self.session.run(None, self.feeds[k % len(self.feeds)])
            barrier.wait()
            start = start_box[0]
            previous_end = 0
            n = 0
            while True:
                release = start + self.offset + n * self.period
                if release >= start + duration:
                    break
                if time.monotonic_ns() < release:
                    sleep_until(release)
                elif release < previous_end:
                    # Released while the previous job still ran: skipped, a miss.
                    self.jobs += 1
                    self.misses += 1
                    self.skipped += 1
                    n += 1
                    continue
                self.session.run(None, self.feeds[n % len(self.feeds)])
                end = time.monotonic_ns()
                self.jobs += 1
                self.responses.append(end - release)
                if end > release + self.deadline:
                    self.misses += 1
                previous_end = end
                n += 1
        except BaseException as e:  # reported by the main thread
            self.error = e


def fifo_priorities(taskset):
    """SCHED_FIFO priorities 11, 12, ... in the task set's priority order: explicit `priority`
    (higher first) when every task has one, else rate-monotonic (shorter period first)."""
    specs = taskset["tasks"]
    if all("priority" in t for t in specs):
        order = sorted(range(len(specs)), key=lambda i: specs[i]["priority"])
    else:
        order = sorted(range(len(specs)), key=lambda i: -duration_ns(specs[i]["period"]))
    prio = [0] * len(specs)
    for rank, i in enumerate(order):
        prio[i] = 11 + rank
    return prio


def fifo_permitted():
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        return True
    except PermissionError:
        return False


def run_ort(taskset, paths, duration_s, inputs, fifo=False):
    prio = fifo_priorities(taskset) if fifo else [None] * len(taskset["tasks"])
    tasks = [Task(spec, paths[spec["model"]], inputs, 1000 + i, prio[i]) for i, spec in enumerate(taskset["tasks"])]
    duration = int(duration_s * 1e9)
    start_box = [0]

    def set_start():
        start_box[0] = time.monotonic_ns() + 20_000_000

    barrier = threading.Barrier(len(tasks), action=set_start)
    threads = [threading.Thread(target=t.worker, args=(barrier, start_box, duration), name=t.name) for t in tasks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for t in tasks:
        if t.error is not None:
            sys.exit(f"task {t.name} failed: {t.error!r}")
    return tasks


def p99(values_ns):
    return float(np.percentile(np.array(values_ns) / 1e6, 99)) if values_ns else float("nan")


def ratio(a, b):
    if b == 0:
        return "–" if a == 0 else "∞"
    return f"{a / b:.2f}"


def one_round(args, taskset, paths, fifo_ok, k):
    """Metronome, then ORT, then ORT + SCHED_FIFO (if permitted); per-task rows and a table."""
    print(f"round {k + 1}: Metronome, {args.taskset}, {args.duration:g} s ...", flush=True)
    summary, printed = run_metronome(args.binary, args.taskset, args.duration)
    print(printed)
    met_load = os.getloadavg()[0]
    print(f"ONNX Runtime {ort.__version__}, one pinned thread per task, {args.duration:g} s ...", flush=True)
    tasks = run_ort(taskset, paths, args.duration, args.inputs)
    ort_load = os.getloadavg()[0]
    if fifo_ok:
        print("ONNX Runtime with SCHED_FIFO ...", flush=True)
        fifo_tasks = run_ort(taskset, paths, args.duration, args.inputs, fifo=True)
        fifo_load = os.getloadavg()[0]
    else:
        fifo_tasks = [None] * len(tasks)
        fifo_load = float("nan")

    met = {t["name"]: t for t in summary["tasks"]}
    rows = []
    for t, f in zip(tasks, fifo_tasks):
        m = met[t.name]
        rows.append({
            "task": t.name, "model": m["model"], "core": t.core, "period_ms": t.period / 1e6,
            "met_jobs": m["jobs"], "met_misses": m["misses"],
            "met_p99": m["response_ms"]["p99"], "met_max": m["response_ms"]["max"],
            "ort_jobs": t.jobs, "ort_misses": t.misses, "ort_skipped": t.skipped,
            "ort_p99": p99(t.responses), "ort_max": max(t.responses) / 1e6 if t.responses else float("nan"),
            "met_min": m["response_ms"]["min"], "ort_min": min(t.responses) / 1e6 if t.responses else float("nan"),
            "met_p50": m["response_ms"]["p50"], "ort_p50": float(np.median(t.responses)) / 1e6 if t.responses else float("nan"),
            "fifo_jobs": f.jobs if f else None, "fifo_misses": f.misses if f else None,
            "fifo_skipped": f.skipped if f else None, "fifo_p99": p99(f.responses) if f else None,
        })

    table = [
        "| task | model, core | period | jobs (M / ORT) | min M / ORT | misses M | misses ORT (skipped) | p50 M | p50 ORT "
        "| p99 M | p99 ORT | p99 ratio | max M | max ORT | misses ORT+FIFO (skipped) | p99 ORT+FIFO | p99 ratio FIFO |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        fifo = (f"{r['fifo_misses']} ({r['fifo_skipped']}) | {r['fifo_p99']:.2f} | {ratio(r['fifo_p99'], r['met_p99'])}"
                if r["fifo_jobs"] is not None else "not run | – | –")
        table.append(
            f"| {r['task']} | {r['model']}, {r['core']} | {r['period_ms']:g} | {r['met_jobs']} / {r['ort_jobs']} | "
            f"{r['met_min']:.2f} / {r['ort_min']:.2f} | {r['met_misses']} | {r['ort_misses']} ({r['ort_skipped']}) | {r['met_p50']:.2f} | {r['ort_p50']:.2f} | "
            f"{r['met_p99']:.2f} | {r['ort_p99']:.2f} | "
            f"{ratio(r['ort_p99'], r['met_p99'])} | {r['met_max']:.2f} | {r['ort_max']:.2f} | {fifo} |")
    return {"summary": summary, "rows": rows, "table": table, "loads": (met_load, ort_load, fifo_load),
            "met_total": sum(r["met_misses"] for r in rows), "ort_total": sum(r["ort_misses"] for r in rows),
            "fifo_total": sum(r["fifo_misses"] for r in rows) if fifo_ok else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "metronome"))
    ap.add_argument("--taskset", default=os.path.join(ROOT, "examples", "demo.yaml"))
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of releases, both sides")
    ap.add_argument("--repeat", type=int, default=1, help="rounds (the machine's load varies between runs)")
    ap.add_argument("--inputs", type=int, default=4, help="preloaded inputs per task (Metronome's default)")
    ap.add_argument("--out", default=os.path.join(HERE, "REALTIME.md"))
    args = ap.parse_args()

    with open(args.taskset) as f:
        taskset = yaml.safe_load(f)
    for t in taskset["tasks"]:
        if set(t) - {"name", "model", "period", "deadline", "priority", "cores", "offset"}:
            sys.exit(f"task {t['name']}: this benchmark reproduces only single-core, batch-1, full-width tasks")
        if len(t.get("cores", [])) != 1:
            sys.exit(f"task {t['name']}: needs exactly one core")

    workdir = os.path.join(HERE, "out")
    os.makedirs(workdir, exist_ok=True)
    paths = {}
    for model in sorted({t["model"] for t in taskset["tasks"]}):
        paths[model] = os.path.join(workdir, f"{model}.onnx")
        subprocess.run([args.binary, "export", model, "--out", paths[model], "--force"], check=True, capture_output=True)

    fifo_ok = fifo_permitted()
    if not fifo_ok:
        print("SCHED_FIFO not permitted: the ONNX Runtime + SCHED_FIFO variant is not run", flush=True)
    rounds = [one_round(args, taskset, paths, fifo_ok, k) for k in range(args.repeat)]
    summary = rounds[0]["summary"]

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        "# Real-time task set: Metronome vs a hand-written ONNX Runtime setup",
        "",
        f"Generated by `make bench-realtime` (bench/realtime_bench.py) on {datetime.date.today()}: "
        f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
        f"ONNX Runtime {ort.__version__}. Task set: `{os.path.relpath(args.taskset, ROOT)}`, "
        f"{args.duration:g} s of releases per run; {args.repeat} round(s), each running Metronome, ORT and "
        "ORT + SCHED_FIFO one after the other.",
        "",
        f"Metronome: policy {summary['policy']}, preemption {summary['preemption']}, "
        f"SCHED_FIFO {'yes' if summary['realtime_priority'] else 'no'}. ONNX Runtime (ORT): one session per task "
        "(1 intra-op, 1 inter-op thread) in its own thread pinned to the task's core, normal priority, absolute "
        "periodic releases, a release during the previous job skipped and counted as a miss (Metronome's default "
        "`overrun: skip`). ORT releases the GIL inside `run`, so the four sessions compute in parallel. "
        "ORT + SCHED_FIFO: the same with each thread at SCHED_FIFO in the task set's priority order"
        + ("" if fifo_ok else " (not run: SCHED_FIFO was not permitted)") + ".",
        "",
        "Misses count missed deadlines and skipped releases; responses are from release to end, ms "
        "(Metronome's p99 from an HdrHistogram, ORT's from numpy). Ratios are ORT / Metronome (> 1: Metronome better). "
        "The minimum response is about one undisturbed job: the two engines' single-job speed (see bench/RESULTS.md).",
        "",
        "The runs share the machine with whatever else runs on it; the 1-minute load average after each run is "
        "given (above the number of cores: other processes competed for them). SCHED_FIFO threads (Metronome's "
        "workers, the FIFO variant) preempt normal-priority processes; the plain ORT threads share the cores with them.",
        "",
        "| round | misses M | misses ORT | misses ORT+FIFO | load M / ORT / FIFO |",
        "|---:|---:|---:|---:|---|",
    ]
    for k, r in enumerate(rounds):
        lines.append(f"| {k + 1} | {r['met_total']} | {r['ort_total']} | {r['fifo_total'] if fifo_ok else '–'} | "
                     + " / ".join(f"{x:.2f}" for x in r["loads"]) + " |")
    for k, r in enumerate(rounds):
        lines += ["", f"## Round {k + 1}", ""] + r["table"]
    lines.append("")
    text = "\n".join(lines)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    with open(os.path.join(workdir, "realtime.json"), "w") as f:
        json.dump([{"metronome": r["summary"], "rows": r["rows"]} for r in rounds], f, indent=2)


if __name__ == "__main__":
    main()
