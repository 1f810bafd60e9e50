#!/usr/bin/env python3
"""ONNX backend conformance for Metronome.

Generates the ONNX project's own backend test cases at run time (nothing is committed):
the node cases of `onnx.backend.test.case.node.collect_testcases(None)` and the
PyTorch-exported cases shipped under onnx/backend/test/data/pytorch-converted and
pytorch-operator. Every case whose operators Metronome supports is written as model.onnx
plus .npy inputs and run through `metronome infer`; outputs are compared with the
case's expected outputs at the case's tolerances (ONNX's defaults: rtol 1e-3, atol 1e-7).

One rewrite is applied: graph inputs in *parameter* positions (Reshape's shape, Slice's
bounds, Split's sizes, Pad's pads and value, Clip's bounds, Squeeze/Unsqueeze axes,
Dropout's ratio/mode, Resize's roi/scales/sizes, Upsample's scales, Expand's shape, Tile's
repeats) become initializers holding the case's data, because Metronome takes those as
constants. Data inputs are never rewritten.

For each operator Metronome does not support, one case is run as well, and must fail with
a clear "unsupported operator" error naming it.

Usage: onnx_conformance.py --metronome BIN --work DIR --supported Op,Op,... --report FILE.json
"""
import argparse, json, os, subprocess, sys, warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
from onnx import numpy_helper

PARAMETER_INPUTS = {
    "Reshape": {1}, "Slice": {1, 2, 3, 4}, "Split": {1}, "Pad": {1, 2, 3}, "Clip": {1, 2},
    "Squeeze": {1}, "Unsqueeze": {1}, "Dropout": {1, 2}, "ConstantOfShape": {0},
    "ReduceMean": {1}, "ReduceMax": {1}, "ReduceMin": {1}, "ReduceSum": {1}, "ReduceL2": {1},
    "ReduceL1": {1}, "ReduceSumSquare": {1}, "ReduceProd": {1}, "ReduceLogSum": {1}, "ReduceLogSumExp": {1},
    "Resize": {1, 2, 3}, "Upsample": {1}, "Expand": {1}, "Tile": {1},
    "QuantizeLinear": {1, 2}, "DequantizeLinear": {1, 2},
}


def load_cases():
    """(name, source, model, inputs, outputs, rtol, atol) for every case."""
    from onnx.backend.test.case.node import collect_testcases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for case in collect_testcases(None):
            if case.model is None or not case.data_sets:
                continue
            inputs, outputs = case.data_sets[0]
            yield case.name, "node", case.model, list(inputs), list(outputs), case.rtol, case.atol
    data = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    for sub in ("pytorch-converted", "pytorch-operator"):
        root = os.path.join(data, sub)
        for name in sorted(os.listdir(root)):
            model = onnx.load(os.path.join(root, name, "model.onnx"))
            ds = os.path.join(root, name, "test_data_set_0")
            def read(prefix):
                files = sorted((f for f in os.listdir(ds) if f.startswith(prefix)), key=lambda f: int(f.split("_")[1].split(".")[0]))
                out = []
                for f in files:
                    t = onnx.TensorProto()
                    with open(os.path.join(ds, f), "rb") as fh:
                        t.ParseFromString(fh.read())
                    out.append(numpy_helper.to_array(t))
                return out
            yield name, sub, model, read("input_"), read("output_"), 1e-3, 1e-7


def op_types(model):
    return sorted({n.op_type for n in model.graph.node})


def main_op(name, ops, supported):
    """The operator a case is about: the op in its name, else its only operator."""
    base = name[len("test_"):] if name.startswith("test_") else name
    lowered = base.lower()
    for op in sorted(ops, key=len, reverse=True):
        if lowered.startswith(op.lower()):
            return op
    if len(ops) == 1:
        return ops[0]
    real = [o for o in ops if o not in ("Constant",)]
    return real[0] if len(real) == 1 else "+".join(ops)


def prepare(case_dir, model, inputs, outputs):
    """Writes the case; returns the run spec (input files, output names)."""
    graph_inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    data = dict(zip(graph_inputs, inputs))
    params = set()
    for node in model.graph.node:
        for pos in PARAMETER_INPUTS.get(node.op_type, ()):
            if pos < len(node.input) and node.input[pos] in data:
                params.add(node.input[pos])
    if params:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        keep = [i for i in model.graph.input if i.name not in params]
        del model.graph.input[:]
        model.graph.input.extend(keep)
        for p in sorted(params):
            model.graph.initializer.append(numpy_helper.from_array(np.asarray(data[p]), p))
    os.makedirs(case_dir, exist_ok=True)
    onnx.save(model, os.path.join(case_dir, "model.onnx"))
    spec = {"inputs": [], "outputs": [], "rewritten": sorted(params)}
    for i, name in enumerate(graph_inputs):
        if name in params:
            continue
        path = os.path.join(case_dir, "input_%d.npy" % i)
        np.save(path, np.asarray(data[name]))
        spec["inputs"].append([name, path])
    for i, (o, value) in enumerate(zip(model.graph.output, outputs)):
        if isinstance(value, list) or getattr(value, "dtype", None) is None:
            raise ValueError("output %s is a sequence or map" % o.name)
        spec["outputs"].append([o.name, os.path.join(case_dir, "expected_%d.npy" % i), os.path.join(case_dir, "actual_%d.npy" % i)])
        np.save(spec["outputs"][-1][1], np.asarray(value))
    return spec


def run_case(metronome, spec, rtol, atol):
    cmd = [metronome, "infer", spec["model"], "--force"]
    for name, path in spec["inputs"]:
        cmd += ["--input", "%s=%s" % (name, path)]
    for name, _, actual in spec["outputs"]:
        cmd += ["--output", "%s=%s" % (name, actual)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "crash", "timed out"
    err = (p.stderr or "").strip().splitlines()
    message = err[-1] if err else ""
    if p.returncode < 0 or p.returncode > 64:
        return "crash", "exit %d: %s" % (p.returncode, (p.stderr or "")[-400:])
    if p.returncode != 0:
        return ("error" if message else "crash"), message or "non-zero exit without a message"
    for name, expected_path, actual_path in spec["outputs"]:
        expected = np.load(expected_path)
        actual = np.load(actual_path)
        if expected.shape != actual.shape:
            return "mismatch", "output %s has shape %s, expected %s" % (name, actual.shape, expected.shape)
        try:
            np.testing.assert_allclose(actual, expected.astype(np.float32), rtol=rtol, atol=atol)
        except AssertionError as e:
            return "mismatch", "output %s: %s" % (name, str(e).strip().splitlines()[-1][:300])
    return "pass", ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--metronome", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--supported", required=True, help="operators Metronome imports")
    ap.add_argument("--import-time", default="", help="those of them evaluated at import time only")
    ap.add_argument("--report", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    supported = set(args.supported.split(","))
    import_time = set(filter(None, args.import_time.split(",")))

    jobs, results, unsupported_seen = [], [], {}
    for index, (name, source, model, inputs, outputs, rtol, atol) in enumerate(load_cases()):
        ops = op_types(model)
        missing = [o for o in ops if o not in supported]
        case_dir = os.path.join(args.work, "%04d_%s" % (index, name))
        if missing:
            op = missing[0]
            if op in unsupported_seen:
                continue
            unsupported_seen[op] = name
        try:
            spec = prepare(case_dir, model, inputs, outputs)
        except Exception as e:  # a case the generator cannot express as .npy (sequences, strings, ...)
            results.append({"name": name, "source": source, "ops": ops, "op": main_op(name, ops, supported),
                            "status": "skipped", "message": "not expressible as .npy files: %s" % e, "supported": not missing, "import_time": main_op(name, ops, supported) in import_time})
            continue
        spec["model"] = os.path.join(case_dir, "model.onnx")
        jobs.append((name, source, ops, missing, spec, rtol, atol))

    def work(job):
        name, source, ops, missing, spec, rtol, atol = job
        status, message = run_case(args.metronome, spec, rtol, atol)
        entry = {"name": name, "source": source, "ops": ops, "op": main_op(name, ops, supported), "status": status,
                 "message": message, "supported": not missing, "rewritten": spec["rewritten"]}
        if missing:
            # Must be refused with a clear error (which names the operator unless an earlier
            # check, such as an integer input, fails first).
            entry["op"] = missing[0]
            entry["named"] = "unsupported operator '%s'" % missing[0] in message
            entry["status"] = "refused" if status == "error" else ("crash" if status == "crash" else "not-refused")
        entry["import_time"] = entry["op"] in import_time
        return entry

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results += list(pool.map(work, jobs))

    per_op = {}
    for r in results:
        if not r["supported"]:
            continue
        s = per_op.setdefault(r["op"], {"pass": 0, "total": 0, "error": 0, "mismatch": 0, "crash": 0, "skipped": 0,
                                         "import_time": r["op"] in import_time})
        s["total"] += 1
        s[r["status"]] = s.get(r["status"], 0) + 1
    report = {"per_op": per_op, "cases": results}
    with open(args.report, "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    passed = sum(s["pass"] for s in per_op.values())
    total = sum(s["total"] for s in per_op.values())
    print("conformance: %d of %d supported-operator cases pass; %d unsupported operators checked" %
          (passed, total, sum(1 for r in results if not r["supported"])))


if __name__ == "__main__":
    sys.exit(main())
