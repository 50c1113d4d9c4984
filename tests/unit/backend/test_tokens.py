"""Token names (backend.tokens): a safe alphabet, so every token can be revoked over the API.

A name is a path segment of ``DELETE /api/v1/tokens/{name}`` as it stands, a query value of
``POST /api/v1/tokens?name=`` as it stands, and one cell of ``lea-backend token list``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from backend.tokens import TOKEN_NAME_PATTERN, Role, TokenStore
from resources.errors import InvalidDocument

SAFE = ["a", "ci", "ci.bot", "erin@lab.example", "Build_42-x", "-dash-first", "_", "@team", "x" * 64, "a..b"]
UNSAFE = [
    "", "team/ci", ".", "..", ".hidden", "a b", "a+b", "a%2Fb", "a&b=c", "a?b", "a#b", "jörg", "x" * 65,
    "\uff46\uff55\uff4c\uff4c",  # fullwidth "full"
    "tab\there", "new\nline", "nul\x00", "rlo\u202e", "zw\u200b", "bom\ufeff", "a\\b", "a:b", "a;b", "'quoted'",
]


@pytest.fixture
def tokens(tmp_path: Path) -> Iterator[TokenStore]:
    store = TokenStore(tmp_path / "lea.db")
    yield store
    store.close()


@pytest.mark.parametrize("name", SAFE)
def test_safe_names_are_accepted_and_survive_a_url_unchanged(tokens: TokenStore, name: str) -> None:
    token = tokens.create(name, Role.VIEWER)
    assert tokens.authenticate(token) is not None and tokens.authenticate(token).name == name  # type: ignore[union-attr]
    assert quote(name, safe="@") == name and quote_plus(name, safe="@") == name  # nothing to escape
    tokens.revoke(name)
    assert tokens.authenticate(token) is None


@pytest.mark.parametrize("name", UNSAFE, ids=repr)
def test_other_names_are_refused_with_the_rule(tokens: TokenStore, name: str) -> None:
    with pytest.raises(InvalidDocument) as refused:
        tokens.create(name, Role.ADMIN)
    assert "letters, digits, '.', '_', '-' and '@'" in refused.value.message
    assert tokens.list() == []


def test_the_pattern_reads_the_same_in_python_and_json_schema() -> None:
    """ECMA-262 and Python agree on a pattern of ASCII classes only (no \\s, \\w or \\d)."""
    assert re.fullmatch(r"\^\[[A-Za-z0-9_@.\-]+\]\[[A-Za-z0-9_@.\-]+\]\{0,63\}\$", TOKEN_NAME_PATTERN)
