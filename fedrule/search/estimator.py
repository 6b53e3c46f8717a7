"""Performance estimator: an MLP from configuration features to predicted quality.

Inputs are standardised with the training set's mean and spread, the target is standardised too;
training is Adam on the mean squared error, deterministic given a seed (its own generator: the
global torch seed is left alone). Because every feature is linear in the mask, the first layer is
folded into one ``(G*B) x hidden`` matrix for prediction, so scoring many configurations costs
one product with the mask plus the hidden layers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn
from torch.nn import functional as F

from fedrule.model.elastic import ElasticLayout
from fedrule.search.features import ConfigFeatures

PREDICT_BATCH = 8192


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (NaN when either side is constant or too short)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


class PerformanceEstimator:
    """``predict(configs C x G x B) -> C`` predicted quality; also callable as ``estimator(c)``."""

    def __init__(
        self,
        features: ConfigFeatures,
        hidden: Sequence[int] = (256, 256),
        *,
        epochs: int = 200,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 64,
    ) -> None:
        self.features = features
        self.hidden = tuple(int(h) for h in hidden)
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.net = _mlp(features.dim, self.hidden)
        self.x_mean = torch.zeros(features.dim)
        self.x_scale = torch.ones(features.dim)
        self.y_mean = 0.0
        self.y_scale = 1.0
        self._folded: tuple[torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------------ training
    def fit(self, inputs: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, list[float]]:
        """Train from scratch on configurations (C x G x B) or feature rows (C x dim).

        Returns the history: mean training loss (standardised units) per epoch.
        """
        x = torch.from_numpy(self._as_features(inputs))
        y = torch.as_tensor(np.asarray(labels, dtype=np.float64)).to(torch.float32)
        if x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise ValueError(f"{x.shape[0]} inputs for {y.shape[0]} labels")
        generator = torch.Generator().manual_seed(seed)
        self.net = _mlp(self.features.dim, self.hidden, generator)
        self.x_mean = x.mean(0)
        spread = x.std(0, correction=0)
        self.x_scale = torch.where(spread > 1e-6, spread, torch.ones_like(spread))
        self.y_mean = float(y.mean())
        self.y_scale = float(y.std(correction=0)) or 1.0
        x = (x - self.x_mean) / self.x_scale
        y = (y - self.y_mean) / self.y_scale
        optimizer = torch.optim.Adam(
            self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        history: list[float] = []
        self.net.train()
        for _ in range(self.epochs):
            order = torch.randperm(x.shape[0], generator=generator)
            total = 0.0
            for start in range(0, x.shape[0], self.batch_size):
                batch = order[start : start + self.batch_size]
                loss = F.mse_loss(self.net(x[batch]).squeeze(1), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * batch.numel()
            history.append(total / x.shape[0])
        self.net.eval()
        self._folded = None
        return {"loss": history}

    # ------------------------------------------------------------------ prediction
    def predict(self, configs: np.ndarray) -> np.ndarray:
        """Predicted quality of each configuration (C x G x B, or one G x B) in label units."""
        configs = np.asarray(configs, dtype=bool)
        if configs.ndim == 2:
            configs = configs[None]
        weight, bias = self._fold()
        out = np.empty(configs.shape[0], dtype=np.float64)
        layers = list(self.net)[1:]
        with torch.no_grad():
            for start in range(0, configs.shape[0], PREDICT_BATCH):
                chunk = configs[start : start + PREDICT_BATCH]
                mask = torch.from_numpy(chunk.reshape(chunk.shape[0], -1).astype(np.float32))
                h = torch.addmm(bias, mask, weight)
                for layer in layers:
                    h = layer(h)
                out[start : start + chunk.shape[0]] = h.squeeze(1).double().numpy()
        return out * self.y_scale + self.y_mean

    __call__ = predict

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """Predicted quality from feature rows (C x dim)."""
        x = (torch.from_numpy(np.asarray(features, dtype=np.float32)) - self.x_mean) / self.x_scale
        with torch.no_grad():
            y = self.net(x).squeeze(1).double().numpy()
        return y * self.y_scale + self.y_mean

    def _fold(self) -> tuple[torch.Tensor, torch.Tensor]:
        """First layer composed with standardisation and featurisation: mask -> pre-activation."""
        if self._folded is None:
            first = self.net[0]
            if not isinstance(first, nn.Linear):
                raise TypeError(
                    f"the estimator's first layer is {type(first).__name__}, not Linear"
                )
            with torch.no_grad():
                scaled = first.weight / self.x_scale[None, :]  # hidden x dim
                matrix = torch.from_numpy(self.features.matrix().astype(np.float32))
                weight = (matrix @ scaled.T).contiguous()  # G*B x hidden
                bias = first.bias - scaled @ self.x_mean
            self._folded = (weight, bias)
        return self._folded

    def _as_features(self, inputs: np.ndarray) -> np.ndarray:
        inputs = np.asarray(inputs)
        if inputs.ndim == 3:
            return self.features(inputs)
        if inputs.ndim == 2 and inputs.shape[1] == self.features.dim:
            return inputs.astype(np.float32)
        raise ValueError(
            f"expected configurations (C x G x B) or features (C x {self.features.dim}), "
            f"got shape {inputs.shape}"
        )

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and settings (``torch.save`` it; ``from_state`` rebuilds the estimator)."""
        return {
            "features": self.features.state(),
            "hidden": list(self.hidden),
            "settings": {
                "epochs": self.epochs,
                "lr": self.lr,
                "weight_decay": self.weight_decay,
                "batch_size": self.batch_size,
            },
            "weights": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
            "x_mean": self.x_mean.clone(),
            "x_scale": self.x_scale.clone(),
            "y_mean": self.y_mean,
            "y_scale": self.y_scale,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PerformanceEstimator:
        estimator = cls(
            ConfigFeatures.from_state(state["features"]), state["hidden"], **state["settings"]
        )
        estimator.net.load_state_dict(state["weights"])
        estimator.net.eval()
        estimator.x_mean = state["x_mean"].clone()
        estimator.x_scale = state["x_scale"].clone()
        estimator.y_mean = float(state["y_mean"])
        estimator.y_scale = float(state["y_scale"])
        return estimator


def _mlp(
    dim: int, hidden: tuple[int, ...], generator: torch.Generator | None = None
) -> nn.Sequential:
    """Linear -> ReLU blocks and a linear head, initialised from ``generator`` (PyTorch's
    default scheme: uniform in +-1/sqrt(fan_in))."""
    layers: list[nn.Module] = []
    sizes = [dim, *hidden, 1]
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        linear = nn.Linear(fan_in, fan_out)
        bound = 1.0 / fan_in**0.5
        with torch.no_grad():
            linear.weight.uniform_(-bound, bound, generator=generator)
            linear.bias.uniform_(-bound, bound, generator=generator)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def fit_estimator(
    layout: ElasticLayout,
    configs: np.ndarray,
    labels: np.ndarray,
    popularity_share: np.ndarray,
    *,
    holdout_fraction: float = 0.2,
    seed: int = 0,
    hidden: Sequence[int] = (256, 256),
    epochs: int = 200,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    refit: bool = False,
) -> tuple[PerformanceEstimator, dict[str, Any]]:
    """Fit on a random share of the labelled configurations, report Spearman on the rest (and
    the held-out predictions and labels themselves: ``holdout_predicted``, ``holdout_true``).

    With ``refit`` the returned estimator is trained again on every configuration (the report
    still describes the held-out fit).
    """
    configs = np.asarray(configs, dtype=bool)
    labels = np.asarray(labels, dtype=np.float64)
    n = configs.shape[0]
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_holdout = round(n * holdout_fraction) if n > 2 else 0
    holdout, train = order[:n_holdout], order[n_holdout:]
    features = ConfigFeatures.from_layout(layout, popularity_share)
    estimator = PerformanceEstimator(
        features, hidden, epochs=epochs, lr=lr, weight_decay=weight_decay
    )
    history = estimator.fit(configs[train], labels[train], seed)
    predicted = estimator.predict(configs[holdout]) if holdout.size else np.zeros(0)
    report: dict[str, Any] = {
        "n_configs": float(n),
        "n_train": float(train.size),
        "n_holdout": float(holdout.size),
        "train_spearman": spearman(estimator.predict(configs[train]), labels[train]),
        "holdout_spearman": (
            spearman(predicted, labels[holdout]) if holdout.size else float("nan")
        ),
        "final_loss": history["loss"][-1] if history["loss"] else float("nan"),
        # the held-out points themselves, for the predicted-vs-true plot of ``fedrule report``
        "holdout_predicted": [float(v) for v in predicted],
        "holdout_true": [float(v) for v in labels[holdout]],
    }
    if refit and holdout.size:
        estimator.fit(configs, labels, seed)
    return estimator, report
