"""How numbers read in the terminal: one place for milliseconds, percents and counts."""

from __future__ import annotations


def ms(seconds: float | None, decimals: int = 0) -> str:
    """A duration in milliseconds; below one, with its significant digits.

    >>> ms(0.0123), ms(0.0123, 1), ms(0.00042), ms(0.0), ms(None)
    ('12 ms', '12.3 ms', '0.42 ms', '0 ms', '-')
    """
    if seconds is None:
        return "-"
    value = seconds * 1000
    if value == 0 or value >= 0.995:
        return f"{value:.{decimals}f} ms"
    return f"{value:.2g} ms"


def plural(count: int, one: str, many: str | None = None) -> str:
    """`1 request`, `2 requests`.

    >>> plural(1, "request"), plural(3, "request"), plural(1, "was", "were")
    ('1 request', '3 requests', '1 was')
    """
    word = one if count == 1 else (many or one + "s")
    return f"{count:,} {word}"
