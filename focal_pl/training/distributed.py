"""A DDP run that loses a process ends in bounded time, saying which rank was lost.

Each rank's thread writes a heartbeat (time, step, pid, host) to a small key-value store of its own
(``torch.distributed.TCPStore``, served by rank 0) every few seconds, and reads the others'. A rank
whose heartbeat is older than ``timeout`` (frozen by SIGSTOP, cut off, killed) ends every other
rank with one line naming it, where the run stood and what ``last.ckpt`` holds, exit code 1;
without this, the others wait in their next collective for the process group's timeout (30
minutes by default) or print a wall of tracebacks. Heartbeats come from a thread, so a rank busy in
a long validation or a compilation is not taken for lost.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from focal_pl.files.atomic import process_alive

EXIT_CODE = 1
PREFIX = "focal-pl/heartbeat/"


def _parent_of(pid: int) -> int | None:
    """The parent process of ``pid`` (Linux /proc), None when unknown."""
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


class Heartbeats:
    """Heartbeats of ``world_size`` ranks in a ``TCPStore``; ``stale()`` names the ranks not heard
    from for ``timeout`` seconds (a store that stops answering counts as rank 0 lost)."""

    def __init__(self, store: Any, rank: int, world_size: int, timeout: float) -> None:
        self.store, self.rank, self.world_size, self.timeout = store, rank, world_size, timeout
        self.step = 0
        self.started = time.time()
        self.last: dict[int, tuple[float, int, int, str]] = {}

    def beat(self) -> None:
        self.store.set(f"{PREFIX}{self.rank}",
                       f"{time.time():.3f} {self.step} {os.getpid()} {socket.gethostname()}")

    def read(self) -> dict[int, tuple[float, int, int, str]]:
        """``rank -> (time, step, pid, host)`` of the heartbeats written so far."""
        keys = [f"{PREFIX}{r}" for r in range(self.world_size)]
        present = [k for k in keys if self.store.check([k])]
        beats = {}
        for key, value in zip(present, self.store.multi_get(present) if present else []):
            when, step, pid, host = value.decode().split(" ", 3)
            beats[int(key.rsplit("/", 1)[1])] = (float(when), int(step), int(pid), host)
        return beats

    def ended_locally(self) -> list[str]:
        """The peers on this machine whose process has ended, from the heartbeats last read."""
        host = socket.gethostname()
        return [f"rank {rank} (pid {pid} on {host}, at step {step}) is gone (its process ended)"
                for rank, (_, step, pid, where) in self.last.items()
                if rank != self.rank and where == host and pid and not process_alive(pid)]

    def silent(self, seconds: float) -> dict[int, float]:
        """``rank -> seconds`` since its heartbeat, for the peers silent longer than ``seconds``
        (from the heartbeats last read)."""
        now = time.time()
        return {rank: now - beat[0] for rank, beat in self.last.items()
                if rank != self.rank and now - beat[0] > seconds}

    def stale(self) -> list[str]:
        """A description of each rank not heard from within ``timeout`` (empty: all well)."""
        try:
            beats = self.last = self.read()
        except Exception as error:  # noqa: BLE001 - the store's host is gone or frozen
            return [f"rank 0 (which serves the heartbeats) stopped answering ({type(error).__name__})"]
        now, lost = time.time(), []
        self.lost_local: list[int] = []
        for rank in range(self.world_size):
            if rank == self.rank:
                continue
            when, step, pid, host = beats.get(rank, (self.started, 0, 0, "?"))
            local_dead = host == socket.gethostname() and pid and not process_alive(pid)
            if now - when > self.timeout or local_dead:
                how = "is gone (its process ended)" if local_dead else f"has not been heard from for {now - when:.0f} s"
                lost.append(f"rank {rank} (pid {pid} on {host}, at step {step}) {how}")
                if host == socket.gethostname() and pid and not local_dead:
                    self.lost_local.append(pid)
        return lost


class PeerWatch(Callback):
    """Ends a DDP fit whose peers are lost (killed, frozen, cut off) within ``timeout`` seconds,
    with one line naming the rank and the checkpoint to resume from, and ``run.json`` saying so.
    A no-op with one process.

    Args:
        timeout: seconds without a peer's heartbeat before the run is ended.
        interval: seconds between heartbeats.
    """

    def __init__(self, timeout: float = 120.0, interval: float = 1.0) -> None:
        if timeout <= 2 * interval:
            raise ValueError(f"timeout must be more than twice the interval ({interval} s), got {timeout}")
        self.timeout, self.interval = timeout, interval
        self.heartbeats: Heartbeats | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._store: Any = None
        self._describe_last: Callable[[], str] = lambda: ""
        self._record_end: Callable[[str], None] | None = None
        self.exit: Callable[[int], None] = os._exit  # a seam for the tests
        self._warned: set[int] = set()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.world_size <= 1 or self._thread is not None or not torch.distributed.is_initialized():
            return
        host = os.environ.get("MASTER_ADDR", "127.0.0.1")
        store = None
        if trainer.global_rank == 0:
            store = torch.distributed.TCPStore(host, 0, trainer.world_size, is_master=True,
                                               timeout=timedelta(seconds=self.interval * 3), wait_for_workers=False)
        port = trainer.strategy.broadcast(store.port if store is not None else None)  # a collective, all alive
        if store is None:
            store = torch.distributed.TCPStore(host, port, trainer.world_size, is_master=False,
                                               timeout=timedelta(seconds=self.interval * 3))
        self._store = store
        self.heartbeats = Heartbeats(store, trainer.global_rank, trainer.world_size, self.timeout)
        self.heartbeats.beat()
        checkpoint = next((c for c in trainer.callbacks if hasattr(c, "last_step")), None)
        self._describe_last = lambda: describe_last(checkpoint)
        record = next((c for c in trainer.callbacks if hasattr(c, "record") and hasattr(c, "end")), None)
        self._record_end = (lambda state: record.end(trainer, state)) if record and trainer.is_global_zero else None
        self._thread = threading.Thread(target=self._watch, name="focal-pl-peer-watch", daemon=True)
        self._thread.start()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self.heartbeats is not None:
            self.heartbeats.step = trainer.global_step

    def _watch(self) -> None:
        ticks = max(1, round(self.interval / 0.25))
        tick = 0
        while not self._stop.wait(0.25):
            tick += 1
            if tick % ticks == 0:
                try:
                    self.heartbeats.beat()
                except Exception:  # noqa: BLE001 - rank 0's store is gone: stale() says so
                    pass
                lost = self.heartbeats.stale()
                for rank, age in self.heartbeats.silent(max(10.0, self.timeout / 4)).items():
                    if rank not in self._warned:  # never a silent wait: say it once, then end it at the timeout
                        self._warned.add(rank)
                        print(f"focal-pl (rank {self.heartbeats.rank}): DDP rank {rank} silent for {age:.0f} s; "
                              f"the run ends if it stays silent for {self.timeout:.0f} s", file=sys.stderr, flush=True)
            else:  # between heartbeats: whether a peer on this machine ended (within a quarter second)
                lost = self.heartbeats.ended_locally()
            if lost and not self._stop.is_set():
                self.give_up(lost)
                return

    def give_up(self, lost: list[str]) -> None:
        """One line on stderr, the frozen local peers this process launched ended, then exit."""
        rank = self.heartbeats.rank if self.heartbeats else "?"
        for pid in getattr(self.heartbeats, "lost_local", []):  # a frozen process this one launched: end it too
            if _parent_of(pid) == os.getpid():
                os.kill(pid, signal.SIGKILL)
        said = f"lost a DDP peer: {'; '.join(lost)}"
        print(f"focal-pl fit (rank {rank}): {said}; ending this rank after {self.timeout:.0f} s without it"
              f"{self._describe_last()}", file=sys.stderr, flush=True)
        if self._record_end is not None:  # run.json says how the run ended, not "running"
            try:
                self._record_end(f"failed at step {self.heartbeats.step if self.heartbeats else '?'}: {said}")
            except Exception:  # noqa: BLE001 - the exit must happen whatever the record does
                pass
        self.exit(EXIT_CODE)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.stop()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self.heartbeats is not None and is_distributed_failure(exception):
            deadline = time.monotonic() + 2.0  # a killed peer fails the collective before its process has ended
            while not (lost := self.heartbeats.ended_locally()) and time.monotonic() < deadline:
                time.sleep(0.05)
            lost = lost or self.heartbeats.stale()
            exception.add_note("lost a DDP peer: " + ("; ".join(lost) if lost else "the other processes stopped "
                                                      "answering") + f" (rank {self.heartbeats.rank} saw it)")
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread = None


def describe_last(checkpoint: Any) -> str:
    """``; last.ckpt holds step N (path)`` for a ``RunCheckpoint`` that wrote one, else ``""``."""
    if checkpoint is None or getattr(checkpoint, "last_step", None) is None:
        return "; no last.ckpt was written by this run yet"
    return f"; last.ckpt holds step {checkpoint.last_step} ({checkpoint.last_path}): resume with --ckpt_path last"


def is_distributed_failure(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed because a peer went away."""
    if isinstance(error, getattr(torch.distributed, "DistError", ())):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        mark in text for mark in ("Connection closed by peer", "Connection reset by peer", "gloo", "NCCL",
                                  "Socket Timeout", "Broken pipe"))


def failure_reason(error: BaseException) -> str:
    """A short reason for a failed collective (gloo's and NCCL's messages run to hundreds of characters)."""
    import re

    text = str(error)
    found = re.search(r"Connection (?:reset|closed) by peer|Socket Timeout|[Tt]imed out[^.;]*|Broken pipe|"
                      r"NCCL error[^.;]*", text)
    return found.group(0) if found else (text.strip().splitlines() or [type(error).__name__])[0][:120]
