"""Peak memory grows with the data in its compact form and one batch, not with
the data set in float32 or with a stage's whole pseudo-batch.

The fit runs in a child process, which samples its own resident memory
every 20 ms and records the peak of every phase (named by the progress
messages on the ``skspice`` logger); a watchdog ends it as soon as it goes
far over the bound, so that a regression fails in seconds, not after
swapping.
"""

import json
import subprocess
import sys
import textwrap

import pytest

MIB = 2**20

CHILD = textwrap.dedent(
    """
    import json, logging, os, sys, threading, time
    import numpy as np
    import torch
    from skspice import SPICEClustering

    n, size, limit_mib = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])

    def rss_mib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    rng = np.random.default_rng(0)
    # Three kinds of picture: smooth gradients in three orientations, noisy.
    ramp = np.linspace(0, 255, size)
    diag = (ramp[None, :] + ramp[:, None])[..., None] / 2
    base = [ramp[None, :, None], ramp[:, None, None], diag]
    X = np.stack([
        np.clip(np.broadcast_to(base[i % 3], (size, size, 3))
                + rng.normal(0, 20, (size, size, 3)), 0, 255)
        for i in range(n)
    ]).astype(np.uint8)
    torch.set_num_threads(2)
    baseline = rss_mib()
    state = {"phase": "start", "peaks": {}}

    def sample():
        while True:
            r = rss_mib()
            peaks = state["peaks"]
            peaks[state["phase"]] = max(peaks.get(state["phase"], 0.0), r)
            if r - baseline > limit_mib:
                print(json.dumps({"killed": True, "phase": state["phase"],
                                  "rss_mib": r, "baseline_mib": baseline}))
                sys.stdout.flush()
                os._exit(3)
            time.sleep(0.02)

    class Phase(logging.Handler):
        def emit(self, record):
            state["phase"] = record.getMessage().split("]")[0] + "]"

    logger = logging.getLogger("skspice")
    logger.setLevel(logging.INFO)
    logger.addHandler(Phase())
    threading.Thread(target=sample, daemon=True).start()
    model = SPICEClustering(
        n_clusters=3, backbone="resnet18", feature_epochs=0, self_epochs=1,
        semi_epochs=1, random_state=0,
    )
    model.fit(X)
    time.sleep(0.1)
    params = sum(p.numel() for p in model.network_.parameters())
    print(json.dumps({
        "killed": False, "baseline_mib": baseline, "peaks": state["peaks"],
        "data_bytes": int(X.nbytes), "param_bytes": int(4 * params),
        "labels": int(np.unique(model.labels_).size),
    }))
    """
)


def _bounds(data_bytes, param_bytes):
    """Peak memory above the baseline (interpreter, torch, the caller's uint8
    images) that a fit may take, in MiB: ``(stage 2, whole fit)``.

    * the estimator's own copy of the images in their input dtype (uint8),
      plus one float32 inference batch: ``2 * data``;
    * the model's weights, gradients, SGD momentum, the EMA copy and the
      stage-2 heads: ``8 * params``;
    * activations: stage 2 and the whole-data passes only run inference on
      32-image batches (under 0.5 GiB for a ResNet-18 at 224 px); a stage-3
      step trains on 137 images (64 weak + 64 strong + 9 labelled views) at
      about 26 MiB each, 3.5 GiB.
    * 0.5 GiB for the allocator and libraries' own buffers.

    The code before this bound (whole pseudo-batch of 600 images encoded at
    once in stage 2, float32 data, 548-image stage-3 steps) goes past 4 GiB
    in stage 2 and past 10 GiB in stage 3.
    """
    fixed = (2 * data_bytes + 8 * param_bytes) / MIB + 512
    return fixed + 512, fixed + 137 * 26


@pytest.mark.slow
def test_fit_memory_600_images_224px_resnet18(tmp_path):
    n, size = 600, 224
    data_bytes = n * size * size * 3
    param_bytes = 4 * 11_200_000  # ResNet-18 without its classifier, about
    stage2, whole = _bounds(data_bytes, param_bytes)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(size), str(whole + 1024)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    assert lines, out.stderr[-3000:]
    report = json.loads(lines[-1])
    assert not report["killed"], f"memory bound exceeded: {report}"
    assert out.returncode == 0, out.stderr[-3000:]
    base = report["baseline_mib"]
    peaks = {k: v - base for k, v in report["peaks"].items()}
    stage2_peak = max(v for k, v in peaks.items() if k.startswith("[self-label"))
    assert stage2_peak <= stage2, (stage2_peak, stage2, peaks)
    assert max(peaks.values()) <= whole, (max(peaks.values()), whole, peaks)
