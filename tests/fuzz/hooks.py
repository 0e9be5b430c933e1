"""Schemathesis hooks: the rules the OpenAPI document states in words but no schema can.

Loaded by run.sh (SCHEMATHESIS_HOOKS=hooks). They touch only *positive* cases (those that
must be accepted) and only the fields below; negative cases go out as generated.

- A grant's `expires_at` must be in the future and within 366 days. JSON Schema has no
  "relative to now", so a generated date-time is moved into that window (a point chosen
  from the drawn value, so runs stay reproducible per seed).
- A connection's `base_url` must be one the operator allows (`OG_OPENAI_ALLOWED_BASE_URLS`,
  deployment configuration the committed document cannot know): a generated URI is replaced
  by the fuzz deployment's allowed sandbox URL (FUZZ_ALLOWED_BASE_URL).
- A positive case whose body the document itself calls invalid is dropped. The real ids
  run.sh binds to field names (dictionaries) are put in after generation, field by field,
  so they can break a rule between fields that the generated body kept (a real `email`
  next to a generated `grantee_group_id`: "a person or a group"); schemathesis would still
  expect such a body to be accepted. The other way round too: a case negative only in its
  body, whose body a real id made valid again, is no negative case and is dropped.
- `GET /v1/access` asks about exactly one person: `email` or `user_id`. OpenAPI cannot
  state a rule between two query parameters, so positive cases with neither or both are
  dropped (their 400 is asserted in tests/api/access.rs).

Every other rule the service enforces is in the document, and the fuzzer holds it there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pathlib

import jsonschema_rs
import schemathesis
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode

ALLOWED_BASE_URL = os.environ.get("FUZZ_ALLOWED_BASE_URL", "https://api.openai.com/v1")
EXPIRY_BODIES = {("POST", "/v1/grants"), ("PATCH", "/v1/grants/{grant_id}")}
BASE_URL_BODIES = {
    ("POST", "/v1/connections"),
    ("POST", "/v1/connections/test"),
    ("PATCH", "/v1/connections/{connection_id}"),
}


DOCUMENT = json.loads((pathlib.Path(__file__).parents[2] / "openapi" / "openapi.json").read_text())
_validators: dict[tuple[str, str], jsonschema_rs.Validator | None] = {}


def _body_validator(method: str, path: str):
    key = (method, path)
    if key not in _validators:
        op = DOCUMENT["paths"].get(path, {}).get(method.lower(), {})
        content = op.get("requestBody", {}).get("content", {}).get("application/json")
        _validators[key] = (
            jsonschema_rs.Draft202012Validator(
                {**content["schema"], "components": DOCUMENT["components"]}, validate_formats=True
            )
            if content and "schema" in content
            else None
        )
    return _validators[key]


def _positive(case, location: ParameterLocation) -> bool:
    meta = case.meta
    if meta is None:
        return True  # an explicit example: the document says it is valid
    component = meta.components.get(location)
    mode = component.mode if component is not None else meta.generation.mode
    return mode == GenerationMode.POSITIVE


def _key(case) -> tuple[str, str]:
    return (case.method.upper(), case.operation.path)


def _within_a_year(drawn: str) -> str:
    # One hour to 365 days ahead (inside the service's "future, within 366 days").
    seconds = 3600 + int(hashlib.sha256(drawn.encode()).hexdigest(), 16) % (364 * 86_400)
    at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@schemathesis.hook
def map_case(ctx, case):
    body = case.body
    if isinstance(body, dict) and _positive(case, ParameterLocation.BODY):
        key = _key(case)
        if key in EXPIRY_BODIES and isinstance(body.get("expires_at"), str):
            body["expires_at"] = _within_a_year(body["expires_at"])
        if key in BASE_URL_BODIES and isinstance(body.get("base_url"), str):
            body["base_url"] = ALLOWED_BASE_URL
    return case


def _negative_only_in_body(case) -> bool:
    meta = case.meta
    if meta is None:
        return False
    negative = {loc for loc, c in meta.components.items() if c.mode == GenerationMode.NEGATIVE}
    return negative == {ParameterLocation.BODY}


@schemathesis.hook
def filter_case(ctx, case):
    if isinstance(case.body, dict):
        validator = _body_validator(*_key(case))
        if validator is not None:
            valid = validator.is_valid(case.body)
            if _positive(case, ParameterLocation.BODY) and not valid:
                return False
            if valid and _negative_only_in_body(case):
                return False
    if _key(case) == ("GET", "/v1/access") and _positive(case, ParameterLocation.QUERY):
        query = case.query or {}
        asked = [name for name in ("email", "user_id") if query.get(name) is not None]
        return len(asked) == 1
    return True
