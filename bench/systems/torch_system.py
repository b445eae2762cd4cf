"""PyTorch: eager mode and torch.compile, on the CPU (and CUDA when present), written as a PyTorch user would."""
from __future__ import annotations

import numpy as np

from .base import Setup, System, Unavailable


class TorchSystem(System):
    name, label = "torch-eager", "PyTorch eager (CPU)"
    device = "cpu"
    compiled = False
    compile_mode = "default"

    def __init__(self, setup: Setup, data):
        super().__init__(setup, data)
        import torch
        from torch import nn

        self.torch = torch
        if self.device == "cuda" and not torch.cuda.is_available():
            raise Unavailable("torch.cuda.is_available() is False")
        torch.set_num_threads(setup.threads)
        torch.manual_seed(0)
        layers = []
        for i, (n_in, n_out) in enumerate(zip(setup.layers[:-1], setup.layers[1:])):
            layers.append(nn.Linear(n_in, n_out))
            nn.init.xavier_uniform_(layers[-1].weight)
            nn.init.zeros_(layers[-1].bias)
            if i < len(setup.layers) - 2:
                layers.append(nn.ReLU())
        self.model = nn.Sequential(*layers).to(self.device)
        self.net = torch.compile(self.model, mode=self.compile_mode) if self.compiled else self.model
        self.loss_fn = nn.CrossEntropyLoss()
        opt = setup.optimizer
        if opt["name"] == "sgd":
            self.opt = torch.optim.SGD(self.model.parameters(), lr=setup.lr, momentum=setup.momentum)
        elif opt["name"] == "adam":
            self.opt = torch.optim.Adam(self.model.parameters(), lr=setup.lr)
        else:
            raise ValueError(f"unknown optimizer {opt['name']!r}")
        n = setup.samples
        # The whole data set as tensors on the device, batches gathered by index: PyTorch's fastest in-memory
        # path (a DataLoader over a TensorDataset collates sample by sample and is several times slower).
        self.x = torch.from_numpy(np.ascontiguousarray(data.x_train[:n])).to(self.device)
        self.y = torch.from_numpy(data.y_train[:n].astype(np.int64)).to(self.device)
        self.generator = torch.Generator(device="cpu").manual_seed(0)

    def step(self, xb, yb):
        logits = self.net(xb)
        loss = self.loss_fn(logits, yb)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach() * len(yb), (logits.detach().argmax(dim=1) == yb).sum()

    def epoch(self) -> None:
        torch = self.torch
        n, batch = len(self.x), self.setup.batch
        order = torch.randperm(n, generator=self.generator).to(self.device)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for start in range(0, n, batch):
            index = order[start:start + batch]
            loss, hits = self.step(self.x[index], self.y[index])
            loss_sum += loss
            correct += hits
        float(loss_sum), int(correct)  # read back once per epoch, as mlpx does (and synchronize on CUDA)

    def accuracy(self, x, y) -> float:
        torch = self.torch
        with torch.no_grad():
            logits = self.model(torch.from_numpy(x).to(self.device))
            return float((logits.argmax(dim=1).cpu().numpy() == y).mean())

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def info(self) -> dict:
        torch = self.torch
        config = torch.__config__.show()
        blas = next((line.split("=", 1)[1].strip() for line in config.replace(",", "\n").splitlines()
                     if "BLAS_INFO" in line), "unknown")
        notes = ("nn.Sequential + CrossEntropyLoss + optim.SGD; batches by index from in-memory tensors; "
                 "loss and accuracy accumulated every step")
        if self.compiled:
            notes += f"; torch.compile(model, mode={self.compile_mode!r})"
        return {"version": torch.__version__, "threads": torch.get_num_threads(), "blas": blas,
                "cpu_capability": torch.backends.cpu.get_cpu_capability(), "notes": notes}


class TorchCompile(TorchSystem):
    name, label, compiled = "torch-compile", "PyTorch torch.compile (CPU)", True


class TorchCuda(TorchSystem):
    name, label, device = "torch-cuda", "PyTorch eager (CUDA)", "cuda"


class TorchCudaGraphs(TorchSystem):
    """torch.compile with CUDA graphs: the whole forward/backward replayed as one graph launch per step."""

    name, label, device, compiled = "torch-cuda-graphs", "PyTorch compile reduce-overhead (CUDA)", "cuda", True
    compile_mode = "reduce-overhead"
