"""Whether the Hugging Face hub can be reached: a DNS lookup, so an offline machine fails in
milliseconds instead of after minutes of retries."""

from __future__ import annotations

import os
import socket


def _offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def hub_reachable(host: str = "huggingface.co") -> bool:
    """A DNS lookup, so an offline machine fails in milliseconds instead of after minutes of retries."""
    if _offline_env():
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "")
    host = endpoint.split("//")[-1].split("/")[0].split(":")[0] or host
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set, or the hub does not resolve."""
    return _offline_env() or not hub_reachable()
