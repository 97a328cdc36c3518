"""Framework adapters: Lightning, Transformers and Keras callbacks over the carbonlog core.

Each module imports its framework only when imported, behind an availability check.
"""
