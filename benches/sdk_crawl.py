"""A naive inventory crawl with the official `openai` Python SDK: the sync benchmark's baseline.

What a script written against the SDK's documentation would do: one client, sequential calls,
the SDK's auto-pagination at the default page size and its default retries (`max_retries` is
not set: 2 retries, honouring `Retry-After` on 429 and 5xx). It reads everything a full sync
reads: organization users, invites, projects (archived too), then for each active project its
users, service accounts and API keys; plus admin API keys, groups and organization roles where
the SDK has them.

Run by benches/common/sdk.rs with SANDBOX_BASE_URL (…/v1) and SANDBOX_ADMIN_KEY set. Prints
one JSON line at the end:
    {"wall_s": 1.23, "objects": {"users": 10, …}, "kinds": 9, "errors": ["…"]}
An API error (an error status once the SDK's retries are spent, a connection failure) is
recorded in `errors` and the crawl goes on with the next list; any other exception is a bug
here and exits non-zero.
"""

import json
import os
import sys
import time

import openai
from openai import OpenAI

BASE_URL = os.environ["SANDBOX_BASE_URL"]
ADMIN_KEY = os.environ["SANDBOX_ADMIN_KEY"]


def main() -> None:
    started = time.perf_counter()
    client = OpenAI(admin_api_key=ADMIN_KEY, base_url=BASE_URL)
    org = client.admin.organization
    objects: dict[str, int] = {}
    errors: list[str] = []

    def crawl(kind: str, pages, where: str = "") -> list:
        """Iterates an auto-paginating list, counting as it goes; an API error is recorded."""
        seen = []
        objects.setdefault(kind, 0)
        try:
            for item in pages():
                seen.append(item)
                objects[kind] += 1
        except openai.APIError as e:
            errors.append(f"{kind}{' ' + where if where else ''}: {type(e).__name__}: {e}")
        return seen

    def has(*path: str):
        """The SDK resource at `org.<path>`, or None where this SDK version lacks it."""
        node = org
        for name in path:
            node = getattr(node, name, None)
            if node is None:
                return None
        return node if callable(getattr(node, "list", None)) else None

    crawl("users", lambda: org.users.list())
    crawl("invites", lambda: org.invites.list())
    projects = crawl("projects", lambda: org.projects.list(include_archived=True))
    active = [p for p in projects if p.status == "active"]
    per_project = [
        ("project_users", ("projects", "users")),
        ("project_service_accounts", ("projects", "service_accounts")),
        ("project_api_keys", ("projects", "api_keys")),
    ]
    for kind, path in per_project:
        if has(*path) is None:
            continue
        objects.setdefault(kind, 0)
    for project in active:
        for kind, path in per_project:
            resource = has(*path)
            if resource is not None:
                crawl(kind, lambda r=resource: r.list(project.id), project.id)
    for kind, path in [
        ("admin_api_keys", ("admin_api_keys",)),
        ("groups", ("groups",)),
        ("roles", ("roles",)),
    ]:
        resource = has(*path)
        if resource is not None:
            crawl(kind, lambda r=resource: r.list())

    wall = time.perf_counter() - started
    for e in errors:
        print(f"sdk_crawl: {e}", file=sys.stderr)
    print(
        json.dumps(
            {"wall_s": wall, "objects": objects, "kinds": len(objects), "errors": errors}
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
