"""Torch side: the model, the padding collate and one deterministic training cell."""
