"""Function-preserving weight rewrites that make int8 activation ranges narrow.

Each transform takes ``EncoderWeights`` and per-channel activation maxima measured on
calibration inputs (``activation_stats``) and returns new weights whose fp32 outputs are the
same (up to float rounding, ~1e-6) but whose activations int8 can represent:

* ``rescale_residual``: the residual stream before each LayerNorm has a few outlier channels
  (the same ones in every layer). Divide stream k per channel by s_k = max(m_c / median(m),
  1) ** power (m_c = max |x_c|), folded into the embedding tables (stream 0), the Dense
  layers that write into the stream (output columns and bias / s_k; an embedding projection
  writes stream 1), the LayerNorm that writes the stream (gamma, beta / s_k) and the Dense
  layers that read it (input rows * s_k);
  the LayerNorm that reads stream k computes its statistics of the unscaled values
  (``graph.Norm.scale``). The largest single gain in the notes, and here (SST-2 MiniLM
  teacher, agreement with fp32 91.4% -> 96.7%).
* ``equalize_qk``: scores = q . k is unchanged when query channel j is multiplied by a_j and
  key channel j divided by it; a_j = sqrt(max|k_j| / max|q_j|) gives both the same range.
* ``equalize_value``: context = probs @ v is linear in v, so value channel j divided by t_j
  and row j of the attention-output kernel multiplied by t_j leave the output unchanged;
  t_j = max|ctx_j| ** alpha / max|W_j,:| ** (1 - alpha) (SmoothQuant's rule).
* ``smooth_norm_outputs``: SmoothQuant on LayerNorm -> Dense: the LayerNorm gets a second
  output divided by t (``Norm.dense_gamma``), the reading Dense rows are multiplied by t.
* ``group_ffn_neurons``: not a weight change: FFN neurons whose activation maximum is far
  above the median neuron's run in separate tensors (``Block.ffn_groups``): in the MiniLM
  teacher one GELU output reaches 24 where the median neuron's stays below 1.
* ``split_first_token``: not a weight change: when the first token's variance before some
  LayerNorm is more than ``ratio`` times larger (or smaller) than every other token's, the
  graph runs that token in tensors of its own (``EncoderWeights.split_first``), so every
  per-token tensor (LayerNorm statistics, Dense outputs, GELU) gets separate int8 ranges for
  [CLS] and for the rest. In the fine-tuned MiniLM, [CLS] has variance 16-127 before the FFN
  LayerNorms of layers 0-3 against ~0.6 (p99 < 1.5) for the other tokens: sharing one int8
  tensor leaves the others' variance one quantization step wide. The second largest gain
  (agreement 97.0% -> 98.5%, mean |logit error| 0.23 -> 0.13).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edgekit.export.tflite.graph import Block, Dense, EncoderGraph, EncoderWeights, Norm, norms


def activation_stats(weights: EncoderWeights, samples: list[dict[str, np.ndarray]], *,
                     mask_bias: float) -> dict[str, np.ndarray]:
    """Per-channel max |value| of every tapped tensor of ``EncoderGraph`` (names as its taps:
    ``norm{k}_in`` / ``norm{k}_out`` / ``norm{k}_dense``, ``q{i}``, ``k{i}``, ``v{i}``,
    ``ctx{i}``, ``ffn{i}``), over the real tokens of ``samples`` (int32 [1, n] dicts, batch
    1), plus ``norm{k}_var_first`` / ``norm{k}_var_rest`` ([1]): the largest per-token
    variance of the unscaled LayerNorm input for the first token and for the others."""
    import tensorflow as tf

    graph = EncoderGraph(weights, mask_bias=mask_bias)
    spec = {n: tf.TensorSpec([None, None], tf.int32, name=n) for n in graph.input_names}

    @tf.function(input_signature=[spec])
    def taps(inputs):
        found: dict = {}
        graph(inputs, taps=found)
        return found

    maxima: dict[str, np.ndarray] = {}
    scales = {f"norm{k}": n.scale for k, n in enumerate(norms(weights))}
    for sample in samples:
        keep = sample["attention_mask"].reshape(-1).astype(bool)
        out = taps({n: tf.constant(sample[n]) for n in graph.input_names})
        for name, value in out.items():
            value = value.numpy()[keep]
            m = np.abs(value).max(axis=0)
            maxima[name] = m if name not in maxima else np.maximum(maxima[name], m)
            if name.endswith("_in"):  # per-token variance of the unscaled stream: first token vs the rest
                norm = name[:-3]
                var = (value * (1.0 if scales[norm] is None else scales[norm])).var(axis=-1)
                for key, part in ((f"{norm}_var_first", var[:1]), (f"{norm}_var_rest", var[1:])):
                    if part.size:
                        maxima[key] = np.maximum(maxima.get(key, np.zeros(1)), part.max(keepdims=True))
    return maxima


def _floor(values: np.ndarray) -> np.ndarray:
    return np.maximum(values, 1e-6 * max(float(values.max()), 1e-12))


def _scale_rows(dense: Dense, factor: np.ndarray) -> Dense:
    return Dense(dense.kernel * factor[:, None], dense.bias)


def _scale_cols(dense: Dense, factor: np.ndarray) -> Dense:
    return Dense(dense.kernel * factor[None, :], dense.bias * factor)


def residual_scales(stats: dict[str, np.ndarray], streams: int, power: float = 1.0) -> list[np.ndarray]:
    """s_k for each LayerNorm input stream k (see module docstring)."""
    scales = []
    for k in range(streams):
        m = _floor(stats[f"norm{k}_in"])
        scales.append(np.maximum(m / np.median(m), 1.0) ** power)
    return scales


def rescale_residual(w: EncoderWeights, stats: dict[str, np.ndarray], power: float = 1.0) -> EncoderWeights:
    if any(n.scale is not None for n in norms(w)):
        raise ValueError("rescale_residual applies to weights whose streams are not rescaled yet")
    s = residual_scales(stats, 2 * len(w.blocks) + 1, power)
    last = len(s) - 1
    inv = [1.0 / x for x in s]

    projected = w.projection is not None  # stream 1 is written by the projection, not by LayerNorm 0

    def norm(n: Norm, k: int) -> Norm:
        out = inv[k + 1] if k < last and not (projected and k == 0) else 1.0
        return replace(n, gamma=n.gamma * out, beta=n.beta * out, scale=s[k])

    blocks = []
    for i, b in enumerate(w.blocks):
        a, f = 2 * i + 1, 2 * i + 2  # the streams after attention and after the FFN
        blocks.append(Block(
            query=_scale_rows(b.query, s[a]), key=_scale_rows(b.key, s[a]), value=_scale_rows(b.value, s[a]),
            attention_output=_scale_cols(b.attention_output, inv[a]), attention_norm=norm(b.attention_norm, a),
            intermediate=_scale_rows(b.intermediate, s[f]), output=_scale_cols(b.output, inv[f]),
            output_norm=norm(b.output_norm, f)))
    return w.with_note(
        f"residual rescale (power {power}, max factor {max(float(x.max()) for x in s):.1f})",
        word=w.word * inv[0], position=w.position * inv[0],
        token_type=None if w.token_type is None else w.token_type * inv[0],
        embedding_norm=norm(w.embedding_norm, 0), blocks=tuple(blocks),
        projection=_scale_cols(w.projection, inv[1]) if projected else None)


def split_first_token(w: EncoderWeights, stats: dict[str, np.ndarray], ratio: float = 4.0) -> EncoderWeights:
    """Keep the first token apart (``EncoderWeights.split_first``) when, before some
    LayerNorm, its variance is more than ``ratio`` times larger or smaller than every other
    token's (see the module docstring)."""
    split = []
    for k in range(2 * len(w.blocks) + 1):
        first, rest = float(stats[f"norm{k}_var_first"][0]), float(stats[f"norm{k}_var_rest"][0])
        if first > ratio * rest or rest > ratio * first:
            split.append(k)
    if not split:
        return w
    return w.with_note(f"first token kept apart (its variance is off the others' before LayerNorms {split})",
                       split_first=True)


def group_ffn_neurons(w: EncoderWeights, stats: dict[str, np.ndarray], ratio: float = 4.0,
                      max_groups: int = 3) -> EncoderWeights:
    """Group each block's FFN neurons by their activation maximum m_j: group
    min(floor(log_ratio(m_j / median(m))), max_groups - 1) (clipped at 0), so a group spans at
    most ``ratio`` x except the last. Blocks whose neurons all sit within ``ratio`` x of the
    median keep one group."""
    blocks, counts = [], []
    for i, b in enumerate(w.blocks):
        m = _floor(stats[f"ffn{i}"])
        level = np.clip(np.floor(np.log(m / np.median(m)) / np.log(ratio)), 0, max_groups - 1).astype(int)
        groups = tuple(np.flatnonzero(level == g) for g in np.unique(level))
        blocks.append(replace(b, ffn_groups=groups if len(groups) > 1 else ()))
        counts.append([len(g) for g in groups] if len(groups) > 1 else [])
    if not any(counts):
        return w
    return w.with_note(f"FFN neurons grouped by range (neurons per group, per layer: {counts})", blocks=tuple(blocks))


def equalize_qk(w: EncoderWeights, stats: dict[str, np.ndarray]) -> EncoderWeights:
    blocks = []
    for i, b in enumerate(w.blocks):
        a = np.sqrt(_floor(stats[f"k{i}"]) / _floor(stats[f"q{i}"]))
        blocks.append(replace(b, query=_scale_cols(b.query, a), key=_scale_cols(b.key, 1.0 / a)))
    return w.with_note("query/key equalization", blocks=tuple(blocks))


def _smooth_factor(act_max: np.ndarray, weight_rows_max: np.ndarray, alpha: float) -> np.ndarray:
    t = _floor(act_max) ** alpha / _floor(weight_rows_max) ** (1.0 - alpha)
    return t / np.exp(np.mean(np.log(t)))  # geometric mean 1: only the ratios matter


def equalize_value(w: EncoderWeights, stats: dict[str, np.ndarray], alpha: float = 0.5) -> EncoderWeights:
    blocks = []
    for i, b in enumerate(w.blocks):
        t = _smooth_factor(stats[f"ctx{i}"], np.abs(b.attention_output.kernel).max(axis=1), alpha)
        blocks.append(replace(b, value=_scale_cols(b.value, 1.0 / t),
                              attention_output=_scale_rows(b.attention_output, t)))
    return w.with_note(f"value/attention-output smoothing (alpha {alpha})", blocks=tuple(blocks))


def smooth_norm_outputs(w: EncoderWeights, stats: dict[str, np.ndarray], alpha: float) -> EncoderWeights:
    """SmoothQuant for every LayerNorm -> Dense pair (stats of the current weights' taps)."""
    def readers_max(denses: list[Dense]) -> np.ndarray:
        return np.max([np.abs(d.kernel).max(axis=1) for d in denses], axis=0)

    def smooth(n: Norm, k: int, denses: list[Dense]):
        t = _smooth_factor(stats[f"norm{k}_dense"], readers_max(denses), alpha)
        gamma = n.gamma if n.dense_gamma is None else n.dense_gamma
        beta = n.beta if n.dense_beta is None else n.dense_beta
        return replace(n, dense_gamma=gamma / t, dense_beta=beta / t), t

    blocks = list(w.blocks)
    embedding_norm, projection = w.embedding_norm, w.projection
    if projection is not None:  # LayerNorm 0 -> the projection; the projection's output feeds block 0
        embedding_norm, t = smooth(embedding_norm, 0, [projection])
        projection = _scale_rows(projection, t)
    for i, b in enumerate(blocks):
        readers = [b.query, b.key, b.value]
        if i == 0 and projection is not None:
            t = np.ones(b.query.kernel.shape[0], np.float32)
        elif i == 0:
            embedding_norm, t = smooth(embedding_norm, 0, readers)
        else:
            prev = blocks[i - 1]
            out_norm, t = smooth(prev.output_norm, 2 * i, readers)
            blocks[i - 1] = replace(prev, output_norm=out_norm)
        b = replace(blocks[i], query=_scale_rows(b.query, t), key=_scale_rows(b.key, t),
                    value=_scale_rows(b.value, t))
        att_norm, t2 = smooth(b.attention_norm, 2 * i + 1, [b.intermediate])
        blocks[i] = replace(b, attention_norm=att_norm, intermediate=_scale_rows(b.intermediate, t2))
    return w.with_note(f"SmoothQuant LayerNorm->Dense (alpha {alpha})", embedding_norm=embedding_norm,
                       blocks=tuple(blocks), projection=projection)
