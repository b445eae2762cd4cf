"""JAX: the whole training step (forward, backward, SGD update) as one ``jax.jit`` function, on its default device."""
from __future__ import annotations

import numpy as np

from .base import Setup, System, Unavailable


class JaxSystem(System):
    name, label = "jax-jit", "JAX jit (CPU)"

    def __init__(self, setup: Setup, data):
        super().__init__(setup, data)
        try:
            import jax
            import jax.numpy as jnp
        except ImportError as err:
            raise Unavailable(f"JAX is not installed ({err}); pip install jax jaxlib") from err
        if setup.optimizer["name"] != "sgd" or setup.momentum:
            raise ValueError("the JAX row is timed with plain SGD only")
        self.jax, self.jnp = jax, jnp
        rng = np.random.default_rng(0)
        params = []
        for n_in, n_out in zip(setup.layers[:-1], setup.layers[1:]):
            limit = np.sqrt(6.0 / (n_in + n_out))
            params.append((jnp.asarray(rng.uniform(-limit, limit, (n_in, n_out)).astype(np.float32)),
                           jnp.zeros(n_out, jnp.float32)))
        self.params = params
        n = setup.samples
        self.x = jnp.asarray(data.x_train[:n])
        self.y = jnp.asarray(data.y_train[:n].astype(np.int32))
        self.rng = np.random.default_rng(0)
        lr = setup.lr

        def forward(params, x):
            for w, b in params[:-1]:
                x = jax.nn.relu(x @ w + b)
            w, b = params[-1]
            return x @ w + b

        def loss_fn(params, x, y):
            logits = forward(params, x)
            logp = jax.nn.log_softmax(logits)
            loss = -jnp.take_along_axis(logp, y[:, None], axis=1).sum()
            return loss / len(y), (loss, (logits.argmax(axis=1) == y).sum())

        def step(params, x, y):
            grads, stats = jax.grad(loss_fn, has_aux=True)(params, x, y)
            return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), stats

        self.forward = jax.jit(forward)
        self.step = jax.jit(step, donate_argnums=0)

    def epoch(self) -> None:
        jnp = self.jnp
        n, batch = len(self.x), self.setup.batch
        order = jnp.asarray(self.rng.permutation(n).astype(np.int32))
        xs, ys = self.x[order], self.y[order]
        loss_sum, correct = 0.0, 0
        for start in range(0, n, batch):
            self.params, (loss, hits) = self.step(self.params, xs[start:start + batch], ys[start:start + batch])
            loss_sum, correct = loss_sum + loss, correct + hits
        float(loss_sum), int(correct)  # one read-back per epoch; blocks until the work is done

    def accuracy(self, x, y) -> float:
        return float((np.asarray(self.forward(self.params, self.jnp.asarray(x))).argmax(axis=1) == y).mean())

    def n_parameters(self) -> int:
        return sum(w.size + b.size for w, b in self.params)

    def info(self) -> dict:
        import jax

        return {"version": jax.__version__, "device": str(jax.devices()[0]),
                "notes": "jax.jit of the whole step (value and grad, SGD update), params donated; XLA's CPU "
                         "thread pool is not set by threadpoolctl (it sizes itself to the machine's cores)"}
