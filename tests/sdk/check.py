"""Drives the sandbox with the official `openai` Python SDK (`client.admin.organization`).

Run by tests/sdk/run.sh, which starts `openai-governor sandbox` and passes its base URL and
admin key in SANDBOX_BASE_URL / SANDBOX_ADMIN_KEY. The SDK validates every response against
its own types (`_strict_response_validation=True`), so a shape the SDK rejects fails here.
Exits non-zero on the first failed check.
"""

import json
import os
import sys
import time
import urllib.request

import openai
from openai import OpenAI
from openai.types.admin.organization import Invite, OrganizationUser
from openai.types.admin.organization.projects import ProjectUser

BASE_URL = os.environ["SANDBOX_BASE_URL"]
ADMIN_KEY = os.environ["SANDBOX_ADMIN_KEY"]
CONTROL_URL = BASE_URL.rstrip("/").removesuffix("/v1") + "/_sandbox"
GROW_BY = 1200


def control(method: str, path: str, body: object = None) -> object:
    """Calls the sandbox's control API (no key: loopback only)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        CONTROL_URL + path,
        data=data,
        method=method,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)
    print(f"ok   {what}")


def main() -> None:
    client = OpenAI(
        admin_api_key=ADMIN_KEY,
        base_url=BASE_URL,
        max_retries=0,
        timeout=30,
        _strict_response_validation=True,
    )
    org = client.admin.organization

    # List users and projects (first pages).
    first = org.users.list(limit=5)
    check(len(first.data) == 5 and isinstance(first.data[0], OrganizationUser),
          "users.list(limit=5) gives 5 OrganizationUser")
    projects = list(org.projects.list(limit=100, include_archived=True))
    active = [p for p in projects if p.status == "active"]
    check(len(active) >= 2, f"projects.list(include_archived=True): {len(projects)} projects")

    # A long list, paged by the SDK: grow the org by GROW_BY members first.
    before = control("GET", "/summary")["users"]
    control("POST", "/users", {"count": GROW_BY})
    seen = [u.id for u in org.users.list(limit=100)]
    check(len(seen) == before + GROW_BY,
          f"auto-pagination over users sees all {before + GROW_BY} (saw {len(seen)})")
    check(len(set(seen)) == len(seen), "no user seen twice while paging")
    emails = [u.email for u in org.users.list(limit=2, emails=[first.data[0].email])]
    check(emails == [first.data[0].email], "users.list(emails=[...]) filters")

    # Add a member to a project, change their role, remove them.
    project = active[-1]
    members = {m.id for m in org.projects.users.list(project.id, limit=100)}
    newcomer = next(u for u in org.users.list(limit=100) if u.id not in members)
    added = org.projects.users.create(project.id, user_id=newcomer.id, role="member")
    check(isinstance(added, ProjectUser) and added.id == newcomer.id and added.role == "member",
          f"projects.users.create({project.id}, {newcomer.id}, member)")
    changed = org.projects.users.update(newcomer.id, project_id=project.id, role="owner")
    check(changed.role == "owner", "projects.users.update(role=owner)")
    got = org.projects.users.retrieve(newcomer.id, project_id=project.id)
    check(got.role == "owner", "projects.users.retrieve shows the new role")
    removed = org.projects.users.delete(newcomer.id, project_id=project.id)
    check(removed.deleted and removed.id == newcomer.id, "projects.users.delete")
    try:
        org.projects.users.retrieve(newcomer.id, project_id=project.id)
        check(False, "a removed member is gone")
    except openai.NotFoundError:
        check(True, "a removed member is gone (404 NotFoundError)")

    # An organization role change, through the SDK's users.update.
    user = org.users.update(newcomer.id, role="owner")
    check(user.role == "owner", "users.update(role=owner)")
    user = org.users.update(newcomer.id, role="reader")
    check(user.role == "reader", "users.update(role=reader)")

    # Create an invite with projects.
    invite = org.invites.create(
        email="sdk-invitee@example.com",
        role="reader",
        projects=[{"id": active[0].id, "role": "member"}, {"id": project.id, "role": "owner"}],
    )
    check(isinstance(invite, Invite) and invite.status == "pending"
          and {(p.id, p.role) for p in invite.projects}
          == {(active[0].id, "member"), (project.id, "owner")},
          "invites.create with two projects")
    check(org.invites.retrieve(invite.id).email == "sdk-invitee@example.com", "invites.retrieve")
    check(any(i.id == invite.id for i in org.invites.list(limit=100)), "invites.list shows it")
    check(org.invites.delete(invite.id).deleted, "invites.delete")

    # The audit log records what was just done; usage and costs parse as the SDK's types.
    events = [e.type for e in org.audit_logs.list(limit=20).data]
    check("invite.sent" in events, f"audit_logs.list shows invite.sent (first: {events[:3]})")
    start = int(time.time()) - 3 * 86400
    for kind in ["completions", "embeddings", "moderations", "images", "audio_speeches",
                 "audio_transcriptions", "vector_stores", "code_interpreter_sessions",
                 "file_search_calls", "web_search_calls", "costs"]:
        page = getattr(org.usage, kind)(start_time=start, limit=2, bucket_width="1d")
        results = [r for bucket in page.data for r in bucket.results]
        check(len(page.data) == 2 and len(results) > 0, f"usage.{kind}: 2 buckets")

    # Errors come back as the SDK's typed exceptions.
    try:
        org.users.retrieve("user_does_not_exist")
        check(False, "unknown user is a 404")
    except openai.NotFoundError:
        check(True, "unknown user raises NotFoundError")
    bad = OpenAI(admin_api_key="sk-admin-wrong", base_url=BASE_URL, max_retries=0)
    try:
        bad.admin.organization.users.list(limit=1)
        check(False, "a wrong key is a 401")
    except openai.AuthenticationError:
        check(True, "a wrong key raises AuthenticationError")

    print(f"openai {openai.__version__}: all SDK checks passed")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report any failure as a failed check
        print(f"FAIL {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
