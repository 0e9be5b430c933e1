//! One contract, every backend: the same checks against SQLite and Postgres.

use chrono::{DateTime, SubsecRound, Utc};
use openai_governor::domain::{
    Capability, CapabilityCheck, ConnectionId, SealedSecret, TestReport,
};
use openai_governor::store::{Backend, ConnectionChanges, NewConnection, Store, StoreError};

use crate::helpers::TestDb;

fn now() -> DateTime<Utc> {
    // Both backends keep microseconds; compare at that precision.
    Utc::now().trunc_subsecs(6)
}

fn sealed(version: u32, byte: u8) -> SealedSecret {
    SealedSecret {
        key_version: version,
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
    assert_eq!(store.sealed_key(new.id).await.unwrap(), new.sealed_key);
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
    assert_eq!(store.sealed_key(c.id).await.unwrap(), sealed(1, 7));

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
    assert_eq!(store.sealed_key(c.id).await.unwrap(), sealed(2, 9));
}

async fn rekey_support(backend: Backend) {
    let Some((_db, store)) = store_of(backend).await else {
        return;
    };
    let a = store.insert_connection(new_connection("a")).await.unwrap();
    let mut newer = new_connection("b");
    newer.sealed_key = sealed(2, 1);
    store.insert_connection(newer).await.unwrap();
    let old = store.keys_not_under(2).await.unwrap();
    assert_eq!(old, vec![(a.id, sealed(1, 7))]);
    // Compare-and-swap: a stale expectation changes nothing.
    assert!(
        !store
            .swap_sealed_key(a.id, &sealed(1, 8), &sealed(2, 3))
            .await
            .unwrap()
    );
    assert_eq!(store.sealed_key(a.id).await.unwrap(), sealed(1, 7));
    assert!(
        store
            .swap_sealed_key(a.id, &sealed(1, 7), &sealed(2, 3))
            .await
            .unwrap()
    );
    assert_eq!(store.sealed_key(a.id).await.unwrap(), sealed(2, 3));
    assert!(store.keys_not_under(2).await.unwrap().is_empty());
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

crate::backend_tests!(
    insert_get_roundtrip,
    missing_rows_are_not_found,
    names_are_unique,
    list_pages_in_creation_order,
    updates_apply_only_given_fields,
    rekey_support,
    delete_removes_the_row,
);
