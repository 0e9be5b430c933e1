//! The audit trail and the changes feed never skip an entry for a reader that polls with
//! `after=`: many writers (grants and revokes, syncs of several connections, connection
//! changes) commit concurrently, on Postgres with deliberate pauses inside their transactions
//! (test triggers, so commits land in another order than the rows were written), while a
//! reader polls both feeds as fast as it can. At the end the reader holds exactly the table's
//! ids, each entry's link to the one before checks, and the figures are printed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openai_governor::auth::Scope;
use openai_governor::store::Backend;
use openai_governor_sandbox::KeyProfile;
use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::helpers::{TestApp, sandbox_person, sandbox_project, synced_connection};
use crate::inventory::full_sync;

/// Pauses inside the writers' transactions, after the statements that write the feeds and the
/// rows around them: up to 25 ms, and up to 250 ms after a diff is inserted. Without
/// commit-ordered ids, that pause lets a later-numbered change of another connection commit
/// first (the test prints how often rows were numbered out of insert order).
const PAUSES: &str = "
CREATE FUNCTION og_test_pause() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(random() * 0.025); RETURN NULL; END $$;
CREATE FUNCTION og_test_long_pause() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(random() * 0.25); RETURN NULL; END $$;
CREATE TRIGGER og_pause AFTER INSERT ON inventory_changes
    FOR EACH STATEMENT EXECUTE FUNCTION og_test_long_pause();
CREATE TRIGGER og_pause_update AFTER UPDATE ON inventory_changes
    FOR EACH STATEMENT EXECUTE FUNCTION og_test_pause();
CREATE TRIGGER og_pause AFTER INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION og_test_pause();
CREATE TRIGGER og_pause AFTER UPDATE ON inventory_syncs
    FOR EACH ROW EXECUTE FUNCTION og_test_pause();
CREATE TRIGGER og_pause AFTER INSERT OR UPDATE ON grants
    FOR EACH ROW EXECUTE FUNCTION og_test_pause();
CREATE TRIGGER og_pause AFTER INSERT OR UPDATE ON connections
    FOR EACH ROW EXECUTE FUNCTION og_test_pause();
";

/// What the reader kept of one feed.
#[derive(Default)]
struct Kept {
    entries: Vec<Value>,
    /// When the reader first held each entry.
    seen: Vec<Instant>,
    /// Pages read.
    polls: u64,
    /// The longest drain (reading pages until one says there is no more): a reader that
    /// drains without pause sees an entry at most two drains after its commit.
    longest_drain: Duration,
}

impl Kept {
    fn last(&self) -> Option<i64> {
        self.entries.last().map(|e| e["id"].as_i64().unwrap())
    }
}

/// Reads `path?after=…` until a page says there is no more, appending to `kept`.
async fn drain(app: &TestApp, token: &str, path: &str, kept: &mut Kept) {
    let started = Instant::now();
    loop {
        let after = kept
            .last()
            .map(|a| format!("&after={a}"))
            .unwrap_or_default();
        let res = app.get(&format!("{path}?limit=500{after}"), token).await;
        assert_eq!(res.status(), 200, "{path}");
        let page: Value = res.json().await.unwrap();
        kept.polls += 1;
        let data = page["data"].as_array().unwrap();
        kept.entries.extend(data.iter().cloned());
        kept.seen.extend(data.iter().map(|_| Instant::now()));
        if page["has_more"] != true {
            break;
        }
    }
    kept.longest_drain = kept.longest_drain.max(started.elapsed());
}

/// The database, for the test's own reads (the largest ids committed so far, the tables at
/// the end).
enum Db {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl Db {
    async fn open(app: &TestApp) -> Db {
        match app.db.backend {
            Backend::Postgres => {
                Db::Postgres(sqlx::PgConnection::connect(&app.db.url).await.unwrap())
            }
            Backend::Sqlite => {
                Db::Sqlite(sqlx::SqliteConnection::connect(&app.db.url).await.unwrap())
            }
        }
    }

    /// The ids `sql` selects (one integer column), in order.
    async fn ids(&mut self, sql: &str) -> Vec<i64> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Db::Postgres(c) => sqlx::query_scalar(sql).fetch_all(c).await.unwrap(),
            Db::Sqlite(c) => sqlx::query_scalar(sql).fetch_all(c).await.unwrap(),
        }
    }

    /// The largest id `column` of `table` holds (0 when empty).
    async fn max(&mut self, table: &str, column: &str) -> i64 {
        let sql = format!("SELECT COALESCE(MAX({column}), 0) FROM {table}");
        self.ids(&sql).await[0]
    }
}

/// When a writer learned that its write committed (its answer came back), by `grant:<id>`
/// or `sync:<id>`.
type Committed = Arc<Mutex<HashMap<String, Instant>>>;

/// The longest time from a writer learning its write committed to the reader holding the
/// first entry that records it (`key` names an entry's write; entries seen before the
/// writer's answer count as no lag).
fn largest_lag(
    kept: &Kept,
    committed: &Committed,
    key: impl Fn(&Value) -> Option<String>,
) -> (Duration, usize) {
    let committed = committed.lock().unwrap();
    let mut first: HashMap<String, Instant> = HashMap::new();
    for (e, at) in kept.entries.iter().zip(&kept.seen) {
        if let Some(k) = key(e) {
            first.entry(k).or_insert(*at);
        }
    }
    let lags = first.iter().filter_map(|(k, seen)| {
        committed
            .get(k)
            .map(|done| seen.saturating_duration_since(*done))
    });
    let n = first.keys().filter(|k| committed.contains_key(*k)).count();
    (lags.max().unwrap_or_default(), n)
}

/// Grants project membership to fresh people one after another and revokes each.
async fn grant_and_revoke(
    app: Arc<TestApp>,
    committed: Committed,
    connection: String,
    project: String,
    people: Vec<String>,
) {
    let token = app.token("workflow@corp", &[Scope::AccessWrite]);
    for email in people {
        let res = app
            .post(
                "/v1/grants",
                &token,
                json!({"connection_id": connection, "email": email, "project_id": project,
                       "role": "member", "reason": "feed test", "ticket": "FEED-1"}),
            )
            .await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        let g: Value = res.json().await.unwrap();
        let id = g["id"].as_str().unwrap();
        committed
            .lock()
            .unwrap()
            .insert(format!("grant:{id}"), Instant::now());
        let res = app
            .post(&format!("/v1/grants/{id}/revoke"), &token, json!({}))
            .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }
}

/// Syncs `connection` `rounds` times, a person joining the organization before each.
async fn sync_rounds(
    app: Arc<TestApp>,
    committed: Committed,
    connection: String,
    tag: &'static str,
    rounds: usize,
) {
    for round in 0..rounds {
        sandbox_person(&app.sandbox, &format!("{tag}-{round}@feeds.test"), "reader");
        let run = full_sync(&app, &connection).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let id = run["id"].as_str().unwrap();
        committed
            .lock()
            .unwrap()
            .insert(format!("sync:{id}"), Instant::now());
    }
}

/// Renames a connection, and adds and deletes throwaway ones (none of them synced: a deleted
/// connection's changes go with it, and this test compares against the table).
async fn connection_changes(app: Arc<TestApp>, connection: String, rounds: usize) {
    let admin = app.admin_token();
    for round in 0..rounds {
        let res = app
            .patch(
                &format!("/v1/connections/{connection}"),
                &admin,
                json!({"name": format!("renamed-{round}")}),
            )
            .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        let c = app
            .create_connection(
                &format!("throwaway-{round}"),
                app.sandbox.key(KeyProfile::All),
            )
            .await;
        let res = app
            .delete(
                &format!("/v1/connections/{}", c["id"].as_str().unwrap()),
                &admin,
            )
            .await;
        assert_eq!(res.status(), 204);
    }
}

async fn a_polling_reader_misses_no_entry(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let project = sandbox_project(&app.sandbox, "Feeds").await;
    let people: Vec<Vec<String>> = (0..2)
        .map(|w| {
            (0..6)
                .map(|i| {
                    let email = format!("grantee-{w}-{i}@feeds.test");
                    sandbox_person(&app.sandbox, &email, "reader");
                    email
                })
                .collect()
        })
        .collect();
    let granting = synced_connection(&app, "granting").await;
    let mut syncing = Vec::new();
    for name in ["sync-a", "sync-b", "sync-c", "sync-d"] {
        syncing.push(synced_connection(&app, name).await);
    }
    let renamed = app
        .create_connection("renamed", app.sandbox.key(KeyProfile::All))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    if backend == Backend::Postgres {
        let mut c = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
        sqlx::raw_sql(PAUSES).execute(&mut c).await.unwrap();
    }

    let app = Arc::new(app);
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (app, done) = (app.clone(), done.clone());
        tokio::spawn(async move {
            let token = app.token("siem", &[Scope::AuditRead, Scope::InventoryRead]);
            let mut db = Db::open(&app).await;
            let (mut audit, mut changes) = (Kept::default(), Kept::default());
            loop {
                // What had committed before the drains began: they must return all of it
                // (nothing committed is held back, so the only lag is the reader's own).
                let last = done.load(Ordering::SeqCst);
                let committed = (
                    db.max("audit_events", "event_id").await,
                    db.max("inventory_changes", "seq").await,
                );
                let before = (audit.entries.len(), changes.entries.len());
                drain(&app, &token, "/v1/audit", &mut audit).await;
                drain(&app, &token, "/v1/changes", &mut changes).await;
                assert!(
                    audit.last().unwrap_or(0) >= committed.0,
                    "an audit entry held back"
                );
                assert!(
                    changes.last().unwrap_or(0) >= committed.1,
                    "a change held back"
                );
                // Read on until a drain begun after the writers stopped finds nothing new.
                if last && before == (audit.entries.len(), changes.entries.len()) {
                    return (audit, changes);
                }
            }
        })
    };
    let committed = Committed::default();
    let started = Instant::now();
    let mut writers = Vec::new();
    for people in people {
        writers.push(tokio::spawn(grant_and_revoke(
            app.clone(),
            committed.clone(),
            granting.clone(),
            project.clone(),
            people,
        )));
    }
    for (id, tag) in syncing.iter().zip(["a", "b", "c", "d"]) {
        writers.push(tokio::spawn(sync_rounds(
            app.clone(),
            committed.clone(),
            id.clone(),
            tag,
            4,
        )));
    }
    writers.push(tokio::spawn(connection_changes(app.clone(), renamed, 6)));
    for w in writers {
        w.await.expect("writer");
    }
    let wrote_for = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let (audit, changes) = reader.await.expect("reader");

    // The audit trail: exactly the table's ids, in order, the chain unbroken.
    let ids: Vec<i64> = audit
        .entries
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    let mut db = Db::open(&app).await;
    let table = db
        .ids("SELECT event_id FROM audit_events ORDER BY event_id")
        .await;
    assert_eq!(ids, table, "the reader holds every audit entry");
    for pair in audit.entries.windows(2) {
        assert_eq!(
            pair[1]["seq"].as_i64(),
            pair[0]["seq"].as_i64().map(|s| s + 1)
        );
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    assert_eq!(audit.entries[0]["seq"], 1);

    // The changes feed: the table's ids, dense, each linked to its connection's previous.
    let ids: Vec<i64> = changes
        .entries
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    let table = db
        .ids("SELECT seq FROM inventory_changes ORDER BY seq")
        .await;
    assert_eq!(ids, table, "the reader holds every change");
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "change ids are dense"
    );
    let mut last: HashMap<String, i64> = HashMap::new();
    for c in &changes.entries {
        let connection = c["connection_id"].as_str().unwrap().to_owned();
        assert_eq!(
            c["previous_id"].as_i64(),
            last.get(&connection).copied(),
            "{c}"
        );
        last.insert(connection, c["id"].as_i64().unwrap());
    }
    for id in &syncing {
        assert!(last.contains_key(id), "connection {id} recorded changes");
    }
    // How often a change was inserted before another yet numbered after it: each is a place
    // where ids handed out at insert time would have let a reader skip.
    let inserted = db
        .ids("SELECT change_id FROM inventory_changes ORDER BY seq")
        .await;
    let reordered = inserted.windows(2).filter(|w| w[1] < w[0]).count();
    let (audit_lag, grants) = largest_lag(&audit, &committed, |e| {
        (e["action"] == "grant.created")
            .then(|| format!("grant:{}", e["grant_id"].as_str().unwrap()))
    });
    let (changes_lag, syncs) = largest_lag(&changes, &committed, |c| {
        Some(format!("sync:{}", c["sync_id"].as_str().unwrap()))
    });
    assert_eq!(grants, 12, "every grant's entry was matched");
    assert!(syncs > 0);
    eprintln!(
        "feeds ({backend:?}): writers ran {:.1} s; audit: {} entries, {} pages read, longest \
         drain {} ms, largest lag {} ms ({grants} grants); changes: {} entries, {} pages read, \
         longest drain {} ms, largest lag {} ms ({syncs} syncs); changes committed out of \
         insert order: {reordered}",
        wrote_for.as_secs_f64(),
        audit.entries.len(),
        audit.polls,
        audit.longest_drain.as_millis(),
        audit_lag.as_millis(),
        changes.entries.len(),
        changes.polls,
        changes.longest_drain.as_millis(),
        changes_lag.as_millis(),
    );
}

crate::backend_tests!(a_polling_reader_misses_no_entry);
