#!/usr/bin/env python3
"""Training-step time: Metronome against PyTorch (CPU) on the same models, batch and threads.

A training step is forward, softmax cross-entropy, backward and an Adam update at batch 64 on
Fashion-MNIST-shaped images (1x28x28, 10 classes). Metronome: `metronome train MODEL --epochs 1
--limit N --holdout 0` (its loader thread included), time per step from the reported images/s.
PyTorch: the same architecture (torch.nn, float32, torch.set_num_threads), the same number of
steps on in-memory batches, after 5 warm-up steps. Rounds alternate between the two so both see
the same machine state; medians over rounds are compared. Writes bench/RESULTS-train.md.
torch is needed here only (pip install torch --index-url https://download.pytorch.org/whl/cpu).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class LeNet5(nn.Module):
    """TrainableCNNs.lenet5: conv5x5(6, pad 2) relu maxpool2, conv5x5(16) relu maxpool2, fc 120/84/10."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
        self.f1, self.f2, self.f3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        x = torch.flatten(x, 1)
        return self.f3(F.relu(self.f2(F.relu(self.f1(x)))))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a, self.ba = nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout)
        self.b, self.bb = nn.Conv2d(cout, cout, 3, 1, 1), nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bb(self.b(F.relu(self.ba(self.a(x)))))
        return F.relu(y + (self.proj(x) if self.proj is not None else x))


class ResNet8(nn.Module):
    """TrainableCNNs.resnet(): 3x3 stem of 16, stages 16/32/64 with one basic block each, GAP, fc."""

    def __init__(self):
        super().__init__()
        self.stem, self.bn = nn.Conv2d(1, 16, 3, 1, 1), nn.BatchNorm2d(16)
        self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


MODELS = {"lenet5": LeNet5, "resnet8": ResNet8}


def torch_step_ms(model, threads, steps, batch):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = MODELS[model]()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    for _ in range(5):
        opt.zero_grad(); F.cross_entropy(net(x), y).backward(); opt.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(); F.cross_entropy(net(x), y).backward(); opt.step()
    return (time.perf_counter() - t0) * 1000 / steps


def metronome_step_ms(binary, model, threads, steps, batch, work):
    out, hist = os.path.join(work, "m.onnx"), os.path.join(work, "h.json")
    subprocess.run([binary, "train", model, "--epochs", "1", "--limit", str(steps * batch), "--holdout", "0",
                    "--batch", str(batch), "--threads", str(threads), "--out", out, "--history", hist, "--force"],
                   check=True, capture_output=True)
    with open(hist) as f:
        ips = json.load(f)[0]["imagesPerSecond"]
    return batch * 1000 / ips


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "metronome"))
    p.add_argument("--models", default="lenet5,resnet8")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=os.path.join(HERE, "RESULTS-train.md"))
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for model in a.models.split(","):
            for threads in [int(t) for t in a.threads.split(",")]:
                ours, theirs = [], []
                for r in range(a.rounds):
                    ours.append(metronome_step_ms(a.binary, model, threads, a.steps, a.batch, work))
                    theirs.append(torch_step_ms(model, threads, a.steps, a.batch))
                m, t = statistics.median(ours), statistics.median(theirs)
                rows.append((model, threads, m, t))
                print(f"{model} {threads}t: metronome {m:.2f} ms/step, torch {t:.2f} ms/step, ratio {m / t:.2f}", flush=True)
    lines = [
        "# Training step: Metronome vs PyTorch (CPU)",
        "",
        f"Measured {datetime.date.today()} on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, by "
        f"`make bench-train` (`bench/train_bench.py`): batch {a.batch}, {a.steps} steps per measurement, median of "
        f"{a.rounds} alternating rounds; PyTorch {torch.__version__}. A step is forward, softmax cross-entropy, backward and "
        "an Adam update. Ratio < 1 means Metronome is faster.",
        "",
        "| model | threads | Metronome ms/step | PyTorch ms/step | ratio |",
        "|---|---|---|---|---|",
    ] + [f"| {m} | {t} | {a_:.2f} | {b:.2f} | {a_ / b:.2f} |" for m, t, a_, b in rows]
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
