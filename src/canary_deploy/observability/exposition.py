"""Prometheus's text exposition format (version 0.0.4): metric families in, text out.

Pure and dependency-free: ten lines of format are not worth a runtime dependency; the
tests hold the output to `prometheus_client`'s own parser."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class Sample:
    """One line: the family's name plus `suffix` (`_bucket`, `_sum`, `_count`), labels,
    value."""

    labels: Mapping[str, str]
    value: float
    suffix: str = ""


@dataclass(frozen=True)
class Family:
    """A metric family: its HELP and TYPE lines, then its samples. A counter's name ends
    in `_total`, as Prometheus's naming rules ask."""

    name: str
    kind: Kind
    help: str
    samples: Sequence[Sample]


def render(families: Iterable[Family]) -> str:
    """The text of the families, in order; a family without samples is left out.

    >>> print(render([Family("x_total", "counter", "Xs.", [Sample({"g": 'a"b'}, 3)])]), end="")
    # HELP x_total Xs.
    # TYPE x_total counter
    x_total{g="a\\"b"} 3
    """
    lines: list[str] = []
    for family in families:
        if not family.samples:
            continue
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        lines += [_line(family.name, sample) for sample in family.samples]
    return "".join(f"{line}\n" for line in lines)


def histogram(
    labels: Mapping[str, str], buckets: Sequence[tuple[float, int]], total: float
) -> list[Sample]:
    """A histogram's samples from cumulative `(le, count)` buckets, +Inf last, and the sum
    of the observations: `_bucket` per edge, `_sum`, `_count` (the +Inf bucket)."""
    samples = [Sample({**labels, "le": format_value(le)}, n, "_bucket") for le, n in buckets]
    count = buckets[-1][1] if buckets else 0
    return [*samples, Sample(labels, total, "_sum"), Sample(labels, count, "_count")]


def format_value(value: float) -> str:
    """Integers without a decimal point, infinities as Prometheus spells them.

    >>> format_value(3.0), format_value(0.25), format_value(float("inf")), format_value(1e-05)
    ('3', '0.25', '+Inf', '1e-05')
    """
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _line(name: str, sample: Sample) -> str:
    labels = ",".join(f'{key}="{_escape_label(value)}"' for key, value in sample.labels.items())
    shown = f"{{{labels}}}" if labels else ""
    return f"{name}{sample.suffix}{shown} {format_value(sample.value)}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
