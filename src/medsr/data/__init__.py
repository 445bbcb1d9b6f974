"""Data pipeline: patient-aware manifests (``manifest``), training datasets (``datasets``), downloads.

Submodules are imported where they are used, so ``import medsr.data`` stays light.
"""
