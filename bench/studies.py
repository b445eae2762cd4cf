"""The two studies beside the main table, run on the same mlpx and PyTorch worker processes:

* scaling: samples per second against batch size (16 to 4096) and against width (hidden sizes x0.5 to x4);
* time to 97% test accuracy with the best configuration of the seeds' experiments (SGD momentum 0.9, lr 0.01, relu).
"""
from __future__ import annotations

import statistics
import sys

from .common import LAYERS, scaled_layers
from .interference import ForeignLoad

STUDY_SYSTEMS = ("mlpx-numpy", "torch-eager")
BATCHES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
WIDTHS = (0.5, 1.0, 2.0, 4.0)
BEST = {"name": "sgd", "lr": 0.01, "momentum": 0.9}


def _say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def scaling_samples(batch: int, width: float, base: int = 16384) -> int:
    """Samples timed per measurement: ~constant work across widths, at least 4 batches, whole batches only."""
    n = max(4 * batch, int(base / width))
    return -(-n // batch) * batch


def scaling(clients: dict, rounds: int = 3) -> dict:
    """Samples/s for every (batch, width) configuration, median of ``rounds``, systems alternating."""
    systems = [s for s in STUDY_SYSTEMS if s in clients]
    configs = [(b, 1.0) for b in BATCHES] + [(64, w) for w in WIDTHS if w != 1.0]
    measured = {(s, b, w): [] for s in systems for b, w in configs}
    load, foreign = ForeignLoad([clients[s].proc.pid for s in systems]), []
    for r in range(rounds):
        load.start()
        for batch, width in configs:
            n = scaling_samples(batch, width)
            for name in (systems if r % 2 == 0 else systems[::-1]):
                client = clients[name]
                client.request("build", system=name, layers=list(scaled_layers(width)), batch=batch, samples=n)
                client.request("epoch")                               # warm-up for this shape
                reply = client.request("epoch")
                measured[(name, batch, width)].append(reply["samples"] / reply["seconds"])
        foreign.append(load.cores())
        _say(f"scaling round {r + 1}/{rounds} done; other processes kept {foreign[-1] or 0:.2f} cores busy")
    points = [{"system": s, "batch": b, "width": w, "layers": list(scaled_layers(w)),
               "samples_per_s": statistics.median(v), "rounds": v} for (s, b, w), v in measured.items()]
    return {"systems": systems, "batches": list(BATCHES), "widths": list(WIDTHS), "points": points,
            "foreign_cores_per_round": foreign,
            "note": f"each point: median over {rounds} rounds of one timed pass over scaling_samples(batch, width) "
                    f"samples after one untimed pass at the same shape"}


def time_to_accuracy(clients: dict, target: float = 0.97, max_epochs: int = 8) -> dict:
    """Training seconds (evaluation excluded) until test accuracy first reaches ``target``, checked per epoch."""
    systems = [s for s in STUDY_SYSTEMS if s in clients]
    for name in systems:
        clients[name].request("build", system=name, layers=list(LAYERS), batch=64, optimizer=BEST)
    curves = {name: [] for name in systems}
    done = {name: None for name in systems}
    for epoch in range(1, max_epochs + 1):
        for name in systems:
            if done[name] is not None:
                continue
            seconds = clients[name].request("epoch")["seconds"]
            accuracy = clients[name].request("accuracy")["accuracy"]
            total = seconds + (curves[name][-1]["train_seconds"] if curves[name] else 0.0)
            curves[name].append({"epoch": epoch, "train_seconds": total, "test_accuracy": accuracy})
            if accuracy >= target:
                done[name] = {"epochs": epoch, "seconds": total, "test_accuracy": accuracy}
        _say(f"time-to-accuracy epoch {epoch}: " + ", ".join(
            f"{n} {curves[n][-1]['test_accuracy']:.4f}" for n in systems if curves[n]))
        if all(v is not None for v in done.values()):
            break
    return {"target": target, "optimizer": BEST, "batch": 64, "reached": done, "curves": curves,
            "note": "one run per system (seed 0), test accuracy checked after each epoch, epochs alternate "
                    "between systems; evaluation time is not counted"}
