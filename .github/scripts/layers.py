"""`avfrepo build --plan --format github-matrix` -> [[layer 0 pkgbases], [everything later]].

Layer 0 fans out across runners; later layers depend on it and run after it, in order.
The names end up in job inputs and artifact names: anything that is not a pacman package
name is refused here (exit 1), before any job sees it.
"""

import json
import re
import sys

NAME = re.compile(r"[a-z0-9@_+][a-z0-9@._+-]*")

matrix = json.load(open(sys.argv[1]))
layers = [entry["pkgbases"] for entry in matrix.get("include", [])]
bad = [b for layer in layers for b in layer if not (isinstance(b, str) and NAME.fullmatch(b))]
if bad:
    sys.exit(f"layers.py: not package names: {', '.join(map(repr, bad))}")
print(json.dumps([layers[0] if layers else [], [b for layer in layers[1:] for b in layer]]))
