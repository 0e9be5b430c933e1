//! One contract, every backend: the same checks against SQLite and Postgres.

use chrono::{DateTime, SubsecRound, Utc};
use openai_governor::domain::access::Person;
use openai_governor::domain::audit::{
    AuditAction, AuditEntry, AuditOutcome, AuditQuery, SYSTEM_ACTOR,
};
use openai_governor::domain::{
    Capability, CapabilityCheck, Change, ChangeKind, ChangeQuery, ConnectionId, ExpectedChange,
    GrantId, Item, ItemKind, ItemQuery, SealedSecret, SyncRun, SyncStatus, TestReport,
};
use openai_governor::store::{
    Backend, ConnectionChanges, NewConnection, Store, StoreError, SyncStart,
};
use serde_json::json;

use crate::helpers::TestDb;

fn now() -> DateTime<Utc> {
    // Both backends keep microseconds; compare at that precision.
    Utc::now().trunc_subsecs(6)
}

fn sealed(version: u32, byte: u8) -> SealedSecret {
    SealedSecret {
        key_version: version,
        binding: 2,
        ciphertext: vec![byte; 40],
    }
}

fn new_connection(name: &str) -> NewConnection {
    NewConnection {
        id: ConnectionId::new(),
        name: name.to_owned(),
        base_url: "https://api.openai.com/v1".parse().unwrap(),
        expected_organization_id: Some("org-abc".into()),
        key_hint: "sk-admin-…abcd".into(),
        sealed_key: sealed(1, 7),
        at: now(),
        by: "alice".into(),
    }
}

async fn store_of(backend: Backend) -> Option<(TestDb, std::sync::Arc<dyn Store>)> {
    let db = TestDb::new(backend).await?;
    let store = db.store().await;
    Some((db, store))
}

async fn insert_get_roundtrip(backend: Backend) {
    let Some((_db, store)) = store_of(backend).await else {
        return;
    };
    let new = new_connection("prod");
    let created = store.insert_connection(new.clone()).await.unwrap();
    assert_eq!(created.id, new.id);
    assert_eq!(created.name, "prod");
    assert_eq!(created.base_url.as_str(), "https://api.openai.com/v1");
    assert_eq!(created.expected_organization_id.as_deref(), Some("org-abc"));
    assert_eq!(created.created_at, new.at);
    assert_eq!(created.updated_at, new.at);
    assert_eq!(created.created_by, "alice");
    assert_eq!(created.last_test, None);
    assert_eq!(store.get_connection(new.id).await.unwrap(), created);
    assert_eq!(
        store.sealed_key(new.id).await.unwrap().sealed,
        new.sealed_key
    );
    // Migrations are idempotent.
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn missing_rows_are_not_found(backend: Backend) {
    let Some((_db, store)) = store_of(backend).await else {
        return;
    };
    let id = ConnectionId::new();
    assert!(matches!(
        store.get_connection(id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.sealed_key(id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_connection(id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .update_connection(id, ConnectionChanges::default(), now(), "x")
            .await,
        Err(StoreError::NotFound)
    ));
    let report = TestReport::conclude(now(), 1, None, None, vec![], Some("x".into()));
    assert!(matches!(
        store.save_test_report(id, &report).await,
        Err(StoreError::NotFound)
    ));
}

async fn names_are_unique(backend: Backend) {
    let Some((_db, store)) = store_of(backend).await else {
        return;
    };
    store.insert_connection(new_connection("a")).await.unwrap();
    let b = store.insert_connection(new_connection("b")).await.unwrap();
    assert!(matches!(
        store.insert_connection(new_connection("a")).await,
        Err(StoreError::Conflict(_))
    ));
    let rename = ConnectionChanges {
        name: Some("a".into()),
        ..Default::default()
    };
    assert!(matches!(
        store.update_connection(b.id, rename, now(), "x").await,
        Err(StoreError::Conflict(_))
    ));
    // The failed rename changed nothing.
    assert_eq!(store.get_connection(b.id).await.unwrap(), b);
}

async fn list_pages_in_creation_order(backend: Backend) {
    let Some((_db, store)) = store_of(backend).await else {
        return;
    };
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            store
                .insert_connection(new_connection(&format!("c{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_connections(after, 3).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        after = page.last().map(|c| c.id);
        seen.extend(page.into_iter().map(|c| c.id));
    }
    assert_eq!(seen, ids);
}

async fn updates_apply_only_given_fields(backend: Backend) {
    let Some((_db, store)) = store_of(backend).await else {
        return;
    };
    let c = store
        .insert_connection(new_connection("orig"))
        .await
        .unwrap();
    let report = TestReport::conclude(
        now(),
        12,
        Some("org-abc".into()),
        Some("org-abc".into()),
        Capability::ALL
            .iter()
            .map(|cap| CapabilityCheck::from_probes(*cap, vec![]))
            .collect(),
        None,
    );
    store.save_test_report(c.id, &report).await.unwrap();
    let tested = store.get_connection(c.id).await.unwrap();
    assert_eq!(tested.last_test.as_ref(), Some(&report));
    assert_eq!(tested.updated_at, c.updated_at, "a test is not an edit");

    let at = now();
    let renamed = store
        .update_connection(
            c.id,
            ConnectionChanges {
                name: Some("renamed".into()),
                ..Default::default()
            },
            at,
            "bob",
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "renamed");
    assert_eq!(renamed.expected_organization_id.as_deref(), Some("org-abc"));
    assert_eq!(renamed.last_test.as_ref(), Some(&report));
    assert_eq!(renamed.updated_by, "bob");
    assert_eq!(renamed.updated_at, at);
    assert_eq!(renamed.created_by, "alice");
    assert_eq!(store.sealed_key(c.id).await.unwrap().sealed, sealed(1, 7));

    let rekeyed = store
        .update_connection(
            c.id,
            ConnectionChanges {
                expected_organization_id: Some(None),
                key: Some(("sk-admin-…wxyz".into(), sealed(2, 9))),
                base_url: Some("http://127.0.0.1:9/v1".parse().unwrap()),
                clear_last_test: true,
                ..Default::default()
            },
            now(),
            "carol",
        )
        .await
        .unwrap();
    assert_eq!(rekeyed.name, "renamed");
    assert_eq!(rekeyed.expected_organization_id, None);
    assert_eq!(rekeyed.key_hint, "sk-admin-…wxyz");
    assert_eq!(rekeyed.base_url.as_str(), "http://127.0.0.1:9/v1");
    assert_eq!(rekeyed.last_test, None);
    assert_eq!(store.sealed_key(c.id).await.unwrap().sealed, sealed(2, 9));
}

async fn rekey_support(backend: Backend) {
    let Some((_db, store)) = store_of(backend).await else {
        return;
    };
    let a = store.insert_connection(new_connection("a")).await.unwrap();
    let mut newer = new_connection("b");
    newer.sealed_key = sealed(2, 1);
    store.insert_connection(newer).await.unwrap();
    let old: Vec<_> = store
        .keys_to_reseal(2, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.id, k.sealed))
        .collect();
    assert_eq!(old, vec![(a.id, sealed(1, 7))]);
    // Compare-and-swap: a stale expectation changes nothing.
    assert!(
        !store
            .swap_sealed_key(a.id, &sealed(1, 8), &sealed(2, 3))
            .await
            .unwrap()
    );
    assert_eq!(store.sealed_key(a.id).await.unwrap().sealed, sealed(1, 7));
    assert!(
        store
            .swap_sealed_key(a.id, &sealed(1, 7), &sealed(2, 3))
            .await
            .unwrap()
    );
    assert_eq!(store.sealed_key(a.id).await.unwrap().sealed, sealed(2, 3));
    assert!(store.keys_to_reseal(2, 2).await.unwrap().is_empty());
}

async fn delete_removes_the_row(backend: Backend) {
    let Some((_db, store)) = store_of(backend).await else {
        return;
    };
    let c = store
        .insert_connection(new_connection("gone"))
        .await
        .unwrap();
    store.delete_connection(c.id).await.unwrap();
    assert!(matches!(
        store.get_connection(c.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.list_connections(None, 10).await.unwrap().is_empty());
    // The name is free again.
    store
        .insert_connection(new_connection("gone"))
        .await
        .unwrap();
}

fn user(id: &str, email: &str) -> Item {
    Item::new(
        ItemKind::User,
        id,
        json!({"id": id, "email": email, "role": "reader"}),
    )
    .subject(id)
}

/// The audit entry a finished run commits with: which run, and whether it was published.
fn sync_audit(run: &SyncRun, published: bool) -> AuditEntry {
    let mut e = AuditEntry::new(
        now(),
        SYSTEM_ACTOR,
        None,
        AuditAction::SyncFinished,
        AuditOutcome::Succeeded,
    );
    e.connection_id = Some(run.connection_id);
    e.detail =
        Some(json!({"sync_id": run.id, "status": run.status.as_str(), "published": published}));
    e
}

fn finished(mut run: SyncRun, status: SyncStatus) -> SyncRun {
    run.status = status;
    run.finished_at = Some(now());
    run
}

/// Snapshots: a run's items are invisible until it succeeds; success replaces the snapshot
/// whole; failure leaves the previous one; a lease keeps runs one at a time and a dead run's
/// expired lease is taken over.
async fn sync_runs_and_snapshots(backend: Backend) {
    let Some((_db, store)) = store_of(backend).await else {
        return;
    };
    let c = store
        .insert_connection(new_connection("prod"))
        .await
        .unwrap();
    let t0 = now().timestamp_millis();
    let page = |q: ItemQuery| {
        let store = store.clone();
        async move { store.list_items(c.id, &q).await.unwrap().parsed() }
    };

    let first = SyncRun::start(c.id, "alice", now());
    assert_eq!(
        store.start_sync(&first, t0 + 60_000, t0).await.unwrap(),
        SyncStart::Started
    );
    let second = SyncRun::start(c.id, "bob", now());
    assert_eq!(
        store.start_sync(&second, t0 + 60_000, t0).await.unwrap(),
        SyncStart::Busy(first.id),
        "one run at a time"
    );
    store
        .insert_items(
            first.id,
            &[user("user_b", "B@x.com"), user("user_a", "a@x.com")],
        )
        .await
        .unwrap();
    let empty = page(ItemQuery::all(ItemKind::User, 10)).await;
    assert_eq!(
        (empty.sync_id, empty.items.len()),
        (None, 0),
        "not visible while running"
    );
    assert!(
        store
            .finish_sync(&finished(first.clone(), SyncStatus::Succeeded), &sync_audit)
            .await
            .unwrap()
    );
    let published = page(ItemQuery::all(ItemKind::User, 10)).await;
    assert_eq!(published.sync_id, Some(first.id));
    assert!(published.synced_at.is_some());
    let keys: Vec<_> = published.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["user_a", "user_b"], "ordered by key");
    assert_eq!(published.items[0].data["email"], "a@x.com");
    let mut by_email = ItemQuery::all(ItemKind::User, 10);
    by_email.email = Some("b@X.com".into());
    assert_eq!(page(by_email).await.items[0].key, "user_b");
    let mut after = ItemQuery::all(ItemKind::User, 10);
    after.after = Some("user_a".into());
    assert_eq!(page(after).await.items.len(), 1, "cursor");
    assert_eq!(
        page(ItemQuery::all(ItemKind::Project, 10))
            .await
            .items
            .len(),
        0
    );

    // A failed run publishes nothing and drops its own items.
    let failing = SyncRun::start(c.id, "bob", now());
    assert_eq!(
        store.start_sync(&failing, t0 + 60_000, t0).await.unwrap(),
        SyncStart::Started
    );
    store
        .insert_items(failing.id, &[user("user_c", "c@x.com")])
        .await
        .unwrap();
    let mut failed = finished(failing.clone(), SyncStatus::Failed);
    failed.error = Some("OpenAI: upstream".into());
    assert!(store.finish_sync(&failed, &sync_audit).await.unwrap());
    assert_eq!(
        page(ItemQuery::all(ItemKind::User, 10)).await.items.len(),
        2
    );
    let stored = store.get_sync(failing.id).await.unwrap();
    assert_eq!(stored.status, SyncStatus::Failed);
    assert_eq!(stored.error.as_deref(), Some("OpenAI: upstream"));

    // A run whose process died: its lease expires and the next run takes over.
    let dead = SyncRun::start(c.id, "bob", now());
    assert_eq!(
        store.start_sync(&dead, t0 + 1_000, t0).await.unwrap(),
        SyncStart::Started
    );
    store
        .insert_items(dead.id, &[user("user_d", "d@x.com")])
        .await
        .unwrap();
    let next = SyncRun::start(c.id, "carol", now());
    assert_eq!(
        store
            .start_sync(&next, t0 + 62_000, t0 + 2_000)
            .await
            .unwrap(),
        SyncStart::Started,
        "an expired lease is taken over"
    );
    let abandoned = store.get_sync(dead.id).await.unwrap();
    assert_eq!(abandoned.status, SyncStatus::Failed);
    assert!(abandoned.error.unwrap().contains("abandoned"));
    assert!(!store.renew_sync_lease(&dead, t0 + 90_000).await.unwrap());
    assert!(store.renew_sync_lease(&next, t0 + 90_000).await.unwrap());
    // The dead run wakes up and tries to publish: refused, recorded as failed.
    assert!(
        !store
            .finish_sync(&finished(dead.clone(), SyncStatus::Succeeded), &sync_audit)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_sync(dead.id).await.unwrap().status,
        SyncStatus::Failed
    );
    // Its audit entry committed with it, from the run as recorded: failed, not published.
    let trail = store
        .list_audit(&AuditQuery {
            action: Some(AuditAction::SyncFinished),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let of_dead: Vec<_> = trail
        .iter()
        .filter_map(|e| e.entry.detail.as_ref())
        .filter(|d| d["sync_id"] == json!(dead.id))
        .collect();
    assert_eq!(of_dead.len(), 1, "{trail:?}");
    assert_eq!(of_dead[0]["status"], "failed");
    assert_eq!(of_dead[0]["published"], false);
    store
        .insert_items(next.id, &[user("user_e", "e@x.com")])
        .await
        .unwrap();
    assert!(
        store
            .finish_sync(&finished(next.clone(), SyncStatus::Succeeded), &sync_audit)
            .await
            .unwrap()
    );
    let replaced = page(ItemQuery::all(ItemKind::User, 10)).await;
    assert_eq!(replaced.sync_id, Some(next.id));
    let keys: Vec<_> = replaced.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["user_e"], "replaced whole");

    let runs = store.list_syncs(c.id, None, 10).await.unwrap();
    let ids: Vec<_> = runs.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        [next.id, dead.id, failing.id, first.id],
        "newest first"
    );
    let older = store.list_syncs(c.id, Some(dead.id), 10).await.unwrap();
    assert_eq!(older.len(), 2);

    // Unknown connection; and deleting the connection takes its inventory with it.
    let orphan = SyncRun::start(ConnectionId::new(), "x", now());
    assert!(matches!(
        store.start_sync(&orphan, t0, t0).await,
        Err(StoreError::NotFound)
    ));
    store.delete_connection(c.id).await.unwrap();
    assert!(matches!(
        store.get_sync(next.id).await,
        Err(StoreError::NotFound)
    ));
}

/// Runs one sync of `items` to the end with `status`; returns the finished run.
async fn run_sync(
    store: &std::sync::Arc<dyn Store>,
    connection: ConnectionId,
    items: &[Item],
    status: SyncStatus,
    skipped: &[ItemKind],
) -> SyncRun {
    let t = now().timestamp_millis();
    let run = SyncRun::start(connection, "alice", now());
    assert_eq!(
        store.start_sync(&run, t + 60_000, t).await.unwrap(),
        SyncStart::Started
    );
    store.insert_items(run.id, items).await.unwrap();
    let mut run = finished(run, status);
    for kind in skipped {
        run.stats
            .skipped
            .insert(*kind, "the key cannot read this".into());
    }
    assert!(store.finish_sync(&run, &sync_audit).await.unwrap());
    store.get_sync(run.id).await.unwrap()
}

fn item(kind: ItemKind, key: &str, role: Option<&str>, status: Option<&str>) -> Item {
    Item::new(
        kind,
        key,
        json!({"id": key, "last_used_at": now().timestamp_micros()}),
    )
    .role(role.map(str::to_owned))
    .status(status.map(str::to_owned))
}

fn member(project: &str, user: &str, role: &str) -> Item {
    item(
        ItemKind::ProjectMember,
        &format!("{project}/{user}"),
        Some(role),
        None,
    )
    .parent(project)
    .subject(user)
}

/// The changes feed: publishing a snapshot records what differs from the previous one, in the
/// same transaction; the first snapshot is the baseline; failed syncs, costs, kinds a sync
/// skipped and the children of a project archived meanwhile record nothing; an expected
/// change is marked `by_governor`; the filters and the SQL form of events agree with Rust.
async fn changes_between_snapshots(backend: Backend) {
    let Some((_db, store)) = store_of(backend).await else {
        return;
    };
    let c = store
        .insert_connection(new_connection("prod"))
        .await
        .unwrap();
    let other = store
        .insert_connection(new_connection("other"))
        .await
        .unwrap();
    let list = |q: ChangeQuery| {
        let store = store.clone();
        async move { store.list_changes(&q).await.unwrap() }
    };
    let of = |id: ConnectionId| ChangeQuery {
        connection_id: Some(id),
        limit: 100,
        ..ChangeQuery::default()
    };
    let cost = |day: &str| {
        let mut i = item(ItemKind::Cost, &format!("{day}/proj_1/x"), None, None);
        i.parent_id = Some("proj_1".into());
        i
    };
    let baseline = [
        item(ItemKind::User, "user_a", Some("reader"), None),
        item(ItemKind::User, "user_b", Some("reader"), None),
        item(ItemKind::Project, "proj_1", None, Some("active")),
        item(ItemKind::Project, "proj_2", None, Some("active")),
        member("proj_1", "user_a", "member"),
        item(ItemKind::ApiKey, "key_1", None, Some("active")).parent("proj_1"),
        item(ItemKind::ServiceAccount, "svc_1", Some("member"), None).parent("proj_2"),
        item(ItemKind::Group, "group_1", None, None),
        cost("100"),
    ];
    let first = run_sync(&store, c.id, &baseline, SyncStatus::Succeeded, &[]).await;
    assert_eq!(
        first.stats.changes, None,
        "the first snapshot is the baseline"
    );
    assert!(list(of(c.id)).await.is_empty());
    // Another organization's syncs never mix in.
    run_sync(&store, other.id, &baseline[..2], SyncStatus::Succeeded, &[]).await;
    run_sync(&store, other.id, &baseline[..1], SyncStatus::Succeeded, &[]).await;

    // openai-governor announces the membership it is about to grant.
    let expect = |connection_id, key: &str| ExpectedChange {
        connection_id,
        kind: ItemKind::ProjectMember,
        key: key.to_owned(),
        change: ChangeKind::Added,
        role: Some("owner".into()),
        status: None,
        until: now() + chrono::Duration::minutes(10),
    };
    store
        .expect_change(&expect(c.id, "proj_1/user_b"))
        .await
        .unwrap();
    store
        .expect_change(&expect(c.id, "proj_1/user_c"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .expect_change(&expect(ConnectionId::new(), "p/u"))
            .await,
        Err(StoreError::NotFound)
    ));

    let second_items = [
        item(ItemKind::User, "user_a", Some("owner"), None),
        item(ItemKind::User, "user_c", Some("reader"), None),
        item(ItemKind::Project, "proj_1", None, Some("active")),
        item(ItemKind::Project, "proj_2", None, Some("archived")),
        member("proj_1", "user_a", "member"),
        member("proj_1", "user_b", "owner"),
        member("proj_1", "user_c", "member"),
        item(ItemKind::Group, "group_1", None, None),
        cost("200"),
    ];
    let second = run_sync(&store, c.id, &second_items, SyncStatus::Succeeded, &[]).await;
    let changes = list(of(c.id)).await;
    let seen = |changes: &[Change]| {
        changes
            .iter()
            .map(|c| format!("{} {} {}", c.event(), c.key, c.by_governor))
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        seen(&changes),
        [
            "api_key.removed key_1 false",
            "project.archived proj_2 false",
            "project_member.added proj_1/user_b true",
            "project_member.added proj_1/user_c false",
            "user.added user_c false",
            "user.removed user_b false",
            "user.role_changed user_a false",
        ]
        .map(str::to_owned)
        .into(),
        "exactly what differs; not the costs, not svc_1 of the archived project, not the \
         last_used_at in data; user_c joined with another role than expected: drift"
    );
    assert_eq!(second.stats.changes, Some(7));
    let role = changes.iter().find(|c| c.key == "user_a").unwrap();
    assert_eq!(
        (role.role_before.as_deref(), role.role_after.as_deref()),
        (Some("reader"), Some("owner"))
    );
    assert_eq!(role.sync_id, second.id);
    assert_eq!(role.seen_at, second.finished_at.unwrap());
    assert_eq!(role.connection_id, c.id);
    assert!(role.before.is_some() && role.after.is_some());
    let removed = changes.iter().find(|c| c.key == "key_1").unwrap();
    assert_eq!(removed.parent_id.as_deref(), Some("proj_1"));
    assert_eq!(removed.before.as_ref().unwrap()["id"], "key_1");
    assert_eq!(removed.after, None);
    let added = changes.iter().find(|c| c.key == "proj_1/user_b").unwrap();
    assert_eq!(added.subject_id.as_deref(), Some("user_b"));
    assert_eq!(added.before, None);

    // Each change's event, as a filter, finds it (the SQL and Rust rules agree).
    for change in &changes {
        let found = list(ChangeQuery {
            event: Some(change.event()),
            ..of(c.id)
        })
        .await;
        assert!(found.contains(change), "{}", change.event());
        assert!(found.iter().all(|f| f.event() == change.event()));
    }
    let drift = list(ChangeQuery {
        drift: Some(true),
        ..of(c.id)
    })
    .await;
    assert_eq!(drift.len(), 6);
    let ours = list(ChangeQuery {
        drift: Some(false),
        ..of(c.id)
    })
    .await;
    assert_eq!(ours.len(), 1);
    let users = list(ChangeQuery {
        kind: Some(ItemKind::User),
        ..of(c.id)
    })
    .await;
    assert_eq!(users.len(), 3);
    let later = list(ChangeQuery {
        since: Some(second.finished_at.unwrap() + chrono::Duration::seconds(1)),
        ..of(c.id)
    })
    .await;
    assert!(later.is_empty());
    let from = list(ChangeQuery {
        since: second.finished_at,
        ..of(c.id)
    })
    .await;
    assert_eq!(from.len(), 7);
    // Paging by cursor, in id order.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = list(ChangeQuery {
            after,
            limit: 3,
            ..of(c.id)
        })
        .await;
        if page.is_empty() {
            break;
        }
        after = page.last().map(|c| c.id);
        paged.extend(page);
    }
    assert_eq!(paged, changes);
    assert!(changes.windows(2).all(|w| w[0].id < w[1].id));
    let everywhere = list(ChangeQuery {
        limit: 100,
        ..ChangeQuery::default()
    })
    .await;
    assert_eq!(everywhere.len(), 8, "with the other organization's one");

    // A failed sync records nothing; nor does a kind the key could not read this time.
    run_sync(&store, c.id, &baseline, SyncStatus::Failed, &[]).await;
    let mut without_groups = second_items.to_vec();
    without_groups.retain(|i| i.kind != ItemKind::Group);
    let third = run_sync(
        &store,
        c.id,
        &without_groups,
        SyncStatus::Succeeded,
        &[ItemKind::Group],
    )
    .await;
    assert_eq!(third.stats.changes, Some(0));
    assert_eq!(list(of(c.id)).await.len(), 7);

    // The expectation was used up: the same change again is drift.
    let mut again = without_groups.clone();
    again.retain(|i| i.key != "proj_1/user_b");
    run_sync(&store, c.id, &again, SyncStatus::Succeeded, &[]).await;
    run_sync(&store, c.id, &without_groups, SyncStatus::Succeeded, &[]).await;
    let last = list(ChangeQuery {
        after: changes.last().map(|c| c.id),
        ..of(c.id)
    })
    .await;
    assert_eq!(
        seen(&last),
        [
            "project_member.removed proj_1/user_b false",
            "project_member.added proj_1/user_b false",
        ]
        .map(str::to_owned)
        .into()
    );

    // Deleting the connection takes its changes with it.
    store.delete_connection(c.id).await.unwrap();
    assert_eq!(
        list(ChangeQuery {
            limit: 100,
            ..ChangeQuery::default()
        })
        .await
        .len(),
        1
    );
}

fn entry(action: AuditAction, actor: &str, at: DateTime<Utc>) -> AuditEntry {
    AuditEntry::new(at, actor, None, action, AuditOutcome::Succeeded)
}

/// Runs `sql` on the test database directly (not through the store), returning the error.
async fn raw(db: &TestDb, sql: &str) -> Result<u64, sqlx::Error> {
    use sqlx::Connection as _;
    match db.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await?;
            Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await?
                .rows_affected())
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await?;
            Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await?
                .rows_affected())
        }
    }
}

async fn audit_trail(backend: Backend) {
    let Some((db, store)) = store_of(backend).await else {
        return;
    };
    let (c1, c2) = (ConnectionId::new(), ConnectionId::new());
    let grant = GrantId::new();
    let t0 = now() - chrono::Duration::hours(3);
    let hour = chrono::Duration::hours(1);

    let mut created = entry(AuditAction::ConnectionCreated, "alice", t0);
    created.client_id = Some("portal".into());
    created.connection_id = Some(c1);
    created.after = Some(json!({"name": "prod", "key_hint": "sk-admin-…abcd"}));
    let mut granted = entry(AuditAction::GrantCreated, "bob", t0 + hour);
    granted.connection_id = Some(c1);
    granted.grant_id = Some(grant);
    granted.user_id = Some("user-ann".into());
    granted.email = Some("Ann@Example.COM".into());
    granted.project_id = Some("proj_1".into());
    granted.group_id = Some("group_1".into());
    granted.reason = Some("on call".into());
    granted.ticket = Some("SEC-1".into());
    granted.upstream_request_id = Some("req_1".into());
    granted.before = Some(json!({}));
    granted.after = Some(json!({"project_role": "member"}));
    granted.outcome = AuditOutcome::Pending;
    let mut synced = entry(AuditAction::SyncFinished, SYSTEM_ACTOR, t0 + hour * 2);
    synced.connection_id = Some(c2);
    synced.outcome = AuditOutcome::Failed;
    synced.detail = Some(json!({"message": "OpenAI: timeout", "counts": {"user": 3}}));

    let mut ids = Vec::new();
    for e in [&created, &granted, &synced] {
        ids.push(store.append_audit(e).await.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");

    let list = |q: AuditQuery| {
        let store = store.clone();
        async move {
            store
                .list_audit(&AuditQuery { limit: 100, ..q })
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        }
    };

    // Everything round-trips, in append order; emails are stored lower-cased.
    let all = store
        .list_audit(&AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    assert_eq!(all[0].entry, created);
    let mut stored = granted.clone();
    stored.email = Some("ann@example.com".into());
    assert_eq!(all[1].entry, stored);
    assert_eq!(all[2].entry, synced);

    // Each filter.
    let q = AuditQuery::default;
    assert_eq!(
        list(AuditQuery {
            connection_id: Some(c1),
            ..q()
        })
        .await,
        ids[..2]
    );
    assert_eq!(
        list(AuditQuery {
            connection_id: Some(ConnectionId::new()),
            ..q()
        })
        .await,
        Vec::<i64>::new()
    );
    assert_eq!(
        list(AuditQuery {
            actor: Some("bob".into()),
            ..q()
        })
        .await,
        [ids[1]]
    );
    assert_eq!(
        list(AuditQuery {
            actor: Some(SYSTEM_ACTOR.into()),
            ..q()
        })
        .await,
        [ids[2]]
    );
    assert_eq!(
        list(AuditQuery {
            email: Some("ANN@example.com".into()),
            ..q()
        })
        .await,
        [ids[1]]
    );
    assert_eq!(
        list(AuditQuery {
            user_id: Some("user-ann".into()),
            ..q()
        })
        .await,
        [ids[1]]
    );
    assert_eq!(
        list(AuditQuery {
            project_id: Some("proj_1".into()),
            ..q()
        })
        .await,
        [ids[1]]
    );
    assert_eq!(
        list(AuditQuery {
            grant_id: Some(grant),
            ..q()
        })
        .await,
        [ids[1]]
    );
    assert_eq!(
        list(AuditQuery {
            action: Some(AuditAction::SyncFinished),
            ..q()
        })
        .await,
        [ids[2]]
    );
    assert_eq!(
        list(AuditQuery {
            since: Some(t0 + hour),
            ..q()
        })
        .await,
        ids[1..]
    );
    assert_eq!(
        list(AuditQuery {
            until: Some(t0 + hour),
            ..q()
        })
        .await,
        [ids[0]]
    );
    assert_eq!(
        list(AuditQuery {
            since: Some(t0 + hour),
            until: Some(t0 + hour * 2),
            ..q()
        })
        .await,
        [ids[1]]
    );
    assert_eq!(
        list(AuditQuery {
            connection_id: Some(c1),
            actor: Some("alice".into()),
            ..q()
        })
        .await,
        [ids[0]]
    );

    // Paging with the cursor.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_audit(&AuditQuery {
                after,
                limit: 2,
                ..q()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().map(|e| e.id);
        seen.extend(page.into_iter().map(|e| e.id));
    }
    assert_eq!(seen, ids);

    // Append-only for every writer, not just the store: the triggers refuse both.
    let update = raw(&db, "UPDATE audit_events SET actor = 'mallory'").await;
    assert!(update.is_err(), "UPDATE must be refused: {update:?}");
    assert!(
        update.unwrap_err().to_string().contains("append-only"),
        "the refusal says why"
    );
    let delete = raw(&db, "DELETE FROM audit_events").await;
    assert!(delete.is_err(), "DELETE must be refused: {delete:?}");
    assert_eq!(list(q()).await, ids, "nothing changed");
    assert_eq!(
        store
            .list_audit(&AuditQuery { limit: 100, ..q() })
            .await
            .unwrap(),
        all
    );
}

/// Publishes `items` as the connection's snapshot through `store`.
async fn publish(store: &dyn Store, c: ConnectionId, items: &[Item]) -> SyncRun {
    let t0 = now().timestamp_millis();
    let run = SyncRun::start(c, "alice", now());
    assert_eq!(
        store.start_sync(&run, t0 + 60_000, t0).await.unwrap(),
        SyncStart::Started
    );
    store.insert_items(run.id, items).await.unwrap();
    assert!(
        store
            .finish_sync(&finished(run.clone(), SyncStatus::Succeeded), &sync_audit)
            .await
            .unwrap()
    );
    run
}

/// Who the access read model says reaches project `p` (user ids of its members).
async fn members_of(store: &dyn Store, c: ConnectionId, p: &str) -> Option<Vec<String>> {
    let found = store
        .project_items(
            c,
            p,
            &openai_governor::domain::access::ReachPage::first(100),
        )
        .await
        .unwrap()?;
    let mut ids: Vec<String> = found
        .items
        .iter()
        .filter(|i| i.kind == ItemKind::ProjectMember)
        .filter_map(|i| i.subject_id.clone())
        .collect();
    ids.sort();
    Some(ids)
}

/// Waits up to a second for `check` to hold on `store`: another replica's change must reach
/// this one's read model within that.
async fn within_a_second<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not seen by the other replica within a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The access read model on two replicas (two stores over one database): what one publishes,
/// writes through, renames or deletes is seen by itself at once and by the other within a
/// second, and a reader never sees a snapshot mixed with another.
async fn the_read_model_follows_other_replicas(backend: Backend) {
    let Some((db, a)) = store_of(backend).await else {
        return;
    };
    let b = db.store().await;
    let c = a.insert_connection(new_connection("prod")).await.unwrap();
    let project = Item::new(ItemKind::Project, "proj_1", json!({"name": "One"}));
    let base = [
        project.clone(),
        user("user_1", "one@x.com"),
        member("proj_1", "user_1", "member"),
    ];
    assert_eq!(
        members_of(&*b, c.id, "proj_1").await,
        None,
        "no snapshot yet"
    );
    publish(&*a, c.id, &base).await;
    assert_eq!(
        members_of(&*a, c.id, "proj_1").await,
        Some(vec!["user_1".to_owned()]),
        "the publishing replica sees its snapshot at once"
    );
    within_a_second("a publish", || async {
        members_of(&*b, c.id, "proj_1").await == Some(vec!["user_1".to_owned()])
    })
    .await;

    // A write-through: user_2 added, user_1 removed.
    a.patch_head(
        c.id,
        &[
            user("user_2", "two@x.com"),
            member("proj_1", "user_2", "owner"),
        ],
        &[(ItemKind::ProjectMember, "proj_1/user_1".to_owned())],
    )
    .await
    .unwrap();
    let after = Some(vec!["user_2".to_owned()]);
    assert_eq!(members_of(&*a, c.id, "proj_1").await, after, "at once here");
    within_a_second("a write-through", || async {
        members_of(&*b, c.id, "proj_1").await == after
    })
    .await;
    let two = b
        .person_items(&Person::Email("TWO@x.com".into()))
        .await
        .unwrap();
    let kinds: Vec<_> = two
        .iter()
        .map(|s| (s.item.kind, s.item.key.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ItemKind::Project, "proj_1"),
            (ItemKind::ProjectMember, "proj_1/user_2"),
            (ItemKind::User, "user_2"),
        ],
        "the patched person, with the project they reach, in kind and key order"
    );

    // A rename on the other replica, then a new snapshot replacing the patched one whole.
    b.update_connection(
        c.id,
        ConnectionChanges {
            name: Some("production".into()),
            ..ConnectionChanges::default()
        },
        now(),
        "bob",
    )
    .await
    .unwrap();
    within_a_second("a rename", || async {
        let found = a
            .person_items(&Person::UserId("user_2".into()))
            .await
            .unwrap();
        found.first().map(|s| s.connection_name.as_str()) == Some("production")
    })
    .await;
    let next = publish(&*b, c.id, &[project, user("user_3", "three@x.com")]).await;
    within_a_second("a second publish", || async {
        members_of(&*a, c.id, "proj_1").await == Some(Vec::new())
    })
    .await;
    let three = a
        .person_items(&Person::Email("three@x.com".into()))
        .await
        .unwrap();
    assert!(three.iter().all(|s| s.sync_id == next.id), "one snapshot");
    assert!(
        a.person_items(&Person::Email("two@x.com".into()))
            .await
            .unwrap()
            .is_empty(),
        "the write-through of the old snapshot went with it"
    );

    assert_eq!(
        b.delete_connection(c.id).await.unwrap(),
        openai_governor::store::ConnectionDelete::Deleted
    );
    within_a_second("a delete", || async {
        members_of(&*a, c.id, "proj_1").await.is_none()
    })
    .await;
}

crate::backend_tests!(
    audit_trail,
    the_read_model_follows_other_replicas,
    changes_between_snapshots,
    sync_runs_and_snapshots,
    insert_get_roundtrip,
    missing_rows_are_not_found,
    names_are_unique,
    list_pages_in_creation_order,
    updates_apply_only_given_fields,
    rekey_support,
    delete_removes_the_row,
);
