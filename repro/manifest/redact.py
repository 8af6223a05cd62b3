"""Secrets kept out of everything repro records: configs, command lines, git remotes and
environment variables all go through this module.

A value is hidden when its name looks secret (``api_token``, ``--password``,
``Authorization``), whatever it holds and however deep it sits in mappings and lists;
inside any string, credentials in a URL (``https://user:tok@host/x``), a
``name=value`` pair whose name looks secret (``db.password=x``, ``?access_token=x``),
an ``Authorization:`` or ``Bearer`` value and tokens of the well-known shapes
(``ghp_...``, ``hf_...``, ``AKIA...``) are hidden too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "<redacted>"

# Upper-cased name fragments. AUTH, but not AUTHOR/AUTHORS/AUTHORITY (AUTHORIZATION is).
_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|KEY|CREDENTIAL|COOKIE|AUTH(?!OR(?!IZ))"
)
# scheme://userinfo@ inside any text; userinfo ends at the last '@' before the path.
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#]*@[^\s'\"<>]*")
# name=value where the name looks secret: query parameters, hydra overrides, env lines.
_PAIR = re.compile(r"([A-Za-z0-9_.-]+)=([^\s&;,'\"]+)")
# An Authorization header's value (with its scheme), or a bare bearer token.
_AUTHORIZATION = re.compile(
    r"(?i)\b(authorization\s*[:=]\s*(?:(?:bearer|basic|digest|token)\s+)?|bearer\s+)"
    r"([^\s'\",;]+)"
)
# Shapes of common access tokens (GitHub, Hugging Face, AWS key ids, Slack, OpenAI-style).
_TOKEN = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|hf_[A-Za-z0-9]{20,}"
    r"|AKIA[0-9A-Z]{16}|xox[abprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,})"
)


# Names a training config uses for token counts and ids, never for credentials: Hugging Face's
# ``bos_token_id``/``pad_token_ids``, ``max_new_tokens``, ``num_tokens``, ``tokens_per_batch``,
# ``tokenizer_name``, attention's ``key_dim``/``num_key_value_heads``. Hiding them blanks the
# settings a config comparison names as the cause.
_ML_NAME = re.compile(
    r"TOKEN_IDS?(?=_|$)|TOKEN_INDEX(?=_|$)|(?<![A-Z])(?:MAX|MIN|NUM|N)_(?:NEW_)?TOKENS(?=_|$)"
    r"|(?<![A-Z])TOKENS_PER(?=_)|TOKENIZER|(?<![A-Z])KEY_(?:DIM|VALUE_HEADS|HEADS)(?=_|$)"
)


def looks_secret(name: str) -> bool:
    """Whether a key, option or variable name suggests its value is a secret."""
    words = name.upper().replace("-", "_").replace(".", "_")
    return _SECRET_NAME.search(_ML_NAME.sub("_", words)) is not None


def strip_credentials(url: str) -> str:
    """A URL without a user:password or token.

    ``https://user:tok@host/x.git`` -> ``https://host/x.git`` (an http(s) user name can be
    a token); scp-style ``git@host:x`` (no scheme) and ``ssh://git@host/x`` (a user name,
    no secret) are kept as they are. Removed rather than replaced, so that two clones of
    one repository with different credentials record the same remote.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # an unparsable netloc (a stray ']'): hide the part before the '@'
        head, _, tail = url.partition("://")
        return f"{head}://{REDACTED}@{tail.rsplit('@', 1)[-1]}"
    if not parts.scheme or "@" not in parts.netloc:
        return url
    if parts.scheme.lower() in ("http", "https") or password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=host))
    return url


def redact_text(text: str) -> str:
    """A string with every credential this module recognises hidden."""
    text = _URL.sub(lambda m: strip_credentials(m.group(0)), text)
    text = _AUTHORIZATION.sub(lambda m: m.group(1) + REDACTED, text)
    text = _PAIR.sub(
        lambda m: f"{m.group(1)}={REDACTED}" if looks_secret(m.group(1)) else m.group(0), text
    )
    return _TOKEN.sub(REDACTED, text)


def redact(value: Any) -> Any:
    """``value`` with every secret hidden, walking mappings, lists and tuples (as lists)
    at any depth. A list of strings is read as a command line (``["--token", "x"]``)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED if looks_secret(str(key)) else redact(item) for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(item, str) for item in value):
            return redact_argv(list(value))
        return [redact(item) for item in value]
    return value


def redact_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """A config with every secret hidden, at any depth (see ``redact``)."""
    return dict(redact(data))


def redact_argv(argv: list[str]) -> list[str]:
    """A command line with the value of every secret-looking option replaced:
    ``--api-token=abc`` and ``--api-token abc`` both keep the option, not the value; every
    other word is redacted as text (a URL with credentials, ``password=x``)."""
    out: list[str] = []
    hide_next = False
    for word in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
        elif word.startswith("-") and looks_secret(word.split("=", 1)[0]):
            if "=" in word:
                out.append(word.split("=", 1)[0] + "=" + REDACTED)
            else:
                out.append(word)
                hide_next = True
        else:
            out.append(redact_text(word))
    return out
