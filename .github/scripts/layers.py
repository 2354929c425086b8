"""`avfrepo build --plan --format github-matrix` -> [[layer 0 pkgbases], [everything later]].

Layer 0 fans out across runners; later layers depend on it and run after it, in order.
"""

import json
import sys

matrix = json.load(open(sys.argv[1]))
layers = [entry["pkgbases"] for entry in matrix.get("include", [])]
print(json.dumps([layers[0] if layers else [], [b for layer in layers[1:] for b in layer]]))
