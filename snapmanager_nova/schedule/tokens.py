"""Small helpers shared by the spec parsers."""

# Longer numbers are never meaningful in a spec, and refusing them early
# keeps int() away from its own limit on huge digit strings.
_MAX_DIGITS = 9


def whole_number(text):
    """Return ``text`` as an int if it is ASCII digits, else None.

    ``str.isdigit`` alone would accept "²" and other Unicode digits that
    ``int`` refuses or that no tenant means.
    """
    if text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS:
        return int(text)
    return None
