"""Process-group facts, seeding and RNG state for training (a single process is rank 0 of 1)."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


class Dist:
    """``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` from the environment (torchrun); initialises the
    process group (gloo on CPU, nccl on CUDA) when there are several processes."""

    def __init__(self, device_arg: str = "auto"):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(self.world_size)))
        from ..engines import resolve_device

        dev = resolve_device(device_arg)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", self.local_rank % max(1, torch.cuda.device_count()))
        self.device = dev
        self.enabled = self.world_size > 1
        if self.enabled and not torch.distributed.is_initialized():
            backend = "nccl" if dev.type == "cuda" else "gloo"
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            torch.distributed.init_process_group(backend=backend)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64,
                         device=self.device if self.device.type == "cuda" else "cpu")
        torch.distributed.all_reduce(t)
        return t.cpu().tolist()

    def any(self, flag: bool) -> bool:
        return self.all_reduce_sum([float(flag)])[0] > 0 if self.enabled else bool(flag)

    def gather(self, obj) -> dict:
        """``{rank: obj}`` of every rank (only ours without a process group)."""
        if not self.enabled:
            return {0: obj}
        out = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return dict(enumerate(out))

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def env_threads() -> int | None:
    """``OMP_NUM_THREADS`` when it is set to a positive integer (the user's choice), else None."""
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return n if n > 0 else None


def default_threads(local_world_size: int = 1) -> int:
    """Intra-op threads that suit this machine: ``OMP_NUM_THREADS`` when it is set (a shared or
    loaded machine's setting), else the cores shared by the processes on it."""
    return env_threads() or max(1, (os.cpu_count() or 1) // max(1, local_world_size))


def default_workers() -> int:
    """DataLoader worker processes that suit this machine: none on 1-2 cores (the workers would
    compete with the model's threads), else a quarter of the cores, at most 4."""
    n = os.cpu_count() or 1
    return 0 if n <= 2 else min(4, n // 4 or 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def worker_init(worker_id: int) -> None:
    s = torch.initial_seed() % 2**32  # differs per worker, epoch and rank (loader generator)
    random.seed(s)
    np.random.seed(s)


def rng_state() -> dict:
    """All RNG states as tensors and plain types (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()
    st = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
          "python_version": random.getstate()[0],
          "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)),
                    "pos": int(np_state[2]),
                    "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])}}
    if torch.cuda.is_available():
        st["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return st


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate((st["python_version"], tuple(st["python"]), None))
    n = st["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
