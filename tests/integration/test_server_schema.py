"""schemathesis against the API's own OpenAPI description: no 5xx, every response as documented.

The app runs in-process (``create_app`` on a Backend in a temporary data directory, called through
ASGI), so a failing case shows the server's traceback. Requests authenticate with an admin token
through the schema's bearer scheme, so the default checks also know to try them without it
(``ignored_auth``). The WebSocket is not part of the OpenAPI description; test_server.py covers it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case

from backend import actions
from backend.backend import Backend
from backend.server.app import create_app
from backend.tokens import Role, TokenStore
from tests.helpers.factories import make_cluster, make_peer

ADMIN_NAME = "schemathesis-admin-7f3c"  # never generated, so no case revokes the token the test uses


def checks_config(token: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "auth": {"openapi": {"HTTPBearer": {"bearer": token}}},
            "checks": {
                # Valid by the schema yet refused by state the schema cannot describe: 412 for a
                # version precondition or an existing token name, 422 for a rule such as a cluster
                # naming devices that do not exist (problem code missing_reference).
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "401", "403", "404", "409", "412", "422"],
                },
                # `Allow` is right for the URL but the check compares it with one path template:
                # GET /api/v1/{kind}/{id} and PUT/DELETE /api/v1/peer/{id} overlap by design.
                "allow_header_conformance": {"enabled": False},
            },
        }
    )


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    data_dir: Path = tmp_path_factory.mktemp("schema") / "data"
    backend = Backend(data_dir, demo_delay_scale=0.0).start()
    tokens = TokenStore(backend.data_dir.db_path)
    try:
        token = tokens.create(ADMIN_NAME, Role.ADMIN)
        # something to find and to conflict with: two peers (one demo), a cluster
        leader, member = make_peer("schema-leader"), make_peer("schema-member", demo=True)
        actions.store_peer_descriptor(backend.manager, leader, "fixture")
        actions.store_peer_descriptor(backend.manager, member, "fixture")
        actions.store_cluster_descriptor(backend.manager, make_cluster("schema-cluster", leader, member), "fixture")
        app = create_app(backend, tokens)
        yield schemathesis.openapi.from_asgi("/openapi.json", app, config=checks_config(token))
    finally:
        backend.close()
        tokens.close()


@pytest.fixture(autouse=True)
def _pytest9_node_id(request: pytest.FixtureRequest) -> None:
    """schemathesis' lazy schema reads ``node._nodeid``, which pytest 9 no longer has: provide it."""
    node = request.node
    if not hasattr(node, "_nodeid"):
        node._nodeid = node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_api_conforms_to_its_schema(case: Case[Any]) -> None:
    same_id_in_body_and_url(case)
    # Bodies are validated strictly (resources.documents): a value of the wrong JSON type is refused,
    # so the negative-data check runs on every case.
    case.call_and_validate()


def same_id_in_body_and_url(case: Case[Any]) -> None:
    """A valid PUT names the same id in the URL and the body, which the schema cannot say.

    Only for positive cases: a negative case keeps whatever it broke.
    """
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and case.method == "PUT" and case.path in WRITES_WITH_BODY_ID and isinstance(case.body, dict):
        path_id = (case.path_parameters or {}).get("id")
        if path_id is not None:
            case.body["id"] = path_id


WRITES_WITH_BODY_ID = ("/api/v1/peer/{id}", "/api/v1/cluster/{id}")
