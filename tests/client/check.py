"""Drives one grant end to end with the client generated from openapi/openapi.json.

Run by tests/client/run.sh, which generates the client (package `og_client`, on PYTHONPATH),
starts the sandbox and the service and passes SERVICE_URL, SERVICE_TOKEN (all scopes) and
SANDBOX_BASE_URL / SANDBOX_ADMIN_KEY. Only the generated client is used: its typed models and
its api functions (`sync_detailed`, for the status code and the parsed body). Every call is
made with `raise_on_unexpected_status=True`, so a status the document does not declare raises
`UnexpectedStatus`. Exits non-zero on the first failed check; `note` lines are observations
about the document that do not fail the run.
"""

import os
import sys
import time
import uuid
from http import HTTPStatus

from og_client import AuthenticatedClient
from og_client.api.connections import create_connection, get_connection, test_connection
from og_client.api.grants import create_grant, get_grant, list_grants, revoke_grant
from og_client.api.health import readyz
from og_client.api.inventory import get_person_access, get_sync, list_inventory, start_sync
from og_client.errors import UnexpectedStatus
from og_client.models import (
    GetGrantResponse400,
    GetGrantResponse404,
    RevokeGrantResponse404,
    ConnectionAccess,
    ConnectionIn,
    ConnectionOut,
    Grant,
    GrantIn,
    GrantList,
    GrantOutcome,
    GrantPreview,
    GrantStatus,
    GrantTargetType0,
    GrantTargetType0Type,
    Health,
    ItemKind,
    ItemList,
    OverallStatus,
    PersonAccessOut,
    Problem,
    ProjectAccess,
    RevokeIn,
    RevokeOutcome,
    SyncOut,
    SyncStatus,
    TestReport,
    Via,
)
from og_client.types import UNSET, Response, Unset

SERVICE_URL = os.environ["SERVICE_URL"]
TOKEN = os.environ["SERVICE_TOKEN"]
SANDBOX_BASE_URL = os.environ["SANDBOX_BASE_URL"]
SANDBOX_ADMIN_KEY = os.environ["SANDBOX_ADMIN_KEY"]

NOTES: list[str] = []


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)
    print(f"ok   {what}")


def note(what: str) -> None:
    NOTES.append(what)
    print(f"note {what}")


def expect(resp: Response, status: int, model: type, what: str):
    """The answer has this status and parsed as this generated model; returns the model."""
    body = resp.parsed
    if resp.status_code != status or not isinstance(body, model):
        detail = body.detail if isinstance(body, Problem) else resp.content[:300]
        raise AssertionError(
            f"{what}: expected {status} {model.__name__}, got {int(resp.status_code)} "
            f"{type(body).__name__}: {detail!r}"
        )
    print(f"ok   {what}: {int(resp.status_code)} {model.__name__}")
    return body


def kind_of(item) -> str:
    """An item's kind: each typed item (`UserItem`, `ProjectItem`, ...) has its own one-value enum."""
    return getattr(item.kind, "value", item.kind)


def inventory(client: AuthenticatedClient, conn_id: str, kind: ItemKind, **query) -> list:
    """Every item of one kind, following the cursor (typed: `UserItem`, `ProjectItem`, ...)."""
    items: list = []
    after = UNSET
    while True:
        page = expect(
            list_inventory.sync_detailed(conn_id, kind, client=client, limit=100, after=after, **query),
            200, ItemList, f"list_inventory {kind.value} {query or ''}".rstrip(),
        )
        check(all(kind_of(i) == kind.value for i in page.data),
              f"every {kind.value} item is of kind {kind.value} "
              f"({sorted({type(i).__name__ for i in page.data})})")
        items.extend(page.data)
        if not page.has_more:
            return items
        check(isinstance(page.next_cursor, str), "has_more comes with a next_cursor")
        after = page.next_cursor


def direct_role(access: PersonAccessOut, conn_id: uuid.UUID, project_id: str) -> str | None:
    """The role the person holds directly on the project, per GET /v1/access."""
    for c in access.connections:
        assert isinstance(c, ConnectionAccess)
        if c.connection_id != conn_id:
            continue
        for p in c.projects:
            assert isinstance(p, ProjectAccess)
            if p.project_id != project_id:
                continue
            for path in p.paths:
                if path.via == Via.DIRECT:
                    return path.role if isinstance(path.role, str) else ""
    return None


def main() -> None:
    client = AuthenticatedClient(
        base_url=SERVICE_URL, token=TOKEN, raise_on_unexpected_status=True, timeout=60.0
    )

    health = expect(readyz.sync_detailed(client=client), 200, Health, "readyz")
    check(health.status == "ok", f"readyz status is ok ({health.status})")

    # --- a connection to the sandbox, tested ---
    name = f"client-check-{uuid.uuid4().hex[:8]}"
    conn = expect(
        create_connection.sync_detailed(
            client=client,
            body=ConnectionIn(name=name, admin_key=SANDBOX_ADMIN_KEY, base_url=SANDBOX_BASE_URL),
        ),
        201, ConnectionOut, "create_connection",
    )
    check(isinstance(conn.id, uuid.UUID), "ConnectionOut.id is a UUID")
    check(conn.name == name and conn.base_url == SANDBOX_BASE_URL, "the connection echoes name and base_url")
    check(conn.key_hint.endswith(SANDBOX_ADMIN_KEY[-4:]), "key_hint ends with the key's last four")
    conn_id = str(conn.id)  # path parameters are typed `str`, ids in bodies `UUID`

    report = expect(test_connection.sync_detailed(conn_id, client=client), 200, TestReport, "test_connection")
    # Write probes count as "not verified" unless OG_OPENAI_CHECKS_PERMISSION_FIRST: degraded.
    check(report.status in (OverallStatus.OK, OverallStatus.DEGRADED),
          f"the connection test did not fail ({report.status}: {report.summary})")
    again = expect(get_connection.sync_detailed(conn_id, client=client), 200, ConnectionOut, "get_connection")
    check(again.test_required is False, "the tested connection needs no test")
    check(isinstance(again.organization_id, str) and again.organization_id.startswith("org"),
          f"the connection is pinned to an organization ({again.organization_id})")

    # --- a sync, waited for ---
    sync = expect(start_sync.sync_detailed(conn_id, client=client, full=True), 202, SyncOut, "start_sync")
    check(sync.connection_id == conn.id, "the sync is of the connection")
    deadline = time.monotonic() + 120
    while sync.status == SyncStatus.RUNNING:
        if time.monotonic() > deadline:
            raise AssertionError("the sync did not finish within 120 s")
        time.sleep(0.2)
        sync = get_sync.sync_detailed(str(sync.id), client=client).parsed
        assert isinstance(sync, SyncOut), f"get_sync answered {type(sync).__name__}"
    check(sync.status == SyncStatus.SUCCEEDED, f"the sync succeeded ({sync.status}, error={sync.error!r})")
    check(sync.finished_at is not None and sync.finished_at >= sync.started_at, "finished_at is a datetime after started_at")
    # SyncStats declares no required fields (all have defaults), so each is `X | Unset`.
    counts = sync.stats.counts
    check(not isinstance(counts, Unset), "stats.counts is present")
    check(isinstance(counts.additional_properties.get("user"), int),
          f"stats.counts has a user count ({counts.additional_properties.get('user')})")

    # --- a user and a project from the inventory ---
    users = [u for u in inventory(client, conn_id, ItemKind.USER) if isinstance(u.email, str)]
    check(len(users) > 1, f"the inventory has users with emails ({len(users)})")
    projects = inventory(client, conn_id, ItemKind.PROJECT, status="active")
    check(all(type(p).__name__ == "ProjectItem" for p in projects), "projects are typed ProjectItem")
    # Typed data: the project's OpenAI object (OpenAiProject).
    projects = [p for p in projects if p.data.name != "Default project"]
    check(len(projects) > 0, f"the inventory has active projects besides the default one ({len(projects)})")
    members = inventory(client, conn_id, ItemKind.PROJECT_MEMBER)
    held = {(m.parent_id, m.subject_id) for m in members}
    pick = next(
        ((u, p) for p in projects for u in users
         if u.role == "reader" and (p.key, u.key) not in held),
        None,
    )
    check(pick is not None, "a reader who is not a member of an active project")
    user, project = pick
    email, project_id = user.email, project.key
    print(f"     grantee {email} ({user.key}), project {project_id}")

    before = expect(get_person_access.sync_detailed(client=client, email=email), 200, PersonAccessOut,
                    "get_person_access before the grant")
    check(direct_role(before, conn.id, project_id) is None, "no direct access to the project before")

    # --- a dry run, then the grant (with an Idempotency-Key), replayed ---
    body = GrantIn(
        connection_id=conn.id,
        email=email,
        project_id=project_id,
        role="member",
        reason="client check: on-call",
        ticket="SEC-123",
    )
    preview = expect(create_grant.sync_detailed(client=client, body=body, dry_run=True), 200, GrantPreview,
                     "create_grant dry_run")
    check(preview.dry_run is True and preview.outcome == GrantOutcome.GRANTED,
          f"the dry run would grant ({preview.decision}, {preview.outcome})")

    key = str(uuid.uuid4())
    resp = create_grant.sync_detailed(client=client, body=body, idempotency_key=key)
    grant = expect(resp, 201, Grant, "create_grant")
    check(isinstance(grant.id, uuid.UUID) and grant.connection_id == conn.id, "Grant.id and connection_id are UUIDs")
    check(grant.status == GrantStatus.ACTIVE, f"the grant is active ({grant.status})")
    check(grant.outcome == GrantOutcome.GRANTED, f"the grant's outcome is granted ({grant.outcome})")
    check(isinstance(grant.target, GrantTargetType0) and grant.target.type_ == GrantTargetType0Type.PROJECT,
          f"the target parsed as the project variant ({type(grant.target).__name__})")
    check(grant.target.project_id == project_id and grant.target.role == "member", "the target is the project, member")
    check(grant.grantee.email == email and grant.grantee.user_id == user.key, "the grantee is the user (email, user_id)")
    check(grant.reason == "client check: on-call" and grant.ticket == "SEC-123", "reason and ticket are kept")
    check(grant.requested_by == "client-check", f"requested_by is the token's subject ({grant.requested_by})")
    check(resp.headers.get("location") == f"/v1/grants/{grant.id}", "Location names the grant")

    replay = create_grant.sync_detailed(client=client, body=body, idempotency_key=key)
    replayed = expect(replay, 201, Grant, "create_grant replayed with the same Idempotency-Key")
    check(replayed.id == grant.id, "the replay answers the same grant")
    check(replay.headers.get("idempotent-replayed") == "true", "the replay says Idempotent-Replayed: true")

    # --- read back ---
    got = expect(get_grant.sync_detailed(str(grant.id), client=client), 200, Grant, "get_grant")
    check(got.id == grant.id and got.status == GrantStatus.ACTIVE and got.created_at == grant.created_at,
          "get_grant answers the same active grant")
    listed = expect(list_grants.sync_detailed(client=client, connection_id=conn_id, status=GrantStatus.ACTIVE), 200,
                    GrantList, "list_grants active")
    check([g.id for g in listed.data] == [grant.id], "list_grants has exactly the grant")

    after = expect(get_person_access.sync_detailed(client=client, email=email), 200, PersonAccessOut,
                   "get_person_access after the grant")
    check(after.email == email, "the access answer names the email")
    check(direct_role(after, conn.id, project_id) == "member", "the person's access shows member on the project")

    # --- revoke ---
    revoked_resp = revoke_grant.sync_detailed(
        str(grant.id), client=client, body=RevokeIn(reason="client check: done", ticket="SEC-124"),
        idempotency_key=str(uuid.uuid4()),
    )
    revoked = expect(revoked_resp, 200, Grant, "revoke_grant")
    check(revoked.status == GrantStatus.REVOKED, f"the grant is revoked ({revoked.status})")
    check(revoked.revoke_outcome == RevokeOutcome.REMOVED, f"the membership was removed ({revoked.revoke_outcome})")
    check(revoked.end_reason == "client check: done" and revoked.end_ticket == "SEC-124", "end reason and ticket kept")
    check(revoked.ended_at is not None and revoked.ended_by == "client-check", "ended_at and ended_by are set")
    gone = expect(get_person_access.sync_detailed(client=client, email=email), 200, PersonAccessOut,
                  "get_person_access after the revoke")
    check(direct_role(gone, conn.id, project_id) is None, "the project is gone from the person's access")

    # --- problems: each status comes as its own type, `code` narrowed to what it can be ---
    missing = uuid.uuid4()
    problem = expect(get_grant.sync_detailed(str(missing), client=client), 404, GetGrantResponse404,
                     "get_grant of a random id")
    code = getattr(problem.code, "value", problem.code)
    check(problem.status == 404 and problem.type_ == f"urn:openai-governor:problem:{code}",
          f"the 404 is a problem ({code}, {problem.type_})")
    check(code == "grant_not_found", f"its code is grant_not_found ({code})")
    check(isinstance(problem.request_id, str) and problem.request_id != "", "it carries a request_id")
    bad = expect(get_grant.sync_detailed("not-a-uuid", client=client), 400, GetGrantResponse400,
                 "get_grant of a malformed id")
    check(getattr(bad.code, "value", bad.code) == "invalid_parameter", "its code is invalid_parameter")
    gone = expect(revoke_grant.sync_detailed(str(missing), client=client, body=RevokeIn()), 404,
                  RevokeGrantResponse404, "revoke_grant of a random id")
    check(getattr(gone.code, "value", gone.code) == "grant_not_found", "its code is grant_not_found")

    print(f"client check: all checks passed ({len(NOTES)} notes)")


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, UnexpectedStatus) as e:
        print(f"FAIL {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
