#!/usr/bin/env python3
"""Runs ONNX models in ONNX Runtime for the Swift test suite.

Usage: ort_run.py JOBS.json
JOBS.json is a list of {"model": path, "input": path, "shape": [..], "output": path}; inputs
and outputs are raw little-endian float32 files. Each model is checked with onnx.checker,
run on the CPU provider, and its first output written raw; the jobs, with "output_shape"
added, are printed as JSON on stdout. Only the files named in the jobs are written.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    for job in jobs:
        onnx.checker.check_model(onnx.load(job["model"]))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        session = ort.InferenceSession(job["model"], opts, providers=["CPUExecutionProvider"])
        x = np.fromfile(job["input"], dtype="<f4").reshape(job["shape"])
        y = session.run(None, {session.get_inputs()[0].name: x})[0]
        np.ascontiguousarray(y, dtype="<f4").tofile(job["output"])
        job["output_shape"] = list(y.shape)
    json.dump(jobs, sys.stdout)


if __name__ == "__main__":
    main()
