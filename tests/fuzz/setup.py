"""Seeds the service under test with real data and writes the schemathesis configuration.

Creates a connection to the sandbox (and a second one that PATCH and DELETE may change or
remove, so the first stays intact for the lookups), tests and syncs it, makes one grant and
one offboarding, then collects real ids (connection, sync, grant, offboarding, users, emails,
projects, groups, roles, permissions, change cursors) from the service's own answers. They go
into `schemathesis.toml` as dictionaries bound to the parameters of those names: the fuzzer
draws a real id some of the time and its own values otherwise, so lookups hit real data and
the not-found paths are exercised too. Standard library only (runs in the fuzz venv).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

# How often a bound parameter takes a real value rather than a generated one.
REAL_ID_PROBABILITY = 0.7


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base = base.rstrip("/")
        self.token = token
        # Loopback only: never through a proxy from the environment.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method: str, path: str, body: object | None = None, ok=(200, 201, 202, 204)):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(req, timeout=60) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read().decode()
        if status not in ok:
            raise SystemExit(f"fuzz setup: {method} {path} answered {status}: {text[:2000]}")
        return status, (json.loads(text) if text else None)


def wait_sync(api: Api, sync_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        _, sync = api.call("GET", f"/v1/syncs/{sync_id}")
        if sync["status"] != "running":
            return sync
        if time.monotonic() > deadline:
            raise SystemExit(f"fuzz setup: sync {sync_id} still running after {timeout:.0f} s")
        time.sleep(0.2)


def items(api: Api, connection_id: str, kind: str, limit: int = 50) -> list[dict]:
    _, page = api.call("GET", f"/v1/connections/{connection_id}/inventory/{kind}?limit={limit}")
    return page["data"]


def toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--service", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--sandbox", required=True)
    ap.add_argument("--admin-key", required=True)
    ap.add_argument("--config-out", required=True)
    args = ap.parse_args()
    api = Api(args.service, args.token)

    def connect(name: str) -> dict:
        _, conn = api.call(
            "POST",
            "/v1/connections",
            {"name": name, "admin_key": args.admin_key, "base_url": args.sandbox},
        )
        api.call("POST", f"/v1/connections/{conn['id']}/test")
        return conn

    conn = connect("fuzz-main")
    spare = connect("fuzz-spare")
    cid = conn["id"]
    status, sync = api.call("POST", f"/v1/connections/{cid}/syncs?full=true")
    sync = wait_sync(api, sync["id"])
    if sync["status"] != "succeeded":
        raise SystemExit(f"fuzz setup: the sync failed: {json.dumps(sync)[:2000]}")
    _, spare_sync = api.call("POST", f"/v1/connections/{spare['id']}/syncs")
    wait_sync(api, spare_sync["id"])

    users = items(api, cid, "user")
    projects = items(api, cid, "project")
    groups = items(api, cid, "group")
    roles = items(api, cid, "role")
    if not users or not projects:
        raise SystemExit("fuzz setup: the sync found no users or projects")
    user_ids = [u["subject_id"] or u["key"] for u in users if (u.get("subject_id") or u.get("key"))]
    emails = [u["email"] for u in users if u.get("email")]
    project_ids = [p["key"] for p in projects]
    active_projects = [p["key"] for p in projects if p.get("status") in (None, "active")] or project_ids
    group_ids = [g["key"] for g in groups]
    role_ids = [r["key"] for r in roles]
    permissions: list[str] = []
    for role in roles:
        for perm in (role.get("data") or {}).get("permissions") or []:
            if isinstance(perm, str) and perm not in permissions:
                permissions.append(perm)

    # One grant (an invite of a new person to a project) and one offboarding of a real user,
    # so their lookups and the grant's PATCH / revoke have something real to work on.
    _, grant = api.call(
        "POST",
        "/v1/grants",
        {
            "connection_id": cid,
            "email": "fuzz-grantee@example.com",
            "project_id": active_projects[-1],
            "role": "member",
            "reason": "fuzz setup",
            "expires_in_seconds": 86400,
        },
    )
    victim = users[-1]
    _, offboarding = api.call(
        "POST",
        "/v1/offboardings",
        {"connection_id": cid, "user_id": victim["subject_id"] or victim["key"], "reason": "fuzz setup"},
    )
    offboarding_id = offboarding.get("id") or offboarding.get("offboarding_id")
    # A second sync so the changes feed has entries (the offboarding removed someone).
    _, sync2 = api.call("POST", f"/v1/connections/{cid}/syncs")
    sync2 = wait_sync(api, sync2["id"])
    _, changes = api.call("GET", f"/v1/changes?connection_id={cid}&limit=20")
    change_ids = [c["id"] for c in changes["data"]]

    dictionaries = {
        "connection_id": [cid],
        "spare_connection_id": [spare["id"]],
        "sync_id": [sync["id"], sync2["id"]],
        "grant_id": [grant["id"]],
        "offboarding_id": [offboarding_id] if offboarding_id else [],
        "user_id": user_ids[:20],
        "email": emails[:20] + ["fuzz-grantee@example.com"],
        "project_id": project_ids[:20],
        "group_id": group_ids[:20],
        "role_id": role_ids[:20],
        "permission": permissions[:20],
        "base_url": [args.sandbox],
        "admin_key": [args.admin_key],
    }
    bindings = {
        "path.connection_id": "connection_id",
        "query.connection_id": "connection_id",
        "body.connection_id": "connection_id",
        "path.sync_id": "sync_id",
        "path.grant_id": "grant_id",
        "query.grant_id": "grant_id",
        "path.offboarding_id": "offboarding_id",
        "query.user_id": "user_id",
        "body.user_id": "user_id",
        "query.email": "email",
        "body.email": "email",
        "path.project_id": "project_id",
        "query.project_id": "project_id",
        "body.project_id": "project_id",
        "query.parent_id": "project_id",
        "body.group_id": "group_id",
        "body.grantee_group_id": "group_id",
        "body.role_id": "role_id",
        "query.permission": "permission",
        "body.base_url": "base_url",
        "body.admin_key": "admin_key",
    }
    lines = [
        "# Generated by tests/fuzz/setup.py for one run: real ids of the service under test.",
        "",
        "# No state kept between runs (and no .schemathesis/ in the checkout); see run.sh on seeds.",
        "[cache]",
        "enabled = false",
        "",
        "# No OpenAI is reachable from a fuzz run (https goes to deadend_proxy.py), and the",
        "# document's answer to that is 502 upstream_unavailable: a connection the fuzzer makes",
        "# with the default base URL gets it on every call to OpenAI. Any other 5xx fails.",
        "[checks.not_a_server_error]",
        'expected-statuses = ["2xx", "3xx", "4xx", "502"]',
        "",
    ]
    for name, values in dictionaries.items():
        if values:
            lines.append(f"[dictionaries.{name}]")
            lines.append("values = [" + ", ".join(toml_str(v) for v in values) + "]")
            lines.append("")
    lines.append("[parameters]")
    for key, name in bindings.items():
        if dictionaries.get(name):
            lines.append(f'"{key}" = {{ dictionary = "{name}", probability = {REAL_ID_PROBABILITY} }}')
    lines.append("")
    # PATCH and DELETE of a connection work on the spare one, so the synced connection the
    # lookups use is neither re-keyed, renamed nor deleted early in the run.
    for op in ("PATCH /v1/connections/{connection_id}", "DELETE /v1/connections/{connection_id}"):
        lines.append("[[operations]]")
        lines.append(f"include-name = {toml_str(op)}")
        lines.append(
            f'parameters = {{ "path.connection_id" = {{ dictionary = "spare_connection_id", probability = {REAL_ID_PROBABILITY} }} }}'
        )
        lines.append("")
    with open(args.config_out, "w") as out:
        out.write("\n".join(lines))
    print(
        f"fuzz setup: connection {cid} (spare {spare['id']}), syncs {sync['id']} {sync2['id']}, "
        f"grant {grant['id']} ({grant.get('status')}), offboarding {offboarding_id}, "
        f"{len(user_ids)} users, {len(project_ids)} projects, {len(group_ids)} groups, "
        f"{len(role_ids)} roles, {len(permissions)} permissions, {len(change_ids)} changes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
