"""Fit digits in one process or, under torchrun, in several; write the result.

Used by tests/test_distributed.py::

    python -m torch.distributed.run --standalone --nproc_per_node=2 \\
        tests/distributed_fit.py OUT_DIR '{"feature_epochs": 20}'

Each rank writes ``OUT_DIR/rank<r>.json``: its ``world_size_``, labels and
accuracy, and checks the distributed helpers on uneven shares.
"""

import json
import os
import sys
import warnings

import numpy as np
import torch

from skspice import SPICEClustering
from skspice.datasets import load_digits_images
from skspice.distributed import context_from_env
from skspice.metrics import cluster_accuracy


def check_helpers(ctx):
    """Uneven gathers and broadcasts agree on every rank."""
    mine = torch.arange(ctx.rank + 2, dtype=torch.float32) + 10 * ctx.rank
    gathered = ctx.gather(mine)
    expected = torch.cat(
        [
            torch.arange(r + 2, dtype=torch.float32) + 10 * r
            for r in range(ctx.world_size)
        ]
    )
    assert torch.equal(gathered, expected), gathered
    _, offset = ctx.gather(mine, return_offset=True)
    assert offset == sum(r + 2 for r in range(ctx.rank)), offset
    assert ctx.broadcast_object({"rank": ctx.rank}) == {"rank": 0}
    shards = [
        torch.arange(7).tensor_split(ctx.world_size)[r] for r in range(ctx.world_size)
    ]
    assert torch.equal(ctx.shard(torch.arange(7)), shards[ctx.rank])


def main(out_dir, params):
    # Wrapping in DistributedDataParallel must not use its deprecated keyword.
    warnings.filterwarnings("error", message=".*broadcast_buffers.*deprecated")
    X, y = load_digits_images()
    model = SPICEClustering(n_clusters=10, device="cpu", **params).fit(X)
    ctx = context_from_env("cpu")
    if ctx.active:
        check_helpers(ctx)
    record = {
        "rank": ctx.rank,
        "world_size_": model.world_size_,
        "labels": model.labels_.tolist(),
        "acc": cluster_accuracy(y, model.labels_),
        "history_epochs": len(model.history_),
        "feature_losses": [
            r["loss"] for r in model.history_ if r["stage"] == "feature"
        ],
        "weights_sum": float(
            sum(p.double().sum() for p in model.network_.parameters())
        ),
        "embedding_sum": float(np.asarray(model.embedding_, dtype=np.float64).sum()),
    }
    with open(os.path.join(out_dir, f"rank{ctx.rank}.json"), "w") as f:
        json.dump(record, f)


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
