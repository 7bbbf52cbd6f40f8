"""PyTorch on the backend benchmark's three models, for a side-by-side reference.

Prints a JSON line {"torch", "blas"} (the BLAS library loaded: Debian's python3-torch
runs on whichever libblas.so.3 is installed, and the reference one is ~10x slower than
OpenBLAS), then one per measurement: {"model", "threads", "round", "stepsPerSecond"}.
Run by `npm run bench -- backend` when `python3 -c "import torch"` works; never needed
to build or test tapfit. Usage: python3 torch_peer.py <rounds> <threads,...> <scale>
(scale multiplies the steps timed per measurement; 0.5 for --quick).
"""
import json
import sys
import time

import torch
from torch import nn

torch.manual_seed(1)


def mlp(hidden):
    layers, width = [], 784
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 10))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


# name, model, input shape (batch first; NCHW for the CNN), steps timed at scale 1
MODELS = [
    ("mlp", lambda: mlp([512, 512]), (128, 784), 20),
    ("cnn", cnn, (64, 1, 28, 28), 10),
    ("mlp-big", lambda: mlp([2048, 2048]), (256, 784), 4),
]


def steps_per_second(model, shape, steps):
    x = torch.randn(*shape)
    y = torch.arange(shape[0]) % 10
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()  # a read-back, as tapfit's step does

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t0)


def blas_library():
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "blas" in line.lower()}
    return sorted(paths)


def main():
    print(json.dumps({"torch": torch.__version__, "blas": blas_library()}), flush=True)
    rounds = int(sys.argv[1])
    threads = [int(t) for t in sys.argv[2].split(",")]
    scale = float(sys.argv[3])
    built = {name: (make(), shape, steps) for name, make, shape, steps in MODELS}
    for r in range(rounds):
        # Alternate the thread order by round, so drift hits both alike.
        for t in threads if r % 2 == 0 else list(reversed(threads)):
            torch.set_num_threads(t)
            for name, (model, shape, steps) in built.items():
                rate = steps_per_second(model, shape, max(2, round(steps * scale)))
                print(json.dumps({"model": name, "threads": t, "round": r, "stepsPerSecond": rate}), flush=True)


if __name__ == "__main__":
    main()
