"""Secrets never leave the process: one function, :func:`redact`, applied wherever text is written.

What counts as a secret: the user-info part of a URL (``http://user:KEY@host`` ->
``http://***@host``), the value of any option, query parameter or mapping key whose name ends in
``api_key``, ``token``, ``secret``, ``password`` and the like (``api_key=sk-1`` -> ``api_key=***``),
and ``Bearer`` tokens. The store applies it to every record and invocation it writes or reads, the
leaderboard and report to what they render, the CLI to every message it prints. A job's identity
hashes the options as given, so a redacted record still names the same job.
"""

from __future__ import annotations

import re

MASK = "***"

# a key names a secret when it ends in one of these words (so `max_tokens` or `n_passwords` do not)
_SECRET_KEY = re.compile(
    r"(?:^|[_.-])(?:api[_-]?key|apikey|key[_-]?secret|access[_-]?key|private[_-]?key|secret[_-]?key|secret|token|"
    r"access[_-]?token|auth[_-]?token|refresh[_-]?token|password|passwd|pwd|credentials?|auth|authorization)$",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/?#'\"`]*@)")
# NAME=VALUE or NAME: VALUE (options, query strings, environment assignments, JSON-ish text)
_KEY_SEP = re.compile(r"(?P<key>[A-Za-z_][\w.-]*)(?P<quote>['\"]?)(?P<sep>[ \t]*[=:][ \t]*)")
_VALUE = re.compile(r"\"[^\"]*\"|'[^']*'|[^\s,&;'\"`)\]}]+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")


def is_secret_key(name) -> bool:
    return isinstance(name, str) and bool(_SECRET_KEY.search(name.strip()))


def _redact_text(text: str) -> str:
    text = _BEARER.sub(lambda m: f"{m[1]} {MASK}", text)
    text = _URL_USERINFO.sub(lambda m: m["scheme"] + MASK + "@", text)
    out, pos = [], 0
    for m in _KEY_SEP.finditer(text):
        if m.start() < pos or not is_secret_key(m["key"]):
            continue
        value = _VALUE.match(text, m.end())
        if value is None or value[0].strip("'\"") == MASK:
            continue
        quote = value[0][0] if value[0][:1] in "'\"" and len(value[0]) > 1 else ""
        out += [text[pos:m.end()], quote, MASK, quote]
        pos = value.end()
    return "".join(out) + text[pos:]


def redact(value):
    """``value`` with every secret masked: strings, and dicts / lists / tuples of them, recursively
    (a mapping's value is masked whole when its key names a secret). Other values pass unchanged."""
    if isinstance(value, str):
        return _redact_text(value) if value else value
    if isinstance(value, dict):
        return {k: (MASK if is_secret_key(k) and v not in (None, "") else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact(v) for v in value)
    return value


__all__ = ["redact", "is_secret_key", "MASK"]
