"""The API against its own OpenAPI description, fuzzed by schemathesis: no 500s, answers as documented."""

from __future__ import annotations

import secrets

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from imgjobs.catalog import CATALOG
from web import auth, create_app, store

# Schemathesis needs the app when the module loads; the fixture below points it at the session's Redis
# and turns API keys on, so the API is fuzzed as it is exposed: with a key.
fuzzed_app = create_app({"DATA_DIR": "/tmp/imgjobs-fuzz", "QUEUE_NAME": "fuzz", "REDIS_URL": "redis://127.0.0.1:1"})
KEY = secrets.token_urlsafe(32)
# The key goes where the document's bearer scheme says, so schemathesis also tries calls without it.
keyed = SchemathesisConfig.from_dict({"auth": {"openapi": {"apiKey": {"bearer": KEY}}}})
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzzed_app, config=keyed)


@pytest.fixture(scope="module", autouse=True)
def short_waits():
    """Cap ?wait= at a fraction of a second: no worker serves the fuzzed queue, and the answer is the same."""
    wait = store.wait
    store.wait = lambda job, seconds: wait(job, min(seconds, 0.2))
    yield
    store.wait = wait


@pytest.fixture(scope="module", autouse=True)
def real_redis(redis_server, tmp_path_factory):
    fuzzed_app.config.update(REDIS_URL=redis_server.url, DATA_DIR=str(tmp_path_factory.mktemp("fuzz")))
    fuzzed_app.extensions["redis"].close()
    store.init_app(fuzzed_app)
    keys = tmp_path_factory.mktemp("fuzz-keys") / "api-keys"
    keys.write_text(f"fuzzer {KEY}\n")
    fuzzed_app.extensions["api_keys"] = auth.KeyRing(keys)
    yield
    fuzzed_app.extensions["api_keys"] = None
    fuzzed_app.extensions["redis"].close()


def test_document_lists_every_catalogue_op():
    headers = {"Authorization": f"Bearer {KEY}"}
    document = fuzzed_app.test_client().get("/api/v1/openapi.json", headers=headers).get_json()
    steps = document["components"]["schemas"]["Step"]["oneOf"]
    assert [variant["title"] for variant in steps] == list(CATALOG)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_description(case):
    # Uploads are judged by their content, which no schema can express: schema-valid bytes that are
    # not an image are rightly refused (415/422), so the "valid data is accepted" check does not apply.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
