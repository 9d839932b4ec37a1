"""Samples per second of each stage: skspice's loop against a bare torch loop.

For each stage the same model, batch size and augmentations are timed twice
over the same number of steps:

* **skspice**: the stage as ``fit`` runs it (:mod:`skspice.stages` through
  :func:`skspice.training.run_stage`: uint8 samples converted per batch,
  batches streamed, history, progress, the non-finite-loss check);
* **bare**: a plain loop written directly with torch: index the float32
  data, make the views, forward, loss, backward, optimiser step (and the
  stage's own extra: MoCo's momentum update, FixMatch's EMA).

The ratio skspice / bare is the cost of the library's loop (target: at most
1.2). Each stage is timed after one warm-up epoch of its own.

Example::

    python benchmarks/throughput.py --n-samples 8192 --repeats 2
"""

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import machine_info  # noqa: E402
from skspice.augment import make_augmenter  # noqa: E402
from skspice.backbones import Standardize, build_backbone  # noqa: E402
from skspice.datasets import load_dataset  # noqa: E402
from skspice.inputs import InputProfile  # noqa: E402
from skspice.pseudo_labels import prototype_pseudo_labels  # noqa: E402
from skspice.stages.moco import MoCo, MoCoStage  # noqa: E402
from skspice.stages.self_label import ClusterHeads, SelfLabelStage  # noqa: E402
from skspice.stages.semi import FixMatchStage  # noqa: E402
from skspice.training import iterate_minibatches, run_stage  # noqa: E402


class _Model(torch.nn.Module):
    def __init__(self, backbone, mean, std):
        super().__init__()
        self.standardize = Standardize(mean.view(-1, 1, 1), std.view(-1, 1, 1))
        self.backbone = backbone
        self.out_features = backbone.out_features

    def forward(self, x):
        return self.backbone(self.standardize(x))


def _setup(raw, seed):
    """Backbone (strided CNN, channels-last), augmenter and generators."""
    torch.manual_seed(seed)
    profile = InputProfile("image", tuple(raw.shape[1:]))
    x = raw.float() / 255
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    model = _Model(build_backbone("auto", profile), mean, std)
    model = model.to(memory_format=torch.channels_last)
    aug = make_augmenter(profile, mean, std, flip=False)
    return model, aug


def _gens(seed):
    return torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)


def _time(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ------------------------------------------------------------------- stage 1
def stage1(raw, batch, seed):
    model, aug = _setup(raw, seed)
    queue = min(16384, len(raw) - len(raw) % batch)

    def ours():
        moco = MoCo(copy.deepcopy(model), 128, queue, 0.99, 0.2)
        gen, dgen = _gens(seed)
        stage = MoCoStage(moco, raw, aug, batch, gen, dgen, torch.device("cpu"))
        opt = torch.optim.SGD(stage.parameters(), lr=0.06, momentum=0.9)
        run_stage(stage, opt, 1)

    def bare():
        moco = MoCo(copy.deepcopy(model), 128, queue, 0.99, 0.2)
        gen, dgen = _gens(seed)
        params = [p for p in moco.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=0.06, momentum=0.9)
        data = raw.float() / 255
        moco.train()
        for idx in iterate_minibatches(len(data), batch, gen):
            x = data[idx]
            loss = moco(aug.contrastive(x, dgen), aug.contrastive(x, dgen), gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            moco.momentum_update()

    return ours, bare, len(raw)


# ------------------------------------------------------------------- stage 2
def stage2(raw, batch, seed, k=10):
    model, aug = _setup(raw, seed)
    model.eval()
    data = raw.float() / 255
    with torch.no_grad():
        feats = torch.cat([model(c) for c in data.split(256)])
    emb = F.normalize(feats, dim=1)
    pseudo = min(len(raw), 500 * k)

    def ours():
        gen, dgen = _gens(seed)
        heads = ClusterHeads(feats.shape[1], k, 10)
        stage = SelfLabelStage(
            model, heads, raw, feats, emb, aug, pseudo_batch=pseudo, batch_size=128,
            n_repeat=8, center_ratio=0.5, gen=gen, device_gen=dgen,
            device=torch.device("cpu"), encode_batch_size=256,
        )  # fmt: skip
        run_stage(stage, torch.optim.Adam(heads.parameters(), lr=1e-3), 1)

    def bare():
        gen, dgen = _gens(seed)
        heads = ClusterHeads(feats.shape[1], k, 10)
        opt = torch.optim.Adam(heads.parameters(), lr=1e-3)
        for chunk in iterate_minibatches(len(data), pseudo, gen):
            with torch.no_grad():
                parts = [data[p] for p in chunk.split(256)]
                weak = torch.cat([model(aug.weak(x, dgen)) for x in parts])
                strong = torch.cat([model(aug.strong(x, dgen)) for x in parts])
                probs = heads(weak).softmax(-1)
            picked = [prototype_pseudo_labels(p, emb[chunk], 0.5)[:2] for p in probs]
            for _ in range(8):
                for pos in iterate_minibatches(picked[0][0].shape[0], 128, gen):
                    f = torch.stack([strong[i[pos]] for i, _ in picked])
                    y = torch.stack([lab[pos] for _, lab in picked])
                    loss = F.cross_entropy(heads(f).flatten(0, 1), y.flatten())
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            # skspice scores every head on the whole data set after an epoch.
            with torch.no_grad():
                logits = torch.cat(
                    [heads(f).transpose(0, 1) for f in feats.split(1024)]
                ).transpose(0, 1)
                for lg in logits:
                    idx, lab, _ = prototype_pseudo_labels(lg.softmax(-1), emb, 0.5)
                    F.cross_entropy(lg[idx], lab)

    return ours, bare, len(raw)


# ------------------------------------------------------------------- stage 3
def stage3(raw, batch, seed, k=10):
    model, aug = _setup(raw, seed)
    head = torch.nn.Sequential(
        torch.nn.Linear(model.out_features, model.out_features),
        torch.nn.ReLU(),
        torch.nn.Linear(model.out_features, k),
    )
    network = torch.nn.Sequential(model, head)
    labels = np.full(len(raw), -1)
    n_lab = min(len(raw), 100 * k)  # a labelled set of 100 per cluster
    labels[:n_lab] = np.arange(n_lab) % k
    ub = 2 * batch

    def ours():
        gen, dgen = _gens(seed)
        net = copy.deepcopy(network)
        stage = FixMatchStage(
            net, raw, labels, aug, batch_size=ub, unlabeled_ratio=7, threshold=0.95,
            lambda_u=1.0, ema_decay=0.999, gen=gen, device_gen=dgen,
            device=torch.device("cpu"),
        )  # fmt: skip
        run_stage(stage, torch.optim.SGD(net.parameters(), lr=0.03, momentum=0.9), 1)

    def bare():
        gen, dgen = _gens(seed)
        net = copy.deepcopy(network)
        ema = copy.deepcopy(net)
        opt = torch.optim.SGD(net.parameters(), lr=0.03, momentum=0.9)
        data = raw.float() / 255
        y = torch.as_tensor(labels)
        lab = torch.nonzero(y >= 0).flatten()
        lb = max(1, ub // 7)
        net.train()
        for step, idx_u in enumerate(iterate_minibatches(len(data), ub, gen)):
            idx_l = lab[torch.randint(len(lab), (lb,), generator=gen)]
            x_l, x_u = data[idx_l], data[idx_u]
            views = [aug.weak(x_l, dgen), aug.weak(x_u, dgen), aug.strong(x_u, dgen)]
            logits = net(torch.cat(views))
            lg_l, lg_w, lg_s = logits.split([len(v) for v in views])
            conf, target = lg_w.detach().softmax(-1).max(-1)
            mask = (conf >= 0.95).float()
            loss = (
                F.cross_entropy(lg_l, y[idx_l])
                + (F.cross_entropy(lg_s, target, reduction="none") * mask).mean()
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                d = min(0.999, (2 + step) / (11 + step))
                for pe, p in zip(ema.parameters(), net.parameters()):
                    pe.mul_(d).add_(p.detach(), alpha=1 - d)
                for be, b in zip(ema.buffers(), net.buffers()):
                    be.copy_(b)

    return ours, bare, len(raw)


STAGES = {"feature": stage1, "self-label": stage2, "semi": stage3}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-samples", type=int, default=8192)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    p.add_argument("--results", default="benchmarks/results/throughput.json")
    args = p.parse_args(argv)
    X, _ = load_dataset("fashion-mnist", n_samples=args.n_samples, seed=0)
    raw = torch.from_numpy(np.ascontiguousarray(X[:, None]))  # uint8 (n, 1, 28, 28)
    rows = []
    for name in args.stages:
        ours, bare, n = STAGES[name](raw, args.batch_size, seed=0)
        ours(), bare()  # warm-up: allocator, oneDNN kernels
        t_ours = min(_time(ours) for _ in range(args.repeats))
        t_bare = min(_time(bare) for _ in range(args.repeats))
        row = {
            "stage": name,
            "samples": n,
            "skspice_samples_per_s": n / t_ours,
            "bare_samples_per_s": n / t_bare,
            "ratio": t_ours / t_bare,
        }
        rows.append(row)
        print(
            f"{name:<10} skspice {row['skspice_samples_per_s']:8.0f}/s  "
            f"bare {row['bare_samples_per_s']:8.0f}/s  ratio {row['ratio']:.2f}",
            flush=True,
        )
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"machine": machine_info("cpu"), "args": vars(args), "rows": rows})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
