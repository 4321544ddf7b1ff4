"""minify benchmarks: `python -m bench` (or `make bench`).

Four measurements, each against a target from the performance issue:
tracer overhead (overhead.py), build time against an untraced baseline (buildtime.py),
output size against the kept files (size.py), and scale on generated images (scale.py).
Results go to bench/results.json and bench/RESULTS.md (results.py).
"""
