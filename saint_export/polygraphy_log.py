"""Polygraphy's logger, quiet: our own tables and one-line errors report results."""

from __future__ import annotations


def quiet_polygraphy(severity: str = "CRITICAL") -> None:
    """Polygraphy's logger at ``severity``, without colours: our own tables and errors report results."""
    from polygraphy.logger import G_LOGGER

    G_LOGGER.colors = False
    G_LOGGER.module_severity = getattr(G_LOGGER, severity)
