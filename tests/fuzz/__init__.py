"""Fuzz targets (issue 16): one function per input format, raising only on a bug.

:mod:`tests.fuzz.targets` lists them; ``tools/fuzz.py`` runs them under atheris
(coverage-guided, libFuzzer) for long runs, and ``tests/fuzz/test_targets.py`` runs
each one briefly in the suite.
"""
