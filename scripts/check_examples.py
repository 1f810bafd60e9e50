#!/usr/bin/env python3
"""`make examples`: runs every task set in examples/ briefly and checks what its comments say.

Each example states its expectations in `# expect:` lines, checked against the run's
summary.json (a set whose tasks all declare `wcet` is simulated instead of run):

  # expect: no misses                      every task met every deadline
  # expect: misses: small, medium          these tasks missed at least one deadline
  # expect: schedulable                    the analysis calls every task schedulable
  # expect: not schedulable: small         the analysis does not vouch for these tasks
  # expect: not analysed                   the analysis gives no verdict for any task
  # expect: analysis held                  no task the analysis vouched for missed or exceeded its bound,
                                           except while the analysis's premise was broken (a job
                                           or layer past its analysed length on the same cores, or
                                           an interference episode: summary.json's
                                           violations_premise_broken); those are printed as WARN

Exits non-zero when an expectation fails or an example has none.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def expectations(path):
    with open(path, encoding="utf-8") as f:
        return [line.split("expect:", 1)[1].strip() for line in f if line.lstrip().startswith("# expect:")]


def names(text):
    return [n.strip() for n in text.split(",") if n.strip()]


def check(expectation, tasks, summary):
    """Returns None when the expectation holds, else what went wrong."""
    by_name = {t["name"]: t for t in tasks}
    if expectation == "no misses":
        bad = [f"{t['name']} missed {t['misses']}" for t in tasks if t["misses"] > 0]
        return "; ".join(bad) or None
    if expectation.startswith("misses:"):
        bad = [f"{n} missed nothing" for n in names(expectation[7:]) if by_name[n]["misses"] == 0]
        return "; ".join(bad) or None
    if expectation == "schedulable":
        bad = [f"{t['name']}: {t['schedulable']}" for t in tasks if t["schedulable"] is not True]
        return "; ".join(bad) or None
    if expectation.startswith("not schedulable:"):
        bad = [f"{n} was called schedulable" for n in names(expectation[16:]) if by_name[n]["schedulable"] is not False]
        return "; ".join(bad) or None
    if expectation == "not analysed":
        bad = [f"{t['name']}: {t['schedulable']}" for t in tasks if t["schedulable"] is not None]
        return "; ".join(bad) or None
    if expectation == "analysis held":
        bad = [f"{t['name']} (missed {t['misses']}, max/bound {t.get('observed_bound_ratio')})" for t in tasks
               if t["schedulable"] is True and (t["misses"] > 0 or (t.get("observed_bound_ratio") or 0) > 1)]
        if not bad:
            return None
        violations = summary.get("violations", 0)
        broken = summary.get("violations_premise_broken", 0)
        if violations > 0 and broken == violations:
            return Warning(f"{'; '.join(bad)}: all {violations} violating jobs ran while the analysis's premise was broken "
                           "(a job or layer past its analysed length on the same cores, or an interference episode)")
        return "; ".join(bad) + f" ({violations - broken} of {violations} violating jobs with the premise intact)"
    return f"unknown expectation '{expectation}'"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metronome", default=os.path.join(ROOT, ".build/release/metronome"))
    parser.add_argument("--duration", default="3s", help="run length of each example (a duration with a unit)")
    parser.add_argument("examples", nargs="*", help="task-set files (default: every examples/*.yaml)")
    args = parser.parse_args()
    files = args.examples or sorted(os.path.join(ROOT, "examples", f) for f in os.listdir(os.path.join(ROOT, "examples"))
                                    if f.endswith(".yaml"))
    failures = 0
    passed = 0
    warned = 0
    for path in files:
        expected = expectations(path)
        name = os.path.relpath(path, ROOT)
        if not expected:
            print(f"FAIL {name}: no '# expect:' line")
            failures += 1
            continue
        with open(path, encoding="utf-8") as f:
            synthetic = "model:" not in f.read()
        with tempfile.TemporaryDirectory() as out:
            command = [args.metronome, "simulate" if synthetic else "run", path, "--out", out, "--duration", args.duration]
            print(f"== {name}: {' '.join(command[1:3])} for {args.duration}", flush=True)
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                print(f"FAIL {name}: exit {result.returncode}\n{result.stderr}")
                failures += 1
                continue
            with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
                summary = json.load(f)
            tasks = summary["tasks"]
        for t in tasks:
            print(f"   {t['name']:<10} jobs {t['jobs']:>4}  misses {t['misses']:>4}  max {((t.get('response_ms') or {}).get('max') or 0):8.2f} ms"
                  f"  bound {t['bound_ms'] if t['bound_ms'] is not None else '-'}  schedulable {t['schedulable']}")
        for e in expected:
            problem = check(e, tasks, summary)
            if isinstance(problem, Warning):
                print(f"WARN {name}: expected '{e}': {problem}")
                warned += 1
            elif problem:
                print(f"FAIL {name}: expected '{e}': {problem}")
                failures += 1
            else:
                print(f"ok   {name}: {e}")
                passed += 1
    print(f"examples: {passed} passed, {failures} failed"
          + (f", {warned} broken only while the analysis's premise was (WARN above)" if warned else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
