"""Storage URLs with their passwords masked, for every message and file: no Optuna or database driver needed."""
from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote

from search.config import JOURNAL_PREFIX

# Query parameters that carry a password (libpq accepts ?password=...); the value runs on over any '&...' piece
# without '=' (an unencoded '&' in the password), so that no part of it shows.
PASSWORD_QUERY = re.compile(r"(?i)(pass(?:word|wd)?=)([^&]*(?:&[^&=]*(?=&|$))*)")

_QUERY_START = re.compile(r"(?i)[?&]pass(?:word|wd)?=")  # a password in a query, not just any "...pass=" word
_MASKED = re.compile(r"\*\*\*(?:[\s'\"),;]|$)")  # a value masked whole, where the text goes on after it


def password_span(url: str) -> tuple[int, int] | None:
    """Where url's password lies, as (start, end); None when it has none. SQLAlchemy ends a password at its first
    '@'; the span runs on to the last '@' before the query, so that a password holding an unencoded '@' (which
    check_url refuses) is hidden whole. Without a scheme, all before the last '@' may be a secret."""
    scheme_end = url.find("://")
    if scheme_end < 0:
        at = url.rfind("@")
        return (0, at) if at >= 0 else None
    # SQLAlchemy's user name runs up to a ':' (a password follows) or a '/'.
    user_end = min((i for i in (url.find(":", scheme_end + 3), url.find("/", scheme_end + 3)) if i >= 0),
                   default=len(url))
    first_at = url.find("@", user_end)
    if not url.startswith(":", user_end) or first_at < 0:  # a user name alone, or host:port
        return None
    query = url.find("?", first_at)
    return user_end + 1, url.rfind("@", first_at, query if query >= 0 else len(url))


def display_url(url: str) -> str:
    """The URL with any password masked, for printing; also for URLs that do not parse."""
    if url.startswith(JOURNAL_PREFIX):
        return url
    span = password_span(url)
    if span is not None:
        url = url[:span[0]] + "***" + url[span[1]:]
    return PASSWORD_QUERY.sub(r"\1***", url)


def redact(text: str, url: str) -> str:
    """text with the URL and its passwords masked (driver errors may quote either)."""
    text = text.replace(url, display_url(url))
    span = password_span(url)
    secrets = [match.group(2) for match in PASSWORD_QUERY.finditer(url)] + ([url[slice(*span)]] if span else [])
    for value in sorted({form for secret in secrets for form in (secret, unquote(secret))} - {""}, key=len,
                        reverse=True):  # the longest first: a shorter secret may be part of a longer one
        text = text.replace(value, "***")
    # Any other password=... is masked up to the next '&' (its end unknown); one masked above, "***" and then a
    # word's end, is left as it is, or the words after it went too (a URL quoted mid-sentence lost the sentence).
    return PASSWORD_QUERY.sub(lambda found: found[0] if _MASKED.match(found[2]) else found[1] + "***", text)


def secret_arguments(args: Sequence[str]) -> tuple[str, ...]:
    """The command-line arguments that hold a password: a storage URL, typed wherever an argument goes (not a study
    name such as 'bypass=1', which PASSWORD_QUERY alone would take for one)."""
    return tuple(arg for arg in args if ("://" in arg or _QUERY_START.search(arg)) and display_url(arg) != arg)


def masked_as_typed(text: str, url: str) -> str:
    """text with url's passwords masked where they stand as in a URL (':secret@', 'password=secret'): also in the
    URL taken for a path (`score "$URL"`: "...: file not found"), whose '//' and '/./' a path makes '/'. Unlike
    redact, a word that merely equals the password (e.g. 'postgres') is left as written: this runs on every line."""
    span = password_span(url) if "://" in url else None
    if span is not None:
        secret = path_form = url[slice(*span)]
        while (shorter := path_form.replace("//", "/").replace("/./", "/")) != path_form:  # as a path writes it
            path_form = shorter
        for form in {secret, path_form}:
            text = text.replace(f":{form}@", ":***@")
    for found in PASSWORD_QUERY.finditer(url):
        if found[2]:  # an empty one is shown as '***' already (display_url), and would become '******'
            text = text.replace(found[0], found[1] + "***")
    return text
