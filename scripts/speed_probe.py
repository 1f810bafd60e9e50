#!/usr/bin/env python3
"""How steady is this machine's speed? Times two fixed workloads on one core in alternating
windows and reports how much their per-window medians move, and how well one window predicts
the next: the noise floor any latency profile (and predictor scored against it) lives with.

    python3 scripts/speed_probe.py [--seconds 90] [--window 0.25] [--core 0]

Workloads: a 192x192 float32 matrix product (compute-bound) and an 8 MB element-wise add
(memory-bound), with NumPy limited to one thread. Windows run compute, memory, compute, so
each memory window has a compute window on either side. Reported: each workload's
coefficient of variation over windows and its range relative to the median; the correlation
of a compute window with the next compute window (if high, a reference probe timed beside a
measurement could normalise the machine's speed away; if low, it cannot); and the memory
workload's variation after dividing by its neighbouring compute windows. The compute windows
are also timed by the thread's CPU clock: if the machine's drift were time taken from the
thread (a hypervisor's steal), that clock would not see it.
"""
import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
import numpy as np  # noqa: E402  (after the thread limits, which NumPy reads on import)


def window(work, seconds, cpu=None):
    """Median wall time of `work` over a window; with a list `cpu`, also appends the median of
    the thread's CPU time (time the core was taken from the thread does not count there)."""
    times, cpu_times = [], []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t, c = time.perf_counter(), time.thread_time()
        work()
        cpu_times.append(time.thread_time() - c)
        times.append(time.perf_counter() - t)
    if cpu is not None:
        cpu.append(statistics.median(cpu_times))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=90, help="how long to measure (default 90)")
    parser.add_argument("--window", type=float, default=0.25, help="seconds per window (default 0.25)")
    parser.add_argument("--core", type=int, default=0, help="the core to pin to (default 0)")
    args = parser.parse_args()
    if args.seconds <= 0 or args.window <= 0 or args.window * 3 > args.seconds:
        sys.exit("error: --seconds and --window must be positive, with room for at least one round of three windows")
    try:
        os.sched_setaffinity(0, {args.core})
    except (OSError, ValueError) as error:
        sys.exit(f"error: cannot pin to core {args.core}: {error}")
    rng = np.random.default_rng(0)
    a = rng.random((192, 192), dtype=np.float32)
    b = rng.random((192, 192), dtype=np.float32)
    x = rng.random(1 << 21, dtype=np.float32)
    y = np.empty_like(x)
    compute, memory, compute_after, compute_cpu = [], [], [], []
    start = time.time()
    while time.time() - start < args.seconds:
        compute.append(window(lambda: np.dot(a, b), args.window, compute_cpu))
        memory.append(window(lambda: np.add(x, 1.0, out=y), args.window))
        compute_after.append(window(lambda: np.dot(a, b), args.window))
        done = min(1.0, (time.time() - start) / args.seconds)
        print(f"\r[{'#' * int(done * 24):<24}] {len(compute)} rounds", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    c, m, c2 = np.array(compute), np.array(memory), np.array(compute_after)

    def cv(v):
        return v.std() / v.mean()

    print(f"rounds of three {args.window:g} s windows: {len(c)}")
    print(f"compute-bound windows: coefficient of variation {cv(c):.3f}, range {c.min() / np.median(c):.3f}-{c.max() / np.median(c):.3f} of the median")
    k = np.array(compute_cpu)
    print(f"compute-bound windows by the thread's CPU time: coefficient of variation {cv(k):.3f}, range {k.min() / np.median(k):.3f}-{k.max() / np.median(k):.3f} of the median")
    print(f"memory-bound windows:  coefficient of variation {cv(m):.3f}, range {m.min() / np.median(m):.3f}-{m.max() / np.median(m):.3f} of the median")
    if len(c) >= 3:
        print(f"correlation of a compute window with the next compute window: {np.corrcoef(c, c2)[0, 1]:.3f}")
        print(f"correlation of compute and memory windows: {np.corrcoef(c, m)[0, 1]:.3f}")
        print(f"memory-bound windows divided by their neighbouring compute windows: coefficient of variation {cv(m / (0.5 * (c + c2))):.3f}")


if __name__ == "__main__":
    main()
