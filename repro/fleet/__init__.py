"""``repro fleet``: every node of a cluster verified on the engine it runs, one matrix.

``node`` writes one node file per node, ``matrix`` reads a folder of them (which nodes
disagree, and with whom), ``exclude`` keeps the bad ones out with the engine's own
mechanism, ``slurm`` and ``k8s`` render the job that runs the nodes.
"""
