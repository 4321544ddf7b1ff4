"""JSON documents that strict parsers and jq read whole, whatever the image's file names.

A file name is bytes; one that is not UTF-8 reaches Python decoded with surrogateescape
(each undecodable byte 0xHH as the lone surrogate U+DCHH), and json.dumps would write
that as "\\udcHH", which strict parsers refuse and jq turns into U+FFFD, losing the name.

The representation chosen (README, "Names that are not UTF-8"): each undecodable byte
is written as the four characters `\\xHH` (so b"caf\\xe9" becomes "caf\\\\xe9" in JSON,
`caf\\xe9` once parsed); and where such a string is the value of an object's field, a
sibling field `<field>_b64` follows it with the name's exact bytes in base64. Names that
are UTF-8 are unchanged and get no sibling, so documents of ordinary images are exactly
as before. Strings in lists and free text (messages) carry the escaped form only.
"""

from __future__ import annotations

import base64

__all__ = ["safe", "escape", "is_clean", "exact"]


def is_clean(text: str) -> bool:
    """True when `text` holds no lone surrogate (so it encodes as UTF-8)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escape(text: str) -> str:
    """`text` with each surrogateescape'd byte as `\\xHH` (any other lone surrogate,
    which no file name produces, as `\\uXXXX`)."""
    if is_clean(text):
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def _raw(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "surrogateescape")).decode("ascii")


def safe(value: object) -> object:
    """`value` (JSON-ready: dicts, lists, tuples, scalars) with every string made UTF-8
    as described above; a new object wherever something changed."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        out: dict = {}
        for key, item in value.items():
            name = escape(key) if isinstance(key, str) else key
            out[name] = safe(item)
            if isinstance(item, str) and not is_clean(item):
                try:
                    out[f"{name}_b64"] = _raw(item)
                except UnicodeEncodeError:  # a surrogate no file name produces
                    pass
        return out
    if isinstance(value, (list, tuple)):
        return [safe(item) for item in value]
    return value


def exact(obj: dict, key: str) -> str:
    """The exact name behind `obj[key]` of a document written as above (Python's
    surrogateescape form when it is not UTF-8), for a reader of minify's own output."""
    raw = obj.get(f"{key}_b64")
    if isinstance(raw, str):
        return base64.b64decode(raw).decode("utf-8", "surrogateescape")
    return str(obj[key])
