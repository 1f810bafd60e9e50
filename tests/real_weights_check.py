#!/usr/bin/env python3
"""Checks EfficientNet-Lite0 with its real ImageNet weights on real photographs.

For the sample photographs scikit-image ships (a cat, a coffee cup, a rocket):
  * runs `metronome classify` and records the top-1 class;
  * saves the preprocessed input tensor and Metronome's logits (--save-input/--save-output),
    exports the model with `metronome export` and runs ONNX Runtime on the same tensor;
  * preprocesses the photograph independently with Pillow (shorter side 256, bilinear with
    antialiasing, center crop 224, ImageNet mean/std) and compares the tensors.
It also reads tensors of the cached checkpoint with a restricted Python unpickler and saves
them as .npy, for the Swift checkpoint reader to be compared against.

Usage: real_weights_check.py --metronome BIN --checkpoint FILE.pth --work DIR --report FILE.json
"""
import argparse, collections, json, os, pickle, struct, subprocess, sys

import numpy as np
import onnxruntime as ort
import skimage
from PIL import Image

IMAGES = ["chelsea.png", "coffee.png", "rocket.jpg"]


def pil_preprocess(path):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    if w <= h:
        ow, oh = 256, int(256 * h / w)
    else:
        ow, oh = int(256 * w / h), 256
    img = img.resize((ow, oh), Image.BILINEAR)
    top, left = int(round((oh - 224) / 2.0)), int(round((ow - 224) / 2.0))
    a = np.asarray(img, dtype=np.float32)[top:top + 224, left:left + 224] / 255.0
    a = (a - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return a.transpose(2, 0, 1)[None].astype(np.float32)


def read_checkpoint(path):
    """Legacy torch.save format, read with a restricted unpickler (no torch needed)."""
    f = open(path, "rb")
    for _ in range(3):
        pickle.load(f)
    storages = {}

    class U(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return lambda s, o, size, stride, *rest: (s, o, size, stride)
            if module == "torch" and name.endswith("Storage"):
                return name
            raise pickle.UnpicklingError("refused %s.%s" % (module, name))

        def persistent_load(self, pid):
            _, stype, key, _, numel, _ = pid
            storages.setdefault(key, [stype, numel, None])
            return key

    sd = U(f).load()
    keys = pickle.load(f)
    dtypes = {"FloatStorage": np.float32, "LongStorage": np.int64}
    for k in keys:
        n = struct.unpack("<q", f.read(8))[0]
        dt = np.dtype(dtypes[storages[k][0]])
        storages[k][2] = np.frombuffer(f.read(n * dt.itemsize), dtype=dt)
    out = {}
    for name, (key, offset, size, stride) in sd.items():
        data = storages[key][2]
        out[name] = np.lib.stride_tricks.as_strided(data[offset:], shape=size, strides=[s * data.itemsize for s in stride]).copy()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--metronome", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--report", required=True)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    data = os.path.join(os.path.dirname(skimage.__file__), "data")
    model = os.path.join(args.work, "efficientnet-lite0.onnx")
    subprocess.run([args.metronome, "export", "efficientnet-lite0", "--out", model, "--force"], check=True, capture_output=True)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    report = {"images": []}
    for name in IMAGES:
        path = os.path.join(data, name)
        x_path, y_path = os.path.join(args.work, name + ".input.npy"), os.path.join(args.work, name + ".logits.npy")
        p = subprocess.run([args.metronome, "classify", path, "--save-input", x_path, "--save-output", y_path, "--force"],
                           capture_output=True, text=True, check=True)
        first = p.stdout.splitlines()[1].strip()          # "1. tabby (281)  0.4123"
        top1 = int(first.split("(")[-1].split(")")[0])
        x, y = np.load(x_path), np.load(y_path)
        ref = session.run(None, {"input": x})[0]
        reference_input = pil_preprocess(path)
        report["images"].append({
            "image": name, "top1": top1, "line": first, "stdout": p.stdout,
            "ort_relerr": float(np.abs(y - ref).max() / np.abs(ref).max()),
            "ort_top1": int(ref.argmax()),
            "preprocess_max_abs_diff": float(np.abs(x - reference_input).max()),
            "preprocess_mean_abs_diff": float(np.abs(x - reference_input).mean()),
        })
    tensors = read_checkpoint(args.checkpoint)
    report["checkpoint_tensors"] = len(tensors)
    for name in ["_conv_stem.weight", "_blocks.15._project_conv.weight", "_fc.bias", "_bn1.running_var"]:
        np.save(os.path.join(args.work, "ckpt_%s.npy" % name), tensors[name].astype(np.float32))
    with open(args.report, "w") as f:
        json.dump(report, f, indent=1)
    for r in report["images"]:
        print("%-12s top-1 %s  ORT rel. error %.2e  preprocessing max |diff| %.4f" % (r["image"], r["line"], r["ort_relerr"], r["preprocess_max_abs_diff"]))


if __name__ == "__main__":
    sys.exit(main())
