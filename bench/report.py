"""What a scenario hands back: a table to print, checks against the targets, data to save."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Check:
    """One target from issue 6: what was measured against what it should be."""

    name: str
    measured: float | None
    goal: str
    met: bool | None  # None: could not be measured in this run
    note: str = ""

    def line(self) -> str:
        verdict = {True: "MET", False: "NOT MET", None: "n/a"}[self.met]
        value = "-" if self.measured is None else f"{self.measured:.3g}"
        note = f"  ({self.note})" if self.note else ""
        return f"  [{verdict:>7}] {self.name}: {value} (goal {self.goal}){note}"


def check(name: str, measured: float | None, goal: str, ok: Any, note: str = "") -> Check:
    """A ``Check`` whose verdict is ``ok(measured)``, or n/a when nothing was measured."""
    return Check(name, measured, goal, None if measured is None else bool(ok(measured)), note)


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def render(self) -> str:
        cells = [self.columns] + [[_cell(v) for v in row] for row in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = [self.title]
        for n, row in enumerate(cells):
            lines.append(
                "  "
                + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=False)))
            )
            if n == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        return "\n".join(lines)


@dataclass
class Section:
    """A scenario's outcome: tables for stdout, checks, notes, and JSON-ready data."""

    name: str
    tables: list[Table] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        parts = [f"== {self.name} =="] + [t.render() for t in self.tables]
        parts += [f"  note: {n}" for n in self.notes]
        if self.checks:
            parts.append("targets:\n" + "\n".join(c.line() for c in self.checks))
        return "\n\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"notes": self.notes, "checks": [asdict(c) for c in self.checks], **self.data}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}" if value < 100 else f"{value:.0f}"
    return str(value)


def times(value: float | None) -> str | None:
    """A ratio formatted for a table: ``2.31x``."""
    return None if value is None else f"{value:.2f}x"


def round_floats(data: Any, digits: int = 4) -> Any:
    """``data`` with every float rounded to ``digits`` significant digits (small JSON files)."""
    if isinstance(data, float):
        return float(f"{data:.{digits}g}")
    if isinstance(data, dict):
        return {k: round_floats(v, digits) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [round_floats(v, digits) for v in data]
    return data


def pick_median_run(runs: Sequence[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """The run whose ``key`` is the median among the runs that have it (for its latency CDF)."""
    usable = sorted((r for r in runs if r.get(key) is not None), key=lambda r: r[key])
    return usable[len(usable) // 2] if usable else None
