"""The plan, from metadata alone: no pixels, no torch, no Ray.

``cells`` (the cartesian product, ids, each cell's batches), ``batching`` (seeded batch
orders and padding geometry), ``policies`` (pad / bucket / accumulate), ``table`` (the
paper's Table 1 and the checks every plan makes), ``memory_model`` and
``memory_calibration`` (planned memory per step, fitted on results), ``preflight`` (the
dataset against the sweep, before anything starts).
"""
