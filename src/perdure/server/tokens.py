"""API tokens: where they come from (``$PERDURE_API_TOKENS``, a tokens file) and what
each may do (its scope: ``read`` or ``admin``). Needs no web framework."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigurationError

SCOPES = ("read", "admin")
ENV = "PERDURE_API_TOKENS"


def load_tokens(path: str | None = None) -> dict[str, str]:
    """The API tokens, token -> scope: those of ``$PERDURE_API_TOKENS``
    (``"admin:TOKEN,read:TOKEN2"``) and those of the file at ``path`` (one
    ``SCOPE TOKEN`` per line; blank lines and ``#`` comments are skipped). A malformed
    entry, an unknown scope, a token given twice with two scopes, or a file that
    cannot be read raises ConfigurationError naming the entry or line."""
    tokens: dict[str, str] = {}
    env = os.environ.get(ENV, "")
    entries = [(f"{ENV} entry {n}", item.strip()) for n, item in enumerate(env.split(","), 1)]
    for where, item in entries:
        if not item:
            continue
        scope, sep, token = item.partition(":")
        if not sep:
            raise ConfigurationError(
                f"{where}: {_shown(item)} is not SCOPE:TOKEN; write e.g. "
                f'{ENV}="admin:TOKEN1,read:TOKEN2"'
            )
        _add(tokens, scope.strip(), token.strip(), where)
    if path is not None:
        try:
            lines = Path(path).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read the tokens file {path!r}: {exc}") from None
        for n, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            where = f"tokens file {path!r}, line {n}"
            parts = text.split()
            if len(parts) != 2:
                raise ConfigurationError(
                    f"{where}: expected 'SCOPE TOKEN' (SCOPE is read or admin), got "
                    f"{len(parts)} word(s)"
                )
            _add(tokens, parts[0], parts[1], where)
    return tokens


def check_tokens(tokens: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``tokens`` (token -> scope) after checking each; ConfigurationError."""
    checked: dict[str, str] = {}
    for token, scope in tokens.items():
        _add(checked, scope, token, f"token {_shown(token)}")
    return checked


def _add(tokens: dict[str, str], scope: str, token: str, where: str) -> None:
    if scope not in SCOPES:
        raise ConfigurationError(
            f"{where}: unknown scope {scope!r}; a token's scope is 'read' (GET only) or "
            "'admin' (everything)"
        )
    if not isinstance(token, str) or not token or not _printable(token):
        raise ConfigurationError(
            f"{where}: a token is a non-empty string of printable ASCII without spaces or "
            "commas (generate one: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if tokens.get(token, scope) != scope:
        raise ConfigurationError(f"{where}: this token is given twice, with two scopes")
    tokens[token] = scope


def _printable(token: str) -> bool:
    return all(33 <= ord(c) <= 126 and c != "," for c in token)


def _shown(text: str) -> str:
    """Enough of a token to find it, not enough to use it."""
    return repr(text[:4] + "...") if len(text) > 8 else repr(text[:2] + "...")
