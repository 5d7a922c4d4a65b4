"""Numbers from URLs and headers: ASCII digits of a sane length, or None (never an exception, never a 500)."""

from __future__ import annotations

# 19 digits hold any 63-bit value; longer ones would only be refused later (and past 4 300 digits
# int() itself raises).
MAX_DIGITS = 19


# Every control character but tab, newline and carriage return (C0, DEL and C1).
CONTROL_CHARACTERS = frozenset(chr(c) for c in (*range(0x00, 0x20), *range(0x7F, 0xA0))) - {"\t", "\n", "\r"}


def control_character_in(text: str) -> str | None:
    """The first control character in `text` (tab and newlines allowed), as `U+XXXX`, or None."""
    for char in text:
        if char in CONTROL_CHARACTERS:
            return f"U+{ord(char):04X}"
    return None


def whole_number(text: str | None, *, max_digits: int = MAX_DIGITS) -> int | None:
    """`text` as a non-negative integer when it is 1..max_digits ASCII digits, else None.

    str.isdigit() alone also accepts digits like '²' or '٣', which int() then refuses or reads.
    """
    if text is None or not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)
