"""``python -m fused_convt_full.bench``: see cli.py and benchmarks/README.md."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
