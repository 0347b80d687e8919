"""The unified social credit code (统一社会信用代码, GB 32100-2015): 18 characters, the last a check.

A typo in a unit's code would attach hazards and, later, credit scores to the wrong
organisation, so the code is checked the way the standard defines it, not by length.
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""The 31 characters the standard allows (no I, O, Z, S, V)."""
WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
REGISTRARS = "123456789ABCDEFGNY"
"""First character: the registration authority (organisation, civil affairs, business, …)."""


class CreditCodeError(ValueError):
    """The code is not a valid GB 32100 code; the message says what is wrong."""


def check_character(first17: str) -> str:
    total = sum(ALPHABET.index(ch) * w for ch, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def validate(code: str) -> str:
    """The code normalised (upper case, no spaces) or CreditCodeError with the reason."""
    c = code.strip().upper()
    if len(c) != 18:
        raise CreditCodeError(f"a credit code has 18 characters, not {len(c)}")
    bad = sorted({ch for ch in c if ch not in ALPHABET})
    if bad:
        raise CreditCodeError(f"a credit code cannot contain {''.join(bad)!r}")
    if c[0] not in REGISTRARS:
        raise CreditCodeError(f"{c[0]!r} is not a registration authority code")
    if not c[2:8].isdigit():
        raise CreditCodeError("characters 3-8 must be the administrative division code (digits)")
    want = check_character(c[:17])
    if c[17] != want:
        raise CreditCodeError(f"check character is {c[17]!r}; the first 17 characters give {want!r}")
    return c
