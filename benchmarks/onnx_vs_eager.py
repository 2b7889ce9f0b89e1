"""Eager PyTorch vs onnxruntime on the CPU, for the generators of example specs.

    python benchmarks/onnx_vs_eager.py [--specs examples/quickstart.yaml examples/cyclegan_like.yaml]
                                       [--sizes 512 1024] [--threads 2] [--repeats 3]

Builds each spec's generator (random weights: speed does not depend on them), exports it
with gancr.inference.export, and times one image of each size: the best of ``--repeats`` runs after a
warm-up, with torch and onnxruntime given the same number of threads. Prints a Markdown
table (the one in docs/deploying.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import gancr
from gancr.inference.export import export_onnx


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", nargs="+", default=["examples/quickstart.yaml", "examples/cyclegan_like.yaml"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[512, 1024])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    print(f"torch {torch.__version__} ({args.threads} threads), onnxruntime {ort.__version__}")
    print("| generator | size | eager PyTorch (s) | onnxruntime (s) | speed-up | max abs diff |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for spec_path in args.specs:
            spec = gancr.load_spec(spec_path)
            generator = gancr.build(spec).generator.eval()
            path = Path(tmp) / (Path(spec_path).stem + ".onnx")
            export_onnx(generator, path, check=False)
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            for size in args.sizes:
                x = torch.rand(1, 3, size, size)
                with torch.no_grad():
                    eager = best_of(lambda: generator(x), args.repeats)
                    want = generator(x)
                feed = {"image": x.numpy()}
                onnx_time = best_of(lambda: session.run(None, feed), args.repeats)
                diff = float((torch.from_numpy(session.run(None, feed)[0]) - want).abs().max())
                print(f"| {Path(spec_path).stem} | {size}x{size} | {eager:.2f} | {onnx_time:.2f} | "
                      f"{eager / onnx_time:.2f}x | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
