"""Training-state checkpoints that restore a run exactly and load with ``weights_only=True``.

``state`` holds the pieces: every random-number generator a process draws from, as plain
tensors and lists, and the atomic save and the safe load of a checkpoint file.
"""
