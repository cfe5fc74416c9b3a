"""Tables the handlers write: CSV rows, mean and standard deviation summaries, Markdown."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from bundle._files import atomic_path

__all__ = ["summarise", "markdown_table", "write_csv"]


def summarise(rows: Sequence[dict], columns: Sequence[str]) -> list[dict]:
    """Mean and (population) standard deviation of each numeric column over ``rows``."""
    out = []
    for col in columns:
        values = [float(r[col]) for r in rows]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        out.append({"metric": col, "mean": mean, "std": std, "n": len(values)})
    return out


def markdown_table(summary: Sequence[dict]) -> str:
    """The summary as a Markdown table, ``mean ± std`` to 4 decimals."""
    lines = ["| metric | mean ± std | n |", "|---|---|---|"]
    lines += [f"| {s['metric']} | {s['mean']:.4f} ± {s['std']:.4f} | {s['n']} |" for s in summary]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: Sequence[dict]) -> None:
    """Write ``rows`` (dicts with the same keys) atomically; floats with 6 significant digits."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
