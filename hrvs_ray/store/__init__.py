"""Results on disk: ``schema`` (columns and version), ``migrate`` (older versions on read),
``results`` (the folder: write, resume, read). The names below are the store's whole surface.
"""
from .migrate import ResultsError
from .results import FINISHED, FIT_FILE, PLAN_FILE, SWEEP_FILE, Results, ResultStore, read_results
from .schema import CELLS_SCHEMA, NODES_SCHEMA, SCHEMA_VERSION, STEPS_SCHEMA, conform, node_row

__all__ = [
    "CELLS_SCHEMA",
    "FINISHED",
    "FIT_FILE",
    "NODES_SCHEMA",
    "PLAN_FILE",
    "ResultStore",
    "Results",
    "ResultsError",
    "SCHEMA_VERSION",
    "STEPS_SCHEMA",
    "SWEEP_FILE",
    "conform",
    "node_row",
    "read_results",
]
