"""Reading a user's text file: UTF-8 or a one-line error naming the file, line and byte."""

from __future__ import annotations

from pathlib import Path

from .errors import DataError, UserError


def decode_utf8(data: bytes, where: str, error: type[UserError] = DataError) -> str:
    """``data`` as text (a leading BOM dropped); invalid UTF-8 raises ``error`` naming
    ``where`` (a file), the line and the byte offset of the first bad byte."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise error(f"{where} line {line} is not valid UTF-8 (byte offset {e.start}); "
                    "re-encode the file as UTF-8") from None
    return text.removeprefix("\ufeff")


def read_utf8(path: str | Path, error: type[UserError] = DataError) -> str:
    """The text of a UTF-8 file, as :func:`decode_utf8`."""
    return decode_utf8(Path(path).read_bytes(), str(path), error)
