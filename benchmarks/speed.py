"""Speed benchmark: gancr's training step against a hand-written PyTorch reference.

    python benchmarks/speed.py --spec examples/cyclegan_like.yaml --device cpu --batch 1 --size 128

is the same as ``gancr bench speed ...``; see gancr/bench/speed.py and docs/performance.md.
"""

import sys

from gancr.bench.speed import main

if __name__ == "__main__":
    sys.exit(main())
