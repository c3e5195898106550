"""``distribute:`` in a recipe -> a tf.distribute strategy on an existing engine.

* ``none``: TensorFlow's default strategy (one device).
* ``mirrored``: synchronous data parallelism over this host's GPUs, or its logical CPUs.
* ``multi_worker``: MultiWorkerMirroredStrategy; every host runs the same command with its
  own ``TF_CONFIG`` (cluster spec + task index) — see README "Distributed training". TensorFlow
  waits for the other workers without end (holding the GIL) and swallows SIGTERM, so edgekit
  first waits for their ports itself, at most ``distribute_timeout`` seconds, naming the workers
  it cannot reach, and stops on SIGTERM / SIGINT.
* ``tpu``: TPUStrategy on the TPU named by ``TPU_NAME`` (or the local one on a TPU VM).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time

from edgekit._tf import tf_modules
from edgekit.config import Distribute
from edgekit.config.recipe import DISTRIBUTE_TIMEOUT
from edgekit.errors import EdgekitError


def make_strategy(kind: Distribute, timeout: float = DISTRIBUTE_TIMEOUT):
    """The strategy for ``kind``; ``multi_worker`` waits at most ``timeout`` seconds for its cluster."""
    tf, _ = tf_modules()
    if kind is Distribute.NONE:
        return tf.distribute.get_strategy()
    if kind is Distribute.MIRRORED:
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if kind is Distribute.MULTI_WORKER:
        try:
            own, peers = _tasks(json.loads(os.environ.get("TF_CONFIG", "")))
        except (ValueError, TypeError, KeyError, AttributeError):
            raise EdgekitError("distribute: multi_worker needs TF_CONFIG with a cluster spec and this host's "
                               "task (see README: Distributed training)") from None
        _wait_for_cluster(own, peers, timeout)
        on_term = signal.getsignal(signal.SIGTERM)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        signal.signal(signal.SIGTERM, on_term)  # its server swallows SIGTERM: a stop must still stop training
        return strategy
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EdgekitError(f"distribute: tpu: no TPU reachable ({first})") from None
    return tf.distribute.TPUStrategy(resolver)


def _tasks(config: dict) -> tuple[str, dict[str, str]]:
    """This task's address and ``{"worker 1": "10.0.0.2:12345", ...}`` for every other task."""
    task = config["task"]
    me = (task["type"], task["index"])
    addresses = {(kind, i): address for kind, listed in config["cluster"].items() for i, address in enumerate(listed)}
    own = addresses.pop(me)
    return own, {f"{kind} {i}": address for (kind, i), address in addresses.items()}


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _unreachable(peers: dict[str, str]) -> list[str]:
    """``worker 1 (host:port)`` for each peer whose port takes no connection now."""
    missing = []
    for name, address in peers.items():
        try:
            socket.create_connection(_host_port(address), timeout=1).close()
        except (OSError, ValueError):
            missing.append(f"{name} ({address})")
    return missing


class _Stopped(Exception):
    pass


def _raise_stopped(signum, frame):
    raise _Stopped(signal.Signals(signum).name)


def _wait_for_cluster(own: str, peers: dict[str, str], timeout: float) -> None:
    """Return once every peer's port takes a connection; else raise one line naming the missing
    ones, after ``timeout`` seconds or on SIGTERM / SIGINT. Meanwhile this task listens on its
    own port, so that peers waiting the same way see it (TensorFlow's server takes the port after)."""
    prefix = "distribute: multi_worker"
    try:
        listener = socket.create_server(("", _host_port(own)[1]))
    except (OSError, ValueError) as err:
        raise EdgekitError(f"{prefix}: cannot listen on this task's address {own} from TF_CONFIG ({err})") from None
    listener.setblocking(False)
    previous = {s: signal.signal(s, _raise_stopped) for s in (signal.SIGTERM, signal.SIGINT)}
    deadline = time.monotonic() + timeout
    try:
        while missing := _unreachable(peers):
            if time.monotonic() >= deadline:
                why = f"gave up after {timeout:g} s (distribute_timeout)"
                break
            with contextlib.suppress(BlockingIOError):
                while True:  # peers' probes: accept and drop them so the backlog never fills
                    listener.accept()[0].close()
            time.sleep(0.5)
        else:
            return
    except _Stopped as stop:
        why, missing = f"stopped by {stop}", _unreachable(peers)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        listener.close()
    raise EdgekitError(f"{prefix}: {why} waiting for {', '.join(missing) or 'the cluster'} (TF_CONFIG); "
                       "start every worker with the same cluster")


def split_cpu(count: int) -> None:
    """Expose ``count`` logical CPU devices (for ``mirrored`` on a CPU host); must run before
    TensorFlow initialises its devices."""
    tf, _ = tf_modules()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def worker_suffix(strategy) -> str | None:
    """None on the chief (or without a cluster); ``worker-N`` on other multi-worker tasks, whose
    stage outputs and checkpoints must not race the chief's in a shared cache."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return None
    if resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                         and "chief" not in resolver.cluster_spec().as_dict()):
        return None
    return f"{resolver.task_type}-{resolver.task_id}"
