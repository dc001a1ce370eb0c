"""Email addresses as account names: one spelling per address, no lookalikes.

`alice@example.com` with a zero-width space, in fullwidth letters or with a Cyrillic `а`
registered as three more accounts that read as alice's (issue 16). An address is NFKC-
normalised (fullwidth and other compatibility forms become their plain letters, so they
name the same account) and lower-cased; an address that still carries an invisible or
control character, or mixes scripts within its local part or within one domain label
(Latin with Cyrillic, Greek, ...), is refused at registration. Han, Hiragana and Katakana
count as one script (Japanese mixes them); digits and punctuation belong to every script.
Not caught: a whole-script lookalike (every letter Cyrillic) -- that needs Unicode's
confusables table; such an address is at least not mixed with the Latin one it imitates."""

from __future__ import annotations

import unicodedata

from api.errors import ApiError

# Control, format (zero-width space/joiners, BOM, bidi marks), surrogate, private-use,
# unassigned, and every separator (any space).
_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"}
_JAPANESE = {"CJK", "HIRAGANA", "KATAKANA"}


def canonical_email(raw: str) -> str:
    """The one spelling of an address: NFKC, trimmed, lower-cased (login and register)."""
    return unicodedata.normalize("NFKC", raw).strip().lower()


def _script(char: str) -> str | None:
    """The script of a letter, from its Unicode name ("CYRILLIC SMALL LETTER A"); None for
    what every script shares (digits, punctuation, symbols)."""
    if not unicodedata.category(char).startswith("L"):
        return None
    script = unicodedata.name(char, "UNKNOWN").split(" ")[0].split("-")[0]
    return "CJK" if script in _JAPANESE else script


def _mixed(part: str) -> bool:
    return len({s for c in part if (s := _script(c)) is not None}) > 1


def registrable_email(raw: str) -> str:
    """The canonical address, or 400 INVALID_EMAIL when it could pass for another."""
    email = canonical_email(raw)
    bad = [c for c in email if unicodedata.category(c) in _INVISIBLE]
    if bad:
        raise ApiError(
            400,
            "INVALID_EMAIL",
            "Email contains invisible or control characters",
            {"characters": [f"U+{ord(c):04X}" for c in bad[:5]]},
        )
    local, _, domain = email.rpartition("@")
    if _mixed(local) or any(_mixed(label) for label in domain.split(".")):
        raise ApiError(
            400, "INVALID_EMAIL", "Email mixes scripts (a lookalike of another address?)"
        )
    return email
