"""The seed lists of a many-seeds run (``TrainConfig.seeds``, ``vsm train --seeds``): parsing
"A-B" / "a,b,c", checking, and the shortest text for a list."""

from __future__ import annotations

import re

__all__ = ["checked_seeds", "format_seeds", "parse_seeds"]

_SEED_PART = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", re.ASCII)


def parse_seeds(text: str) -> tuple[int, ...]:
    """The seeds of ``--seeds``: "A-B" (A to B inclusive), "a,b,c", or both ("0-4,7").

    Raises:
        ValueError: empty text, a part that is not a non-negative int or an A-B range with
            A ≤ B, or a seed given twice (the message starts with "seeds").
    """
    if not isinstance(text, str):
        raise TypeError(
            f"seeds: expected a string like '0-9' or '0,3,7', got {type(text).__name__}"
        )
    out: list[int] = []
    for part in text.split(","):
        m = _SEED_PART.fullmatch(part)
        if m is None:
            raise ValueError(f"seeds: expected non-negative ints 'A-B' or 'a,b,c', got {text!r}")
        a = int(m[1])
        b = int(m[2]) if m[2] is not None else a
        if b < a:
            raise ValueError(f"seeds: empty range {part.strip()!r} in {text!r} (expected A ≤ B)")
        out.extend(range(a, b + 1))
    return checked_seeds(out)


def checked_seeds(seeds: object) -> tuple[int, ...]:
    """``seeds`` as a non-empty tuple of distinct non-negative ints (a string is parsed)."""
    if isinstance(seeds, str):
        return parse_seeds(seeds)
    if not isinstance(seeds, tuple | list | range):
        raise TypeError(
            f"seeds: expected a tuple of ints or a string like '0-9', got {type(seeds).__name__}"
        )
    out = tuple(seeds)
    for s in out:
        if isinstance(s, bool) or not isinstance(s, int):
            raise TypeError(f"seeds: expected ints, got {type(s).__name__} {s!r}")
        if s < 0:
            raise ValueError(f"seeds: expected non-negative seeds, got {s}")
    if not out:
        raise ValueError("seeds: expected at least one seed, got none")
    dup = sorted({s for s in out if out.count(s) > 1})
    if dup:
        raise ValueError(f"seeds: seed(s) {dup} given more than once")
    return out


def format_seeds(seeds: tuple[int, ...]) -> str:
    """The shortest ``--seeds`` text for ``seeds``: "0-9" for a run of consecutive ints, else
    "a,b,c" with consecutive runs of three or more as ranges ("0-4,7")."""
    parts: list[str] = []
    i = 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{seeds[i]}-{seeds[j]}")
        else:
            parts.extend(str(s) for s in seeds[i : j + 1])
        i = j + 1
    return ",".join(parts)
