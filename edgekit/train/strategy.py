"""``distribute:`` in a recipe -> a tf.distribute strategy on an existing engine.

* ``none``: TensorFlow's default strategy (one device).
* ``mirrored``: synchronous data parallelism over this host's GPUs, or its logical CPUs.
* ``multi_worker``: MultiWorkerMirroredStrategy; every host runs the same command with its
  own ``TF_CONFIG`` (cluster spec + task index) — see README "Distributed training".
* ``tpu``: TPUStrategy on the TPU named by ``TPU_NAME`` (or the local one on a TPU VM).
"""

from __future__ import annotations

import json
import os

from edgekit._tf import tf_modules
from edgekit.config import Distribute
from edgekit.errors import EdgekitError


def make_strategy(kind: Distribute):
    tf, _ = tf_modules()
    if kind is Distribute.NONE:
        return tf.distribute.get_strategy()
    if kind is Distribute.MIRRORED:
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if kind is Distribute.MULTI_WORKER:
        try:
            has_cluster = "cluster" in json.loads(os.environ.get("TF_CONFIG", ""))
        except (ValueError, TypeError):
            has_cluster = False
        if not has_cluster:
            raise EdgekitError("distribute: multi_worker needs TF_CONFIG with a cluster spec and this host's "
                               "task (see README: Distributed training)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EdgekitError(f"distribute: tpu: no TPU reachable ({first})") from None
    return tf.distribute.TPUStrategy(resolver)


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
