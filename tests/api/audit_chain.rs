//! The audit trail's tamper evidence, on both backends: entries chain by hash (the service's
//! own appends, grants inside their transaction included); whoever bypasses the append-only
//! triggers as the owner and edits, deletes or truncates is named by `verify` (the library
//! function and the `openai-governor audit verify` subcommand); Postgres refuses TRUNCATE;
//! the two-role script leaves the service's role able to append but not to rewrite.

use std::sync::Arc;

use chrono::{Duration, SubsecRound, Utc};
use openai_governor::auth::Scope;
use openai_governor::domain::audit::{
    AuditAction, AuditEntry, AuditOutcome, ChainProblem, ChainReport, GENESIS_HASH,
};
use openai_governor::service::audit::verify_chain;
use openai_governor::store::{Backend, ConnectionStore, PostgresStore, Store};
use serde_json::json;
use sqlx::Connection as _;

use crate::helpers::{
    TestApp, TestDb, postgres_admin_url, sandbox_person, sandbox_project, synced_connection,
};

const BIN: &str = env!("CARGO_BIN_EXE_openai-governor");

/// Five entries with every kind of field (upper-case email, nested JSON with several keys,
/// a time with nanoseconds), appended through the store; returns their ids.
async fn five_entries(store: &dyn Store) -> Vec<i64> {
    let t0 = Utc::now() - Duration::hours(1);
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut e = AuditEntry::new(
            t0 + Duration::minutes(i),
            format!("actor-{i}"),
            Some("portal".into()),
            AuditAction::GrantCreated,
            AuditOutcome::Succeeded,
        );
        e.email = Some(format!("Person{i}@Example.COM"));
        e.reason = Some("on \"call\"\n".into());
        e.before = Some(json!({}));
        e.after = Some(json!({"zeta": 1, "alpha": {"b": [1, 2.5, null], "a": "x"}, "mid": true}));
        e.detail = Some(json!({"n": i, "message": "naïve ✓"}));
        ids.push(store.append_audit(&e).await.expect("append"));
    }
    ids
}

/// Runs `sql` (`;`-separated statements) on the database as its owner, around the store.
async fn as_owner(db: &TestDb, sql: &str) -> Result<(), sqlx::Error> {
    match db.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await?;
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await?;
        }
    }
    Ok(())
}

/// `sql` with the append-only triggers out of the way, as the table's owner can always do.
async fn bypassing_triggers(db: &TestDb, sql: &str) {
    let wrapped = match db.backend {
        Backend::Sqlite => format!(
            "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete; {sql}"
        ),
        Backend::Postgres => format!(
            "ALTER TABLE audit_events DISABLE TRIGGER USER; {sql}; \
             ALTER TABLE audit_events ENABLE TRIGGER USER"
        ),
    };
    as_owner(db, &wrapped).await.expect("tamper as the owner");
}

/// `openai-governor audit verify` on the database: (success, stdout, stderr).
async fn cli_verify(db: &TestDb) -> (bool, String, String) {
    let out = tokio::process::Command::new(BIN)
        .args(["audit", "verify"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("OG_LOG", "warn")
        .output()
        .await
        .expect("run binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn verify(store: &dyn Store) -> ChainReport {
    verify_chain(store).await.expect("verify reads the trail")
}

/// A fresh database with five chained entries.
async fn trail(backend: Backend) -> Option<(TestDb, Arc<dyn Store>, Vec<i64>)> {
    let db = TestDb::new(backend).await?;
    let store = db.store().await;
    let ids = five_entries(store.as_ref()).await;
    Some((db, store, ids))
}

async fn an_untouched_trail_verifies(backend: Backend) {
    let Some((db, store, ids)) = trail(backend).await else {
        return;
    };
    let report = verify(store.as_ref()).await;
    assert_eq!(report.problem, None, "{report:?}");
    assert_eq!((report.verified, report.legacy, report.head.seq), (5, 0, 5));
    assert_ne!(report.head.hash, GENESIS_HASH);
    assert_eq!(report.head.hash.len(), 64);
    // What is read back is what was hashed: times at microseconds, lower-cased emails,
    // JSON as the backend keeps it.
    let listed = store
        .list_audit(&openai_governor::domain::audit::AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.iter().map(|e| e.id).collect::<Vec<_>>(), ids);

    let (ok, out, err) = cli_verify(&db).await;
    assert!(ok, "verify succeeds: {out} {err}");
    assert!(out.contains("audit trail intact"), "{out}");
    assert!(out.contains("5 chained entries verified"), "{out}");
    assert!(
        out.contains(&report.head.hash),
        "the head hash is printed: {out}"
    );

    // Concurrent appenders queue on the head: the chain stays dense and linked.
    let appends = (0..20).map(|i| {
        let store = store.clone();
        async move {
            let e = AuditEntry::new(
                Utc::now(),
                format!("racer-{i}"),
                None,
                AuditAction::ConnectionTested,
                AuditOutcome::Failed,
            );
            store.append_audit(&e).await
        }
    });
    for res in futures::future::join_all(appends).await {
        res.expect("concurrent append");
    }
    let report = verify(store.as_ref()).await;
    assert_eq!(
        (&report.problem, report.verified),
        (&None, 25),
        "{report:?}"
    );

    // An empty trail verifies too.
    let empty = TestDb::new(backend).await.unwrap();
    let report = verify(empty.store().await.as_ref()).await;
    assert_eq!((report.problem, report.verified), (None, 0));
}

async fn an_edited_entry_is_named(backend: Backend) {
    let Some((db, store, ids)) = trail(backend).await else {
        return;
    };
    bypassing_triggers(
        &db,
        &format!(
            "UPDATE audit_events SET actor = 'mallory' WHERE event_id = {}",
            ids[2]
        ),
    )
    .await;
    let report = verify(store.as_ref()).await;
    assert_eq!(
        report.problem,
        Some(ChainProblem::Edited {
            seq: 3,
            event_id: ids[2]
        })
    );
    assert_eq!(report.verified, 2);
    let (ok, _, err) = cli_verify(&db).await;
    assert!(!ok, "verify exits non-zero on an edit");
    assert!(
        err.contains(&format!("entry seq 3 (event {}) was edited", ids[2])),
        "{err}"
    );

    // An edit to a JSON payload (a key added) is as visible as one to a text column.
    let Some((db, store, ids)) = trail(backend).await else {
        return;
    };
    let set = match backend {
        Backend::Sqlite => r#"'{"zeta":1,"mid":true,"extra":0}'"#,
        Backend::Postgres => r#"after_state || '{"extra":0}'::jsonb"#,
    };
    bypassing_triggers(
        &db,
        &format!(
            "UPDATE audit_events SET after_state = {set} WHERE event_id = {}",
            ids[4]
        ),
    )
    .await;
    assert_eq!(
        verify(store.as_ref()).await.problem,
        Some(ChainProblem::Edited {
            seq: 5,
            event_id: ids[4]
        })
    );
}

async fn a_deleted_entry_is_named(backend: Backend) {
    let Some((db, store, ids)) = trail(backend).await else {
        return;
    };
    bypassing_triggers(
        &db,
        &format!("DELETE FROM audit_events WHERE event_id = {}", ids[1]),
    )
    .await;
    assert_eq!(
        verify(store.as_ref()).await.problem,
        Some(ChainProblem::Gap {
            expected: 2,
            found: Some(3),
            after_event: Some(ids[0])
        })
    );
    let (ok, _, err) = cli_verify(&db).await;
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "entries missing: seq 2 to 2 (after event {})",
            ids[0]
        )),
        "{err}"
    );

    // The newest entries cut off: the head still counts them.
    let Some((db, store, ids)) = trail(backend).await else {
        return;
    };
    bypassing_triggers(
        &db,
        &format!("DELETE FROM audit_events WHERE event_id >= {}", ids[3]),
    )
    .await;
    assert_eq!(
        verify(store.as_ref()).await.problem,
        Some(ChainProblem::Gap {
            expected: 4,
            found: None,
            after_event: Some(ids[2])
        })
    );

    // Everything deleted.
    let Some((db, store, _)) = trail(backend).await else {
        return;
    };
    bypassing_triggers(&db, "DELETE FROM audit_events").await;
    let report = verify(store.as_ref()).await;
    assert_eq!(
        report.problem,
        Some(ChainProblem::Gap {
            expected: 1,
            found: None,
            after_event: None
        })
    );
    assert!(!cli_verify(&db).await.0);
}

async fn entries_written_around_the_chain_are_named(backend: Backend) {
    let Some((db, store, ids)) = trail(backend).await else {
        return;
    };
    // No trigger stops an insert: any writer could add an entry without a place in the chain.
    let at = match backend {
        Backend::Sqlite => "'2026-01-01T00:00:00Z'",
        Backend::Postgres => "now()",
    };
    as_owner(
        &db,
        &format!(
            "INSERT INTO audit_events (at, actor, action, outcome) \
             VALUES ({at}, 'mallory', 'grant.created', 'succeeded')"
        ),
    )
    .await
    .unwrap();
    let report = verify(store.as_ref()).await;
    let Some(ChainProblem::Unchained { event_id }) = report.problem else {
        panic!("{report:?}");
    };
    assert!(event_id > ids[4]);

    // The head moved back is refused; its hash changed is named.
    let Some((db, store, _)) = trail(backend).await else {
        return;
    };
    let back = as_owner(&db, "UPDATE audit_chain_head SET seq = 2").await;
    assert!(
        back.unwrap_err().to_string().contains("only moves forward"),
        "the head cannot be rewound"
    );
    let gone = as_owner(&db, "DELETE FROM audit_chain_head").await;
    assert!(gone.is_err(), "the head cannot be deleted");
    as_owner(
        &db,
        &format!("UPDATE audit_chain_head SET hash = '{GENESIS_HASH}'"),
    )
    .await
    .unwrap();
    assert_eq!(
        verify(store.as_ref()).await.problem,
        Some(ChainProblem::HeadMismatch {
            head_seq: 5,
            last_seq: 5
        })
    );
}

/// Grants append inside their own transaction (with the grant's state): those entries chain
/// too, interleaved with the connection's.
async fn the_service_s_entries_chain(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Payments").await;
    for i in 0..4 {
        sandbox_person(&app.sandbox, &format!("person{i}@corp.io"), "reader");
    }
    let conn = synced_connection(&app, "org").await;
    let writer = app.token("workflow@corp", &[Scope::AccessWrite]);
    let grants = futures::future::join_all((0..4).map(|i| {
        app.post(
            "/v1/grants",
            &writer,
            json!({"connection_id": conn, "email": format!("person{i}@corp.io"),
                   "project_id": pid, "role": "member", "reason": "on-call"}),
        )
    }))
    .await;
    for res in grants {
        assert!(res.status().is_success(), "{}", res.status());
    }
    let store = app.db.store().await;
    let report = verify(store.as_ref()).await;
    assert_eq!(report.problem, None, "{report:?}");
    // The connection's creation, its sync, and one entry per grant at least.
    assert!(report.verified >= 6, "{report:?}");
    assert_eq!(report.verified, report.head.seq);
}

/// Postgres only: TRUNCATE, which skips row triggers, is refused; as the owner with the
/// triggers disabled it empties the table, and verify says so.
#[tokio::test]
async fn postgres_refuses_truncate() {
    let Some((db, store, _)) = trail(Backend::Postgres).await else {
        return;
    };
    let err = as_owner(&db, "TRUNCATE audit_events").await.unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = as_owner(&db, "TRUNCATE audit_chain_head")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert_eq!(verify(store.as_ref()).await.problem, None);
    bypassing_triggers(&db, "TRUNCATE audit_events").await;
    assert_eq!(
        verify(store.as_ref()).await.problem,
        Some(ChainProblem::Gap {
            expected: 1,
            found: None,
            after_event: None
        })
    );
}

/// Drops the roles when the test ends (after the database, declared before it).
struct Roles(Vec<String>);

impl Drop for Roles {
    fn drop(&mut self) {
        let Some(admin) = postgres_admin_url() else {
            return;
        };
        let roles = std::mem::take(&mut self.0);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                for role in roles {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS {role}")))
                        .execute(&mut conn)
                        .await;
                }
                Some(())
            })
        })
        .join();
    }
}

/// `url` with another user and password.
fn as_user(url: &str, user: &str, password: &str) -> String {
    let mut url = url::Url::parse(url).expect("database URL");
    url.set_username(user).expect("user");
    url.set_password(Some(password)).expect("password");
    url.to_string()
}

/// The two-role setup of `deploy/postgres/roles.sql`, run with psql as the deployment would:
/// migrations as the owner, the store as the app role, which can append and read the trail
/// (and use the other tables) but not update, delete, truncate or touch the triggers.
#[tokio::test]
async fn postgres_app_role_can_only_append() {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (owner, app) = (format!("og_owner_{suffix}"), format!("og_app_{suffix}"));
    let _roles = Roles(vec![owner.clone(), app.clone()]);
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let url = url::Url::parse(&db.url).unwrap();
    let dbname = url.path().trim_start_matches('/').to_owned();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/postgres/roles.sql");
    let out = tokio::process::Command::new("psql")
        .arg(&db.url)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .args(["-v", &format!("owner_role={owner}")])
        .args(["-v", "owner_password=owner-secret"])
        .args(["-v", &format!("app_role={app}")])
        .args(["-v", "app_password=app-secret"])
        .args(["-v", &format!("dbname={dbname}")])
        .args(["-f", script])
        .output()
        .await
        .expect("psql is installed");
    assert!(
        out.status.success(),
        "roles.sql: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let owner_url = as_user(&db.url, &owner, "owner-secret");
    let app_url = as_user(&db.url, &app, "app-secret");
    let owner_store = PostgresStore::connect(&owner_url).await.unwrap();
    owner_store.migrate().await.expect("the owner migrates");

    let store = PostgresStore::connect(&app_url).await.unwrap();
    let ids = five_entries(&store).await;
    assert_eq!(ids.len(), 5, "the app role appends");
    let report = verify(&store).await;
    assert_eq!((report.problem, report.verified), (None, 5));
    // It uses the other tables as the service needs.
    let conn = openai_governor::domain::ConnectionId::new();
    store
        .insert_connection(openai_governor::store::NewConnection {
            id: conn,
            name: "prod".into(),
            base_url: url::Url::parse("https://api.openai.com/v1").unwrap(),
            expected_organization_id: None,
            key_hint: "sk-admin-…abcd".into(),
            sealed_key: openai_governor::domain::SealedSecret {
                key_version: 1,
                binding: 2,
                ciphertext: vec![1, 2, 3],
            },
            at: Utc::now().trunc_subsecs(6),
            by: "test".into(),
        })
        .await
        .expect("the app role writes connections");
    store
        .delete_connection(conn)
        .await
        .expect("and deletes them");

    let mut c = sqlx::PgConnection::connect(&app_url).await.unwrap();
    for sql in [
        "UPDATE audit_events SET actor = 'mallory'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "DROP TRIGGER audit_events_no_change ON audit_events",
        "ALTER TABLE audit_events DISABLE TRIGGER USER",
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_truncate",
        "DROP TABLE audit_events",
        "DELETE FROM audit_chain_head",
        "TRUNCATE audit_chain_head",
        "UPDATE audit_chain_head SET seq = 0",
        "INSERT INTO audit_chain_head (id, seq, hash, prev_hash, legacy_through) VALUES (2, 0, '', '', 0)",
    ] {
        let res = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await;
        assert!(res.is_err(), "the app role must not: {sql}");
    }
    let err = sqlx::raw_sql("UPDATE audit_events SET actor = 'mallory'")
        .execute(&mut c)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("permission denied"),
        "refused by privilege, before any trigger: {err}"
    );
    let report = verify(&store).await;
    assert_eq!(
        (report.problem, report.verified),
        (None, 5),
        "nothing changed"
    );

    // The service starts as the app role with OG_MIGRATE=false, and not without it.
    let config = |migrate: bool| {
        let mut c = openai_governor::config::Config::ephemeral(
            &app_url,
            crate::helpers::random_secret(),
            &[],
        )
        .unwrap();
        c.migrate = migrate;
        c
    };
    assert!(openai_governor::app::build(config(false)).await.is_ok());
    // Last: a failed sqlx migration keeps its session's advisory lock until the pool closes,
    // so nothing may migrate after it here.
    assert!(
        openai_governor::app::build(config(true)).await.is_err(),
        "migrating as the app role fails: it cannot change the schema"
    );
}

/// A database migrated before the chain began: its entries are counted as legacy, not
/// checked, and entries after them chain.
#[tokio::test]
async fn entries_before_the_chain_are_legacy() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    // Migrate only up to the audit table, add entries the old way, then migrate the rest.
    let file = db.file.clone().unwrap();
    {
        let mut c = sqlx::SqliteConnection::connect_with(
            &sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&file)
                .create_if_missing(true),
        )
        .await
        .unwrap();
        let old = tempfile::tempdir().unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        for f in std::fs::read_dir(dir).unwrap() {
            let f = f.unwrap();
            if f.file_name().to_string_lossy().as_ref() < "20261202000030" {
                std::fs::copy(f.path(), old.path().join(f.file_name())).unwrap();
            }
        }
        sqlx::migrate::Migrator::new(old.path())
            .await
            .unwrap()
            .run(&mut c)
            .await
            .unwrap();
        sqlx::raw_sql(
            "INSERT INTO audit_events (at, actor, action, outcome) VALUES \
             ('2026-01-01T00:00:00Z', 'old', 'grant.created', 'succeeded'), \
             ('2026-01-01T00:00:01Z', 'old', 'grant.created', 'succeeded')",
        )
        .execute(&mut c)
        .await
        .unwrap();
    }
    let store = db.store().await;
    let ids = five_entries(store.as_ref()).await;
    let report = verify(store.as_ref()).await;
    assert_eq!(report.problem, None, "{report:?}");
    assert_eq!((report.verified, report.legacy), (5, 2));
    assert_eq!(report.head.legacy_through, 2);
    assert!(ids[0] > 2);
    let (ok, out, _) = cli_verify(&db).await;
    assert!(ok);
    assert!(
        out.contains("2 entries from before the chain are not covered"),
        "{out}"
    );
}

crate::backend_tests!(
    an_untouched_trail_verifies,
    an_edited_entry_is_named,
    a_deleted_entry_is_named,
    entries_written_around_the_chain_are_named,
    the_service_s_entries_chain,
);
