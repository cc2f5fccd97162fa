"""mxdoctor: why mail to a domain is stuck, and what to change.

The package follows one pipeline: probe (network) -> Evidence -> analyse (pure) -> Diagnosis -> render.
"""

__version__ = "0.1.0"
