"""Benchmark metrics, each equal to its official scorer (formulas and quirks: ../shared/spec/PROTOCOLS.md),
one module per benchmark: ``mapfree`` (+ ``submission``), ``relpose``, ``rra``, ``aachen``.

Every official quirk is reproduced by default; a corrected variant only exists behind an explicit option
and its output keys are labelled (suffix `` [corrected]`` / `` [torch]``).
"""
