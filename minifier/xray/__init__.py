"""`minify xray`: where an image's bytes are and which classic fix removes them.

Read-only and static: the layers come from the engine's overlay2 directories read in
place (`storage`) or from one streamed `docker save` (`source`, `tarstream`), each
reduced to metadata records (`layers`); the analysis is pure
functions over those records (`overlay`, `waste`, `packages`, `rules`, `findings`,
`base`, `dockerfile`, `compare`), composed by `analysis.analyze`; `report` renders.
Never imports observe/sensor/output (tests/unit/test_architecture.py).
"""
