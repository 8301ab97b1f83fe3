"""Reading delimited files with one-line errors that name the file and the problem."""

from __future__ import annotations

import pandas as pd

from .errors import DataError


def read_table(path, sep=",", required=(), **kwargs) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, sep=sep, **kwargs)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: malformed table ({first})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}")
    if frame.empty:
        raise DataError(f"{path}: no rows")
    return frame
