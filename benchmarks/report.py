"""Reporting for ``benchmarks/run.py``: machine, markdown tables, docs sections.

Everything here works on the content of a ``results.json``; nothing fits or
measures.
"""

import os
import platform
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

__all__ = [
    "dataset_key",
    "describe_machine",
    "machine_info",
    "render_markdown",
    "render_section",
    "table_rows",
    "update_docs",
]

REPO_ROOT = Path(__file__).resolve().parent.parent


def dataset_key(dataset, data_path=None):
    """Name of a data set's results folder, docs section and image.

    Parameters
    ----------
    dataset : str
        A name of :data:`skspice.datasets.DATASET_NAMES`.
    data_path : str or os.PathLike, default=None
        The data set's path; only used for ``"folder"``.

    Returns
    -------
    key : str
        ``dataset``, or ``"folder-<folder name>"`` for an image folder so that
        several folders do not overwrite each other's results.
    """
    if dataset != "folder" or data_path is None:
        return dataset
    name = Path(data_path).expanduser().resolve().name or "root"
    return "folder-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


# ----------------------------------------------------------------------------
# machine
# ----------------------------------------------------------------------------


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _total_memory_gib():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def _git_commit():
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def machine_info(device="cpu"):
    """Describe the machine and the software versions.

    Parameters
    ----------
    device : str, default="cpu"
        The device SPICE used (``torch.cuda.get_device_name()`` or "cpu").

    Returns
    -------
    info : dict
        ``platform``, ``processor``, ``cpu_model``, ``cpu_count``,
        ``memory_gib``, ``python``, ``numpy``, ``torch``, ``sklearn``,
        ``skspice``, ``pillow``, ``device``, ``git_commit``, ``date`` (UTC,
        ISO 8601).
    """
    import PIL
    import sklearn
    import torch

    import skspice

    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _total_memory_gib(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "skspice": skspice.__version__,
        "pillow": PIL.__version__,
        "device": device,
        "git_commit": _git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def describe_machine(machine):
    """One line naming the machine and the software versions.

    Parameters
    ----------
    machine : dict
        As returned by :func:`machine_info`.

    Returns
    -------
    str
    """
    memory = machine.get("memory_gib")
    memory = f"{memory:.0f} GiB RAM" if memory else "unknown RAM"
    return (
        f"{machine.get('cpu_model') or 'unknown CPU'} "
        f"({machine.get('cpu_count')} logical CPUs), {memory}, "
        f"{machine.get('platform')}; device: {machine.get('device')}; "
        f"Python {machine.get('python')}, torch {machine.get('torch')}, "
        f"scikit-learn {machine.get('sklearn')}, skspice {machine.get('skspice')}"
    )


# ----------------------------------------------------------------------------
# markdown
# ----------------------------------------------------------------------------


def _fmt_seconds(seconds):
    if seconds is None:
        return "-"
    return f"{seconds:.2f}" if seconds < 10 else f"{seconds:.1f}"


def _fmt_mib(mib):
    return "-" if mib is None else f"{mib:.0f}"


def table_rows(results):
    """The rows of the results table.

    Parameters
    ----------
    results : dict
        The content of ``results.json``.

    Returns
    -------
    rows : list of dict
        ``method``, ``scores`` (``acc``, ``nmi``, ``ari``), ``seconds`` and
        ``peak_rss_mib`` (None for stage rows: memory is per process).
    """
    kmeans, spice = results["methods"]["kmeans"], results["methods"]["spice"]
    rows = [
        {
            "method": "KMeans (raw pixels, n_init=10)",
            "scores": kmeans["scores"],
            "seconds": kmeans["fit_seconds"],
            "peak_rss_mib": kmeans["peak_rss_mib"],
        },
        {
            "method": "SPICEClustering (final `labels_`)",
            "scores": spice["scores"],
            "seconds": spice["fit_seconds"],
            "peak_rss_mib": spice["peak_rss_mib"],
        },
    ]
    for stage in spice["stages"]:
        rows.append(
            {
                "method": stage["name"],
                "scores": stage["scores"],
                "seconds": stage["seconds"],
                "peak_rss_mib": None,
            }
        )
    return rows


def render_markdown(results):
    """The results table in markdown.

    Parameters
    ----------
    results : dict
        The content of ``results.json``.

    Returns
    -------
    table : str
        One row per method (KMeans, SPICEClustering) and one per SPICE stage;
        columns ACC, NMI, ARI, time (s), peak RSS (MiB). Stage rows give the
        stage's own time and no memory (memory is measured per process).
    """
    lines = [
        "| Method | ACC | NMI | ARI | time (s) | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in table_rows(results):
        s = row["scores"]
        lines.append(
            f"| {row['method']} | {s['acc']:.3f} | {s['nmi']:.3f} | {s['ari']:.3f} "
            f"| {_fmt_seconds(row['seconds'])} | {_fmt_mib(row['peak_rss_mib'])} |"
        )
    return "\n".join(lines) + "\n"


def render_section(results, image_path="clusters.png", heading_level=2):
    """A self-contained markdown section: data, command, machine, table, grid.

    Parameters
    ----------
    results : dict
        The content of ``results.json``.
    image_path : str, default="clusters.png"
        Link to the cluster grid, relative to the markdown file.
    heading_level : int, default=2
        Level of the section heading.

    Returns
    -------
    section : str
    """
    data, spice = results["data"], results["methods"]["spice"]
    machine = results["machine"]
    shape = "x".join(str(s) for s in data["image_shape"])
    params = results["params"]
    params_text = (
        ", ".join(f"`{k}={v!r}`" for k, v in sorted(params.items()))
        if params
        else "none (defaults)"
    )
    subset = (
        f"a random subset of {data['n_samples']} of the {data['n_total']} images "
        f"(seed {results['seed']})"
        if data["n_samples"] < data["n_total"]
        else f"all {data['n_samples']} images"
    )
    n = data["n_samples"]
    reliable = spice["n_reliable"]
    stage_times = ", ".join(
        f"{k} {_fmt_seconds(v)} s" for k, v in spice["stage_seconds"].items()
    )
    commit = machine.get("git_commit")
    commit = f", commit `{commit[:12]}`" if commit else ""
    extra_kmeans = _fmt_seconds(spice["kmeans_on_embedding_seconds"])
    if "semi" in spice.get("epochs_run", {"semi": 1}):
        semi_text = (
            f"SPICE-Semi trained on {reliable} reliable pseudo-labels "
            f"({100 * reliable / n:.1f}% of the samples)."
        )
    else:
        semi_text = "Stage 3 was skipped (`semi_epochs=0`): `labels_` are SPICE-Self's."
    hashes = "#" * heading_level
    lines = [
        f"{hashes} {data['title']}",
        "",
        f"{subset[0].upper()}{subset[1:]}, {shape} px, {data['n_classes']} classes "
        f"(`n_clusters={data['n_classes']}`). Labels are used only for scoring.",
        "",
        f"* Command: `{results['command']}`",
        f"* Machine: {describe_machine(machine)}",
        f"* Date: {machine.get('date')}{commit}",
        f"* SPICEClustering parameters overridden: {params_text}; "
        f"`random_state={results['seed']}`.",
        "",
        render_markdown(results).rstrip("\n"),
        "",
        "ACC is Hungarian-matched accuracy; NMI uses the arithmetic mean. Time is "
        "the fit's wall time (stage rows: that stage alone; "
        f"{stage_times}). The stage-1 row scores KMeans (n_init=10) on the "
        f"stage-1 features, which took {extra_kmeans} s more (not part of "
        f"SPICE's fit). {semi_text} Peak RSS is the high-water resident "
        "memory of the child "
        "process that ran the method, including the Python interpreter and "
        f"imports ({_fmt_mib(spice.get('rss_before_fit_mib'))} MiB before "
        "SPICE's fit).",
        "",
        f"![Random samples of each SPICE cluster]({image_path})",
        "",
        "Random samples of each SPICE cluster (one row per cluster, with its size).",
        "",
    ]
    return "\n".join(lines)


_DOCS_HEADER = (
    "# Benchmarks\n\n"
    "SPICEClustering against KMeans on real data sets, written by "
    "`benchmarks/run.py --docs`. Each section is replaced when its data set is "
    "benchmarked again.\n"
)


def _markers(key):
    return (
        f"<!-- benchmark:{key}:start -->",
        f"<!-- benchmark:{key}:end -->",
    )


def update_docs(docs_path, key, section):
    """Write or replace one data set's section of a markdown file.

    The section is wrapped in ``<!-- benchmark:KEY:start -->`` /
    ``<!-- benchmark:KEY:end -->`` comments. A previous section with the same
    key is replaced in place; a new key is appended at the end; everything
    else in the file is kept. A missing file is created with a short header.

    Parameters
    ----------
    docs_path : str or os.PathLike
        The markdown file.
    key : str
        The data set's key (e.g. ``"digits"``).
    section : str
        Markdown of the section.

    Returns
    -------
    path : pathlib.Path
        ``docs_path``.
    """
    path = Path(docs_path)
    start, end = _markers(key)
    block = f"{start}\n{section.strip()}\n{end}\n"
    text = path.read_text() if path.exists() else _DOCS_HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
