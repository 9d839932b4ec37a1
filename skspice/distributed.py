"""Training on several processes with ``torch.distributed`` (e.g. under torchrun).

When ``fit`` starts in a process whose environment describes a process group
(``WORLD_SIZE`` > 1, as ``torchrun`` sets it), every process takes part in
one fit:

* the default process group is started if the caller has not done it
  (``nccl`` on CUDA, ``gloo`` on the CPU), and each process trains on its
  own GPU (``LOCAL_RANK``);
* every epoch's batches are drawn identically on all ranks (same seed), and
  each rank takes its own disjoint share of every batch, so that the total
  batch is the single-process one;
* the trainable modules are wrapped in
  :class:`~torch.nn.parallel.DistributedDataParallel`, which averages the
  gradients;
* MoCo's keys are gathered from all ranks before they enter the queue and
  the key encoder's BatchNorm sees a batch shuffled across ranks (the
  paper's shuffle-BN), so every rank sees every negative;
* whole-data passes (features, probabilities) are split across ranks and
  gathered, and everything computed on the whole data set (prototypes, kNN,
  reliable labels) is computed on every rank from the gathered results and
  rank 0's copy is broadcast, so all ranks agree;
* at the end rank 0's fitted state is broadcast, so every rank ends with the
  same fitted attributes and labels.

A :class:`Context` describes the current process; with one process every
helper is the identity.
"""

import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["SINGLE", "Context", "context_from_env", "local_rank"]


@dataclass(frozen=True)
class Context:
    """Where this process stands in a distributed fit.

    Parameters
    ----------
    rank : int
        This process's rank, from 0.
    world_size : int
        Number of processes; 1 when not distributed.
    comm_device : str
        Where collective operations need their tensors: ``"cpu"`` for gloo,
        this process's GPU for nccl.
    """

    rank: int = 0
    world_size: int = 1
    comm_device: str = "cpu"

    @property
    def active(self):
        """Whether more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self):
        """Whether this is rank 0 (which writes checkpoints and shows progress)."""
        return self.rank == 0

    def shard(self, batch):
        """This rank's share of a batch drawn identically on every rank.

        Parameters
        ----------
        batch : torch.Tensor
            Indices (or samples) along the first dimension.

        Returns
        -------
        torch.Tensor
            Contiguous share ``rank`` of ``world_size`` (sizes differ by at
            most one).
        """
        if not self.active:
            return batch
        return batch.tensor_split(self.world_size)[self.rank]

    def share_range(self, n):
        """This rank's contiguous share of ``n`` samples, as a slice.

        Parameters
        ----------
        n : int

        Returns
        -------
        slice
            ``slice(start, stop)``, the indices :meth:`shard` gives this
            rank out of ``range(n)`` (empty when ``n < world_size``).
        """
        mine = self.shard(torch.arange(n))
        return slice(int(mine[0]), int(mine[-1]) + 1) if len(mine) else slice(0, 0)

    def gather(self, tensor, return_offset=False):
        """Concatenate every rank's ``tensor`` along dim 0, in rank order.

        Shares may differ in length (e.g. the last, shorter shard); the
        result is the same on every rank. Gradients do not flow through it.

        Parameters
        ----------
        tensor : torch.Tensor
        return_offset : bool, default=False
            Also return where this rank's rows start in the result (the
            shares' sizes are exchanged anyway).

        Returns
        -------
        torch.Tensor
        offset : int
            Only with ``return_offset``.
        """
        if not self.active:
            return (tensor, 0) if return_offset else tensor
        home = tensor.device
        tensor = tensor.to(self.comm_device).contiguous()
        size = torch.tensor([tensor.shape[0]], device=tensor.device)
        sizes = [torch.zeros_like(size) for _ in range(self.world_size)]
        dist.all_gather(sizes, size)
        sizes = [int(s) for s in sizes]
        longest = max(sizes)
        padded = tensor.new_zeros((longest,) + tuple(tensor.shape[1:]))
        padded[: tensor.shape[0]] = tensor
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        out = torch.cat([p[:s] for p, s in zip(parts, sizes)]).to(home)
        return (out, sum(sizes[: self.rank])) if return_offset else out

    def broadcast(self, tensor):
        """Rank 0's ``tensor``, in place on every rank (same shape and dtype).

        Parameters
        ----------
        tensor : torch.Tensor

        Returns
        -------
        torch.Tensor
            ``tensor``, now holding rank 0's values.
        """
        if self.active:
            buf = tensor.to(self.comm_device)
            dist.broadcast(buf, src=0)
            if buf is not tensor:
                tensor.copy_(buf)
        return tensor

    def broadcast_object(self, obj):
        """Rank 0's picklable ``obj`` on every rank.

        Parameters
        ----------
        obj : object

        Returns
        -------
        object
        """
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_module(self, module):
        """Give ``module`` rank 0's parameters and buffers, in place.

        Parameters
        ----------
        module : torch.nn.Module

        Returns
        -------
        torch.nn.Module
        """
        if self.active:
            with torch.no_grad():
                for t in list(module.parameters()) + list(module.buffers()):
                    self.broadcast(t.data)
        return module

    def barrier(self):
        """Wait until every rank gets here."""
        if self.active:
            dist.barrier()

    def wrap(self, module, device):
        """``module`` in :class:`~torch.nn.parallel.DistributedDataParallel`
        when distributed, else ``module`` itself.

        Parameters
        ----------
        module : torch.nn.Module
            Has trainable parameters, on ``device``.
        device : torch.device

        Returns
        -------
        torch.nn.Module
        """
        if not self.active:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [device] if device.type == "cuda" else None
        # Buffers (BatchNorm statistics, MoCo's queue) are kept in step by
        # the stages themselves: broadcasting them every step would cost a
        # copy of the queue per step. Newer torch names the switch
        # forward_sync_buffers and deprecates broadcast_buffers.
        return DistributedDataParallel(module, device_ids=ids, **_no_buffer_sync())


def _no_buffer_sync():
    """DistributedDataParallel's keyword that turns off the per-step buffer
    broadcast, in this torch's spelling."""
    from torch.nn.parallel import DistributedDataParallel

    params = inspect.signature(DistributedDataParallel.__init__).parameters
    if "forward_sync_buffers" in params:
        # Still syncs the buffers once, at wrap time, from rank 0: the ranks'
        # buffers are equal then, so the copy changes nothing.
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


#: The context of a process that is not part of a distributed fit.
SINGLE = Context()


def _env_world_size():
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def context_from_env(device_type="cpu"):
    """The distributed context of this process, starting the process group
    when the environment asks for one.

    Parameters
    ----------
    device_type : {"cpu", "cuda"}, default="cpu"
        Decides the backend when the group must be started: ``nccl`` for
        CUDA, ``gloo`` for the CPU.

    Returns
    -------
    Context
        ``Context(0, 1)`` outside a distributed launch.

    Raises
    ------
    RuntimeError
        When the environment describes a group but ``torch.distributed`` is
        not available in this build of PyTorch.
    """
    if dist.is_available() and dist.is_initialized():
        return _current()
    if _env_world_size() <= 1:
        return SINGLE
    if not dist.is_available():
        raise RuntimeError(
            "WORLD_SIZE > 1 asks for a distributed fit, but this PyTorch build has "
            "no torch.distributed."
        )
    if device_type == "cuda":
        torch.cuda.set_device(local_rank())
        dist.init_process_group(backend="nccl")
    else:
        dist.init_process_group(backend="gloo")
    return _current()


def _current():
    """The context of the running default process group."""
    nccl = dist.get_backend() == "nccl"
    comm = f"cuda:{torch.cuda.current_device()}" if nccl else "cpu"
    return Context(dist.get_rank(), dist.get_world_size(), comm)


def local_rank():
    """This process's index on its machine (``LOCAL_RANK``; 0 if unset).

    Returns
    -------
    int
    """
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return 0
