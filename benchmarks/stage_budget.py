"""Where does a CPU-minute buy accuracy? Stage budgets and the reliable set.

Two steps per seed, so that stage 1 is paid once:

1. ``--step features``: a fit with ``semi_epochs=0``; its backbone is saved
   (``save_backbone``) and SPICE-Self is scored.
2. ``--step semi``: fits from that backbone (``feature_epochs=0``,
   ``freeze_backbone=False``, so stage 3 fine-tunes it as a default fit
   does) with the given ``--param`` settings. Stage 3's EMA model is scored
   after every epoch, which draws its accuracy curve against CPU time in
   one run.

Every record also holds the reliable (labelled) set's size and *purity*, the
accuracy of its labels under the Hungarian matching of SPICE-Self's clusters,
both for the set stage 3 trained on and for the set the same test selects
from the final model. Labels are used for scoring only; they never reach
``fit``. Stage-3 settings that are not parameters (:data:`SEMI`) can be
changed with ``--semi KEY=VALUE``, stage-2 ones (:data:`SELF`) with
``--self KEY=VALUE``.

``--dataset`` also takes the sets of ``benchmarks/suite.py`` (``shapes``,
``fashion-colour``, ...).

Example (Fashion-MNIST, seed 0)::

    python benchmarks/stage_budget.py --step features --seed 0
    python benchmarks/stage_budget.py --step semi --seed 0 --param semi_epochs=6
"""

import argparse
import contextlib
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.params import parse_params  # noqa: E402
from benchmarks.suite import SETS, load_set  # noqa: E402
from skspice import SPICEClustering  # noqa: E402
from skspice.datasets import (  # noqa: E402
    DATASET_NAMES,
    FASHION_MNIST_PATH,
    load_dataset,
)
from skspice.metrics import evaluate, pseudo_label_purity  # noqa: E402
from skspice.pseudo_labels import knn_indices  # noqa: E402
from skspice.stages import self_label, semi  # noqa: E402
from skspice.training import apply_in_batches  # noqa: E402


@contextlib.contextmanager
def scored_semi_epochs(y, curve, start):
    """Within the block, stage 3's epoch end also appends the EMA model's
    scores to ``curve``."""
    end_epoch = semi.FixMatchStage.end_epoch

    def scored_end_epoch(self, epoch):
        values = end_epoch(self, epoch)
        was_training = self.network.training
        labels = apply_in_batches(
            lambda x: self.ema(x).argmax(-1), self.data, 1024, self.device
        ).numpy()
        self.network.train(was_training)
        scores = evaluate(y, labels)
        curve.append({"epoch": epoch + 1, "seconds": time.time() - start, **scores})
        print(f"  stage-3 epoch {epoch + 1}: {scores}", flush=True)
        return values

    semi.FixMatchStage.end_epoch = scored_end_epoch
    try:
        yield
    finally:
        semi.FixMatchStage.end_epoch = end_epoch


@contextlib.contextmanager
def stage_settings(module, name, **changes):
    """Within the block, ``module.name`` (a settings dataclass) has
    ``changes`` applied."""
    saved = getattr(module, name)
    setattr(module, name, dataclasses.replace(saved, **changes))
    try:
        yield getattr(module, name)
    finally:
        setattr(module, name, saved)


def load_data(name, n_samples=None):
    """Images and labels of ``name``: a :func:`load_dataset` name (a seeded
    subset of ``n_samples``), else a set of ``benchmarks/suite.py`` (its first
    ``n_samples``)."""
    if name in DATASET_NAMES:
        return load_dataset(name, n_samples=n_samples)
    if name in SETS:
        X, y = load_set(name, FASHION_MNIST_PATH)
        return X[:n_samples], y[:n_samples]
    raise ValueError(
        f"unknown data set {name!r}: one of {DATASET_NAMES} or of the "
        f"suite's {tuple(SETS)}."
    )


def reliable_after(est, X):
    """The reliable set the stage-3 test would select from the final model."""
    probs = torch.from_numpy(est.predict_proba(X))
    embedding = torch.from_numpy(est.embedding_)
    neighbors = knn_indices(embedding, est._n_neighbors(len(X)))
    # The estimator's own selection, with the same settings as in fit.
    labels, _ = est._reliable_labels(probs, neighbors, seed=0)
    return labels


def main(argv=None):
    """Run one step for one seed; print and append one JSON record."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--step", choices=["features", "semi"], required=True)
    p.add_argument(
        "--dataset",
        default="fashion-mnist",
        help="a name for skspice.datasets.load_dataset, or a set of "
        "benchmarks/suite.py (e.g. shapes, fashion-colour)",
    )
    p.add_argument("--n-samples", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--param", action="append", default=[])
    p.add_argument("--semi", action="append", default=[])
    p.add_argument("--self", action="append", default=[])
    p.add_argument("--work-dir", default="benchmarks/results/stage_budget")
    p.add_argument("--results", default="docs/benchmarks-stages.jsonl")
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    params = parse_params(args.param, {"random_state": "--seed"})
    X, y = load_data(args.dataset, args.n_samples)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    backbone = work / f"{args.dataset}-{len(X)}-seed{args.seed}.pt"
    start = time.time()
    curve = []
    with (
        stage_settings(semi, "SEMI", **parse_params(args.semi)) as settings,
        stage_settings(self_label, "SELF", **parse_params(args.self)) as s_set,
    ):
        if args.step == "features":
            params.setdefault("semi_epochs", 0)
            est = SPICEClustering(random_state=args.seed, **params).fit(X)
            est.save_backbone(backbone)
        else:
            with scored_semi_epochs(y, curve, start):
                est = SPICEClustering(
                    random_state=args.seed,
                    backbone_weights=str(backbone),
                    feature_epochs=0,
                    # stage 3 fine-tunes the backbone, as after stage 1
                    **{"freeze_backbone": False, **params},
                ).fit(X)
        after = reliable_after(est, X) if curve else None
    record = {
        "dataset": args.dataset,
        "n": len(X),
        "seed": args.seed,
        "step": args.step,
        "tag": args.tag,
        "params": params,
        "semi_settings": dataclasses.asdict(settings),
        "self_settings": dataclasses.asdict(s_set),
        "epochs_run": {r["stage"]: r["epoch"] for r in est.history_},
        "self": evaluate(y, est.self_labels_),
        "final": evaluate(y, est.labels_),
        "stage_seconds": est.stage_seconds_,
        "seconds": time.time() - start,
        "semi_curve": curve,
    }
    if after is not None:
        record["reliable"] = {
            "counts": {k: v.tolist() for k, v in est.reliable_counts_.items()},
            "size": int(est.reliable_mask_.sum()),
            "purity": pseudo_label_purity(y, est.self_labels_, est.reliable_labels_),
            "size_after_semi": int((after >= 0).sum()),
            "purity_after_semi": pseudo_label_purity(y, est.labels_, after),
        }
    print(json.dumps(record), flush=True)
    with open(args.results, "a") as f:
        f.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    main()
