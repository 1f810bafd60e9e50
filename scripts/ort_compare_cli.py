#!/usr/bin/env python3
"""Compares `metronome infer` with ONNX Runtime on ONNX files (e.g. from `metronome slim`
or `metronome fold`): a random input of batch 2, the largest absolute difference of the first
output relative to ONNX Runtime's largest magnitude.

Usage: ort_compare_cli.py [--binary PATH] MODEL.onnx...
Temporary .npy files go to a temporary directory that is removed afterwards.
"""
import argparse
import os
import subprocess
import tempfile

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "metronome"))
    ap.add_argument("models", nargs="+")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        x_path, y_path = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        for path in args.models:
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            inp = session.get_inputs()[0]
            shape = [d if isinstance(d, int) else 2 for d in inp.shape]
            x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
            np.save(x_path, x)
            expected = session.run(None, {inp.name: x})[0]
            subprocess.run([args.binary, "infer", path, "--input", x_path, "--output", y_path, "--force"],
                           check=True, capture_output=True)
            actual = np.load(y_path)
            err = np.abs(expected - actual).max() / np.abs(expected).max()
            print(f"{os.path.basename(path):34s} in {shape} out {list(expected.shape)} max rel err {err:.2e}")


if __name__ == "__main__":
    main()
