"""Importers: results produced elsewhere, converted into ttscale cells the store can hold.

One module per source format; each offers a pure `convert(...)` (rows in, `CellSpec` and
`ShardOutcome` out) and a reader for its files. The CLI (`ttscale import`) writes the
outcome with the store writer.
"""

IMPORT_FORMATS = ("search-and-learn",)
