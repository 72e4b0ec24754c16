"""Choose the ``--arch cnn`` recipe for the shipped sample on a validation split.

The 4,000 training digits of the sample are split 3,000 / 1,000 (seeded); each recipe trains
on the 3,000 with seeds 0 and 1 and is scored on the other 1,000. The 1,000 held-out *test*
digits are never read here: the recipe that wins is then measured on them with
``xpnet train --arch cnn ...`` (README, "Convolutional networks"). Run:
``python scripts/select_cnn_sample_recipe.py`` (about 10 minutes on 2 cores).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnet.architectures import build
from xpnet.datasets import load_dataset, preprocess
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.optim import Adam, CosineDecay, InverseTimeDecay

RECIPES: dict[str, dict[str, Any]] = {
    "A inverse-time 0.2, 8 epochs, batch 64, dropout 0.2": dict(
        epochs=8, batch=64, dropout=0.2, schedule="inverse-time"),
    "B cosine, 15 epochs, batch 64, dropout 0.3": dict(
        epochs=15, batch=64, dropout=0.3, schedule="cosine"),
    "C cosine, 15 epochs, batch 32, dropout 0.5": dict(
        epochs=15, batch=32, dropout=0.5, schedule="cosine"),
}


def main() -> None:
    X, y = load_dataset("mnist-sample", "train")
    X = preprocess(X)
    order = np.random.default_rng(123).permutation(len(y))
    train, valid = order[:3000], order[3000:]
    for name, r in RECIPES.items():
        scores = []
        for seed in (0, 1):
            model = build("cnn", dropout=r["dropout"], seed=seed)
            schedule = (InverseTimeDecay(0.2) if r["schedule"] == "inverse-time"
                        else CosineDecay(r["epochs"]))
            model.compile(SoftmaxCrossEntropy(), Adam(0.002, beta1=0.9, schedule=schedule))
            model.fit(X[train], y[train], epochs=r["epochs"], batch_size=r["batch"], seed=seed,
                      verbose=False)
            scores.append(float(np.mean(model.predict(X[valid]) == y[valid])))
        print(f"{name}: validation accuracy {scores}, mean {np.mean(scores):.4f}", flush=True)


if __name__ == "__main__":
    main()
