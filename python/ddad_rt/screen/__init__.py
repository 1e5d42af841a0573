"""Batch screening of image archives: ``ddad-rt screen`` and :func:`screen`.

Example:
    >>> from ddad_rt.screen import ScreenOptions, screen
    >>> summary = screen("bundle/", ["/archive/2026"], "screen_out",
    ...                  ScreenOptions(specificity=0.95))             # doctest: +SKIP
    >>> print(summary.text())                                         # doctest: +SKIP
"""

from ddad_rt.screen.run import ScreenOptions, ScreenSummary, default_split, screen

__all__ = ["ScreenOptions", "ScreenSummary", "default_split", "screen"]
