"""The exceptions ddad_rt raises for problems the user can fix, one class each.

``InputError`` (a ``ValueError``) is a bad option, input value or file given by the caller,
whether the engine (C++) or the Python code finds it; ``BundleError`` a missing, malformed
or tampered bundle; ``EngineError`` a device or precision that cannot be had. The command
line exits 2 for these and 3, with a traceback, for anything else: a plain ``ValueError``
from deeper down is a bug to report, not a usage error to hide.
"""

from ddad_rt._core import BundleError, EngineError, InputError

__all__ = ["BundleError", "EngineError", "InputError"]
