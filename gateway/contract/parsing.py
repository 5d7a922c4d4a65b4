"""The contract's values as text: numbers from URLs and headers (ASCII digits of a sane length, or None:
never an exception, never a 500), and the characters no text a client sends may hold."""

from __future__ import annotations

# 19 digits hold any 63-bit value; longer ones would only be refused later (and past 4 300 digits
# int() itself raises).
MAX_DIGITS = 19


# Every control character but tab, newline and carriage return (C0, DEL and C1), and the bidirectional
# embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), which make text read otherwise
# than it is stored.
CONTROL_CHARACTERS = frozenset(
    chr(c) for c in (*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A))
) - {"\t", "\n", "\r"}
# Characters that show nothing and are not white space to str.strip(): zero-width space, joiners, word
# joiner, byte-order mark, Mongolian vowel separator, soft hyphen. A text of only these is empty.
INVISIBLE = str.maketrans(dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff\u180e\u00ad"))


def blank(text: str) -> bool:
    """Whether `text` shows nothing: only white space and invisible characters (none of them ASCII, so
    an ASCII text, most prompts, is not copied to find out)."""
    if text.isascii():
        return not text.strip()
    return not text.translate(INVISIBLE).strip()


def control_character_in(text: str) -> str | None:
    """The first control or bidi-override character in `text` (tab and newlines allowed), as
    `U+XXXX`, or None."""
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


def canonical_number(text: str | None, *, max_digits: int = MAX_DIGITS) -> int | None:
    """`whole_number`, and only in its one canonical spelling (no leading zero): what a signature covers
    must be the very text it was made over."""
    number = whole_number(text, max_digits=max_digits)
    return number if number is not None and str(number) == text else None
