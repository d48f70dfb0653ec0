"""Layer 0, the core: errors, atomic writes, devices, distributed helpers, provenance.

Imports nothing of medvision but ``medvision.core`` and ``medvision.resources``.
"""
