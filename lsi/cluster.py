"""Score on a Ray cluster: one actor per worker loads the model once and scores units of the job.

The driver (lsi's process) encodes the requests, plans the units, keeps every in-flight unit's
owner, and is the store's only writer; a worker that dies has its units resubmitted to a live one.
Without an address, lsi starts a local Ray instance whose servers listen on the loopback interface
only (and stops it at the end); with one, it joins that cluster and leaves it running.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lsi.errors import UserError
from lsi.jobs import ModelSource, ScoringJob, Unit, UnitResult, build_worker

if TYPE_CHECKING:
    from lsi.config import RunConfig

CONNECT_TIMEOUT_S = 10
IN_FLIGHT = 2  # units queued per worker: the next one is there when the last returns
# A local instance: Ray takes 127.0.0.1 as the node address (not the first routable one) when clusters
# are "disabled", so its servers bind loopback only; and its processes give up on a dead GCS after 5 s
# instead of 60 (a local GCS never comes back), so none outlives a driver killed with SIGKILL for long.
# Set before Ray is imported; its processes inherit them.
_LOCAL_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_gcs_rpc_server_reconnect_timeout_s": "5"}
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _import_ray(local: bool) -> Any:  # noqa: ANN401 - the ray module
    if local:
        os.environ.update(_LOCAL_ENV)
    try:
        import ray
    except ImportError:
        raise UserError(
            "the ray backend needs Ray: pip install 'lsi[ray]' (make setup installs it)"
        ) from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail within CONNECT_TIMEOUT_S on an address nothing answers at (ray.init would wait minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(
            f"--address must be 'auto' or host:port (the head's GCS port, 6379 by default), got {address!r}"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise UserError(
            f"no Ray cluster answers at {address} within {CONNECT_TIMEOUT_S} s ({err.strerror or err}); "
            "start one with `ray start --head` there, or omit --address to run a local instance"
        ) from None


def connect(address: str | None, cpus: int | None = None) -> tuple[Any, bool]:
    """(ray, whether lsi started the instance): joins `address`, a session already open, or a new
    local instance (loopback only, no dashboard)."""
    local = address is None or address.rpartition(":")[0].strip("[]") in _LOOPBACK_HOSTS
    ray = _import_ray(local)
    if address not in (None, "auto"):
        _check_reachable(address)
    if ray.is_initialized():
        return ray, False
    quiet = {"log_to_driver": False, "configure_logging": False}
    with _own_sigterm():
        if address is None:
            ray.init(num_cpus=cpus, include_dashboard=False, **quiet)
            return ray, True
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError) as err:
            raise UserError(f"could not join the Ray cluster at {address}: {err}".splitlines()[0]) from None
    return ray, False


@contextlib.contextmanager
def _own_sigterm() -> Iterator[None]:
    """Keep the caller's SIGTERM handler (lsi's stops like Ctrl-C), which ray.init replaces with its own."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if main and before is not None:
            signal.signal(signal.SIGTERM, before)


class _RayWorker:
    """The actor: a `lsi.jobs.Worker` built where Ray placed it (the same code as lsi.remote's)."""

    def __init__(self, source: ModelSource, device: str, device_map: str | None, threads: int | None) -> None:
        self.worker = build_worker(source, device, device_map, threads)

    def ready(self) -> str:
        return self.worker.device

    def score(self, job: ScoringJob, unit: Unit) -> UnitResult:
        return self.worker.score(job, unit)


@dataclass(frozen=True)
class Placement:
    """How many workers, and what each one holds."""

    workers: int
    gpus_per_worker: int
    threads: int

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_worker else "cpu"

    @property
    def device_map(self) -> str | None:
        return "balanced" if self.gpus_per_worker > 1 else None


def place(
    resources: dict[str, float], workers: int | None, gpus_per_worker: int | None, threads: int | None
) -> Placement:
    """Default and check the worker count and size against what the cluster has."""
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    per_gpu = (1 if gpus else 0) if gpus_per_worker is None else gpus_per_worker
    threads = threads or 1
    if per_gpu > gpus:
        raise UserError(
            f"--gpus-per-worker {per_gpu} is more than the cluster's {gpus} GPUs; lower it or add GPU nodes"
        )
    fits = gpus // per_gpu if per_gpu else cpus // threads
    workers = fits if workers is None else workers
    if workers < 1 or workers > fits:
        what = (
            f"{gpus} GPUs / {per_gpu} per worker"
            if per_gpu
            else f"{cpus} CPUs / {threads} threads per worker"
        )
        raise UserError(
            f"the cluster fits {fits} workers ({what}), not {workers}; lower --workers or --threads"
        )
    return Placement(workers, per_gpu, threads)


class RayBackend:
    """Scores units on Ray actors; yields results as they finish, resubmitting those of dead workers."""

    def __init__(self, source: ModelSource, config: RunConfig, session: tuple[Any, bool]) -> None:
        """`session`: what `connect` returned; an instance it started stops with this backend."""
        self.ray, self._started = session
        atexit.register(self.close)
        try:
            self.placement = place(
                self.ray.cluster_resources(), config.workers, config.gpus_per_worker, config.threads
            )
            actor = self.ray.remote(_RayWorker).options(
                num_cpus=self.placement.threads, num_gpus=self.placement.gpus_per_worker
            )
            p = self.placement
            self.actors = [actor.remote(source, p.device, p.device_map, p.threads) for _ in range(p.workers)]
            self.devices = self._ready()
        except BaseException:
            self.close()
            raise

    def _ready(self) -> list[str]:
        """Wait for every worker's model; a worker that cannot load it fails the run with its reason."""
        try:
            return self.ray.get([a.ready.remote() for a in self.actors])
        except self.ray.exceptions.RayError as err:
            cause = _user_error(err)
            if cause is not None:
                raise cause from None
            raise

    @property
    def workers(self) -> int:
        return len(self.actors)

    @property
    def device(self) -> str:
        return f"ray: {len(self.devices)} x {self.devices[0]}" if self.devices else "ray"

    def run(
        self, job: ScoringJob, units: Sequence[Unit], advance: Callable[[int], None]
    ) -> Iterator[UnitResult]:
        """Results of all units, in the order they finish; each unit's result comes exactly once."""
        ray = self.ray
        job_ref = ray.put(job)
        pending = list(reversed(units))  # costliest last: popped first
        flying: dict[Any, tuple[Any, Unit]] = {}
        lost = (ray.exceptions.RayActorError, ray.exceptions.OutOfMemoryError)
        try:
            while pending or flying:
                for actor in list(self.actors):
                    while pending and sum(owner is actor for owner, _ in flying.values()) < IN_FLIGHT:
                        unit = pending.pop()
                        flying[actor.score.remote(job_ref, unit)] = (actor, unit)
                [ref], _ = ray.wait(list(flying), num_returns=1)
                actor, unit = flying.pop(ref)
                try:
                    result = ray.get(ref)
                except lost:
                    if actor in self.actors:
                        self.actors.remove(actor)
                    if not self.actors:
                        raise UserError(
                            "every Ray worker died (see `ray status` and the workers' logs)"
                        ) from None
                    pending.append(unit)  # to a live worker, before any unit not yet started
                    continue
                except ray.exceptions.RayTaskError as err:
                    raise _user_error(err) or err from None
                advance(unit.size)
                yield result
        finally:  # stopped early (Ctrl-C, an error): drop what was queued; close() stops the workers
            for ref in flying:
                with contextlib.suppress(Exception):
                    ray.cancel(ref)

    def close(self) -> None:
        """Stop the workers, and the Ray instance if lsi started it; safe to call twice."""
        for actor in getattr(self, "actors", []):
            self.ray.kill(actor)
        self.actors = []
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False
        atexit.unregister(self.close)


def _user_error(err: Exception) -> UserError | None:
    """The UserError a worker raised (e.g. other weights than the driver's), if that is what failed."""
    cause = getattr(err, "cause", None)
    while cause is not None and not isinstance(cause, UserError):
        cause = getattr(cause, "cause", None) or cause.__cause__
    return cause if isinstance(cause, UserError) else None
