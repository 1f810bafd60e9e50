"""What the ONNX Runtime comparison scripts (ort_models.py, ort_operators.py,
ort_resampling.py) share: running the metronome CLI, and the relative error they compare by."""
import subprocess

import numpy as np


def run(cmd):
    """Runs a command; its stdout, or an error carrying the end of its stderr."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (" ".join(cmd[:3]), p.returncode, p.stderr.strip()[-800:]))
    return p.stdout


def relerr(a, ref):
    """max |a − ref| / max |ref|; infinite for a shape mismatch or a non-finite value, 0 for
    two empty arrays."""
    if a.shape != ref.shape:
        return float("inf")
    if not np.all(np.isfinite(a)) or not np.all(np.isfinite(ref)):
        return float("inf")
    if not ref.size:
        return 0.0
    scale = float(np.abs(ref).max()) or 1.0
    return float(np.abs(a - ref).max()) / scale
