"""AdamW with linear warm-up then linear decay to 0 — the schedule BERT fine-tuning uses."""

from __future__ import annotations

from edgekit._tf import tf_modules
from edgekit.config import TrainSchedule

tf, keras = tf_modules()


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) rises linearly to ``peak`` over ``warmup`` steps, then falls linearly to 0 at ``total``."""

    def __init__(self, peak: float, warmup: int, total: int):
        self.peak, self.warmup, self.total = float(peak), int(warmup), int(max(total, 1))

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = step / max(self.warmup, 1)
        decay = (self.total - step) / max(self.total - self.warmup, 1)
        return self.peak * tf.maximum(0.0, tf.minimum(warm, decay))

    def get_config(self):
        return {"peak": self.peak, "warmup": self.warmup, "total": self.total}


def make_optimizer(schedule: TrainSchedule, total_steps: int):
    """AdamW (eps 1e-6, gradient clip at norm 1); biases and LayerNorm weights are not decayed."""
    warmup = int(round(schedule.warmup_ratio * total_steps))
    lr = WarmupLinearDecay(schedule.learning_rate, warmup, total_steps)
    optimizer = keras.optimizers.AdamW(learning_rate=lr, weight_decay=schedule.weight_decay,
                                       epsilon=1e-6, global_clipnorm=1.0)
    optimizer.exclude_from_weight_decay(var_names=["layer_norm", "bias"])
    return optimizer
