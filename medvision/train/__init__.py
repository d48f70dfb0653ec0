"""Training layer: the loop, strategies, optimizers and losses, the feature cache, run directories, tracking,
the experiment runner, sweeps and the frozen-feature baselines.

May import ``core``, ``config``, ``data``, ``metrics``, ``plots`` and ``models``.
"""
