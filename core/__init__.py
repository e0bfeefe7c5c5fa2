"""Shared building blocks of StemBlend: constants, audio I/O, errors, metrics, library shims."""
