"""Baselines: recording, sealing, selecting and loading the committed references."""
