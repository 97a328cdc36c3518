"""Framework adapters: Lightning, Transformers and Keras callbacks over the carbonlog core.

Each module imports its framework only when imported, behind an availability check whose
error names the pip extra; `_common` holds what they share, and no framework import.
"""
