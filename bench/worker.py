"""One benchmark process: loads the data once, builds a system on request and times its epochs.

Protocol: one JSON object per line on stdin, one JSON reply per line on the original stdout (anything libraries
print goes to stderr instead). Commands::

    {"cmd": "build", "system": "torch-eager", "layers": [...], "batch": 64, "optimizer": {...}, "samples": 60000}
    {"cmd": "epoch"}      -> {"seconds": raw, "samples": n, "epoch_seconds": raw * full / n}
    {"cmd": "accuracy"}   -> {"accuracy": test accuracy}
    {"cmd": "describe"}   -> machine description, with the BLAS libraries this process has loaded
    {"cmd": "quit"}

The runner keeps one worker per system alive and sends it one epoch at a time, so rounds interleave across
systems while only one of them computes at any moment.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

from .common import load_data, machine_description, pin_threads
from .systems import Setup, Unavailable, system_class


class Worker:
    def __init__(self, threads: int, samples: int | None, synthetic: bool, dataset: str = "mnist"):
        self.threads = threads
        self.limiter = pin_threads(threads)
        self.data = load_data(samples, synthetic, dataset)
        self.system = None

    def handle(self, request: dict) -> dict:
        cmd = request.get("cmd")
        if cmd == "build":
            return self.build(request)
        if cmd in ("epoch", "accuracy") and self.system is None:
            raise RuntimeError(f"{cmd}: no system built (send a successful build first)")
        if cmd == "epoch":
            start = time.perf_counter()
            self.system.epoch()
            seconds = time.perf_counter() - start
            n = self.system.setup.samples
            return {"seconds": seconds, "samples": n, "epoch_seconds": seconds * len(self.data.x_train) / n}
        if cmd == "accuracy":
            return {"accuracy": self.system.accuracy(self.data.x_test, self.data.y_test)}
        if cmd == "describe":
            return {"machine": machine_description(), "data": self.data.source,
                    "train_samples": len(self.data.x_train)}
        raise ValueError(f"unknown command {cmd!r}; expected build, epoch, accuracy, describe or quit")

    def build(self, request: dict) -> dict:
        self.system = None
        n_train = len(self.data.x_train)
        samples = min(int(request.get("samples") or n_train), n_train)
        setup = Setup(layers=tuple(request["layers"]), batch=int(request["batch"]),
                      optimizer=dict(request.get("optimizer") or {"name": "sgd", "lr": 0.01}),
                      threads=self.threads, samples=max(samples, int(request["batch"])))
        start = time.perf_counter()
        try:
            system = system_class(request["system"])(setup, self.data)
        except Unavailable as err:
            return {"unavailable": str(err)}
        self.limiter = pin_threads(self.threads)   # again: the system may have loaded more thread pools
        self.system = system
        return {"ok": True, "label": system.label, "info": system.info(), "n_parameters": system.n_parameters(),
                "samples": setup.samples, "build_seconds": time.perf_counter() - start}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--samples", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--synthetic", action="store_true", help="random data of MNIST's shape")
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    args = parser.parse_args(argv)
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)                      # stray prints (C or Python) go to stderr, not into the protocol
    sys.stdout = sys.stderr
    worker = Worker(args.threads, args.samples, args.synthetic, args.dataset)
    protocol.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("cmd") == "quit":
            break
        try:
            reply = worker.handle(request)
        except Exception as err:  # report and keep serving: one failing system must not end the run
            reply = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
        protocol.write(json.dumps(reply, default=str) + "\n")


if __name__ == "__main__":
    main()
