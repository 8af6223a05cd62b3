"""Probe a user's own training step for nondeterminism: run it repeatedly from one saved
state, fingerprint every module's tensors, and name where the repeats first part."""
