"""Full-int8 TFLite (int8 weights and activations, int32 id/mask inputs, int8 outputs).

Plain post-training quantization of a BERT-class model is broken (MiniLM: cosine ~0.03 to
fp32). What this pipeline does instead, in order (settings in ``Int8Options``):

1. the encoder is rebuilt as ``graph.EncoderGraph`` with a bounded padding bias
   (``mask_bias``, default -30: -10000 alone takes SST-2 to chance) looked up by GATHER;
2. function-preserving rewrites (``transforms``) measured on the calibration inputs:
   residual-stream outlier channels moved into the weights, [CLS] run in tensors of its
   own where its variance is off the other tokens' range, query/key equalization,
   value -> attention-output smoothing; optional: SmoothQuant on LayerNorm -> Dense, FFN
   neurons grouped by activation range into separate tensors;
3. the converter calibrates once; ranges are then chosen by ``calibrate.choose_ranges``
   (percentile / MSE / min-max, plus structural rules for the mask bias and softmax inputs);
4. TensorFlow's MLIR quantizer writes per-channel int8 weights, int8 activations and int8
   outputs (ops named in ``keep_float`` stay float where the quantizer allows it);
5. ``inspect.op_listing`` reports what the graph really computes in.

Calibration inputs are int32 [1, n] dicts at natural length; a static export pads them to
[batch_size, seq_len] (mask 0) and groups batch_size of them per calibration batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgekit.config import QuantizeSection
from edgekit.config.enums import Calibration

DEFAULT_MASK_BIAS = -30.0


@dataclass(frozen=True)
class Int8Options:
    mask_bias: float = DEFAULT_MASK_BIAS
    residual_power: float | None = 1.0  # rescale the residual stream (None: off)
    split_first: bool = True  # run [CLS] in tensors of its own where its variance is off the others' range
    group_ffn: bool = False  # FFN neurons in separate tensors by activation range (no gain measured)
    equalize_qk: bool = True
    value_alpha: float | None = 0.5  # value -> attention-output smoothing (None: off)
    smoothquant_alpha: float | None = None  # LayerNorm -> Dense SmoothQuant (None: off)
    calibration: Calibration = Calibration.PERCENTILE
    percentile: float = 99.99
    per_channel: bool = True
    keep_float: tuple[str, ...] = ()
    calibration_samples: int = 256
    stats_samples: int = 256  # inputs used to measure the transforms' activation maxima

    @classmethod
    def from_quantize(cls, q: QuantizeSection, model_mask_bias: float) -> "Int8Options":
        """The recipe's quantize section; a model's own unbounded mask bias becomes -30."""
        mask_bias = q.mask_bias if q.mask_bias is not None else max(model_mask_bias, DEFAULT_MASK_BIAS)
        return cls(mask_bias=mask_bias, smoothquant_alpha=q.smoothquant_alpha, calibration=q.calibration,
                   percentile=q.percentile, per_channel=q.per_channel, keep_float=tuple(q.keep_float_ops),
                   calibration_samples=q.calibration_samples)

    def to_json(self) -> dict:
        out = asdict(self)
        out["calibration"] = self.calibration.value
        out["keep_float"] = list(self.keep_float)
        return out


def calibration_batches(samples, *, static: bool, batch_size: int, seq_len: int,
                        pad_id: int = 0) -> list[dict[str, np.ndarray]]:
    """Natural-length [1, n] samples as the artifact's calibration inputs (see module docstring)."""
    samples = [{k: np.asarray(v, np.int32).reshape(1, -1) for k, v in s.items()} for s in samples]
    if not static:
        return samples
    padded = []
    for s in samples:
        row = {}
        for name, value in s.items():
            value = value[:, :seq_len]
            fill = pad_id if name == "input_ids" else 0
            row[name] = np.pad(value, ((0, 0), (0, seq_len - value.shape[1])), constant_values=fill)
        padded.append(row)
    batches = []
    for start in range(0, len(padded) - batch_size + 1, batch_size):
        group = padded[start:start + batch_size]
        batches.append({k: np.concatenate([g[k] for g in group]) for k in group[0]})
    return batches


def prepare_weights(pretrained, samples, options: Int8Options):
    """The encoder's weights after the transforms ``options`` asks for (fp32 function unchanged)."""
    from edgekit.export.tflite import transforms as T
    from edgekit.export.tflite.graph import from_keras

    w = from_keras(pretrained.model, pretrained.config)
    stats_inputs = samples[: options.stats_samples]
    needs = (options.residual_power is not None or options.equalize_qk or options.value_alpha is not None
             or options.split_first or options.group_ffn)
    stats = T.activation_stats(w, stats_inputs, mask_bias=options.mask_bias) if needs else {}
    if options.residual_power is not None:
        w = T.rescale_residual(w, stats, options.residual_power)
    if options.split_first:
        w = T.split_first_token(w, stats)
    if options.group_ffn:
        w = T.group_ffn_neurons(w, stats)
    if options.equalize_qk:
        w = T.equalize_qk(w, stats)
    if options.value_alpha is not None:
        w = T.equalize_value(w, stats, options.value_alpha)
    if options.smoothquant_alpha is not None:  # needs the LayerNorm outputs of the current weights
        w = T.smooth_norm_outputs(w, T.activation_stats(w, stats_inputs, mask_bias=options.mask_bias),
                                  options.smoothquant_alpha)
    return w


def float_graph_model(pretrained, weights, options: Int8Options, *, static: bool, batch_size: int, seq_len: int):
    """(concrete function, module) of the int8-friendly graph (the task's named outputs), for conversion."""
    from edgekit.export.tflite.convert import signature
    from edgekit.export.tflite.graph import EncoderGraph

    graph = EncoderGraph(weights, mask_bias=options.mask_bias, batch_size=batch_size if static else None,
                         seq_len=seq_len if static else None, max_len=seq_len)
    names = tuple(n for n in pretrained.model.input_names)
    return signature(graph, names, static=static, batch_size=batch_size, seq_len=seq_len, track=graph)


def keras_graph_model(pretrained, options: Int8Options, *, static: bool, batch_size: int, seq_len: int):
    """(concrete function, module) of the tf-keras encoder itself with ``options.mask_bias`` looked up
    (MobileBERT: designed for int8, no LayerNorm statistics for the rewrites to protect)."""
    from edgekit.export.base import task_outputs
    from edgekit.export.tflite.convert import keras_fn, signature
    from edgekit.models.encoder import build_encoder

    model = build_encoder(pretrained.config.replace(mask_bias=options.mask_bias), mask_lookup=True)
    model.set_weights(pretrained.model.get_weights())  # same architecture: same weight order
    outputs = tuple(o.name for o in task_outputs(pretrained))
    return signature(keras_fn(model, outputs), tuple(model.input_names), static=static, batch_size=batch_size,
                     seq_len=seq_len, track=model)


def full_int8(pretrained, calibration, options: Int8Options, *, static: bool, batch_size: int,
              seq_len: int) -> tuple[bytes, dict]:
    """(the .tflite bytes, details: options, transforms applied, calibration facts)."""
    if not calibration:
        raise ValueError("int8-full needs calibration inputs (ExportJob.calibration is empty)")
    natural = calibration_batches(calibration[: options.calibration_samples], static=False, batch_size=1,
                                  seq_len=seq_len)
    if pretrained.config.bottleneck is not None:
        concrete, module = keras_graph_model(pretrained, options, static=static, batch_size=batch_size,
                                             seq_len=seq_len)
        notes = ["tf-keras graph as is (MobileBERT: NoNorm, no LayerNorm statistics; mask bias by lookup)"]
    else:
        weights = prepare_weights(pretrained, natural, options)
        concrete, module = float_graph_model(pretrained, weights, options, static=static, batch_size=batch_size,
                                             seq_len=seq_len)
        notes = list(weights.notes)
    batches = calibration_batches(natural, static=static, batch_size=batch_size, seq_len=seq_len,
                                  pad_id=pretrained.tokenizer.pad_id)
    if not batches:
        raise ValueError(f"int8-full needs at least batch_size={batch_size} calibration inputs")
    model = quantize_graph(concrete, module, batches, options)
    details = {"int8": options.to_json(), "transforms": notes,
               "calibration_inputs": len(batches)}
    return model, details


def quantize_graph(concrete, module, batches, options: Int8Options) -> bytes:
    from edgekit.export.tflite import calibrate as C

    calibrated = C.calibrate_only(concrete, module, batches[:8])
    stats = C.collect(calibrated, batches)
    ranges = C.choose_ranges(calibrated, stats, options.calibration, options.percentile)
    return C.quantize(C.write_ranges(calibrated, ranges), per_channel=options.per_channel,
                      keep_float=options.keep_float)
