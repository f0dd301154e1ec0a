"""Results on disk: ``schema`` (columns and version), ``migrate`` (older versions on read),
``results`` (the folder: write, resume, read). The names below are the store's whole surface.
"""
from .migrate import ResultsError
from .results import FINISHED, Results, ResultStore, read_results
from .schema import CELLS_SCHEMA, NODES_SCHEMA, SCHEMA_VERSION, STEPS_SCHEMA, conform, node_row

__all__ = ["CELLS_SCHEMA", "FINISHED", "NODES_SCHEMA", "SCHEMA_VERSION", "STEPS_SCHEMA", "ResultStore",
           "Results", "ResultsError", "conform", "node_row", "read_results"]
