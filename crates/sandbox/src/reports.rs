//! Read-only reports: the audit log, usage (`/organization/usage/*`) and costs.
//!
//! Usage and cost figures are not stored: each bucket is computed from the seed, the bucket's
//! start and a few dimensions, so any range answers at once and the same query always gives
//! the same numbers. Depends only on the sandbox's model and HTTP plumbing.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::SandboxState;
use super::http::{ApiError, ApiResult, Params, bad_cursor, legacy_list};
use super::model::{KeyOwner, Org};

const USAGE_KINDS: &[&str] = &[
    "completions",
    "embeddings",
    "moderations",
    "images",
    "audio_speeches",
    "audio_transcriptions",
    "vector_stores",
    "code_interpreter_sessions",
    "file_search_calls",
    "web_search_calls",
];

pub fn routes() -> Router<SandboxState> {
    let mut r = Router::new()
        .route("/organization/audit_logs", get(list_audit_logs))
        .route(
            "/organization/costs",
            get(
                |State(s): State<SandboxState>, RawQuery(q): RawQuery| async move {
                    usage(&s, "costs", q.as_deref())
                },
            ),
        );
    for kind in USAGE_KINDS {
        r = r.route(
            &format!("/organization/usage/{kind}"),
            get(
                move |State(s): State<SandboxState>, RawQuery(q): RawQuery| async move {
                    usage(&s, kind, q.as_deref())
                },
            ),
        );
    }
    r
}

async fn list_audit_logs(State(s): State<SandboxState>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let limit = p.limit(20, 1, 100)?;
    let bounds = [
        p.int("effective_at[gt]")?,
        p.int("effective_at[gte]")?,
        p.int("effective_at[lt]")?,
        p.int("effective_at[lte]")?,
    ];
    let projects = p.all("project_ids");
    let types = p.all("event_types");
    let actor_ids = p.all("actor_ids");
    let actor_emails: Vec<String> = p
        .all("actor_emails")
        .iter()
        .map(|e| e.to_lowercase())
        .collect();
    let resources = p.all("resource_ids");
    let tenant_only = p.bool("tenant_only")?.unwrap_or(false);
    s.read(|org| {
        let keep = |e: &&super::model::AuditEvent| {
            let t = e.effective_at;
            !tenant_only
                && bounds[0].is_none_or(|b| t > b)
                && bounds[1].is_none_or(|b| t >= b)
                && bounds[2].is_none_or(|b| t < b)
                && bounds[3].is_none_or(|b| t <= b)
                && (projects.is_empty()
                    || e.project
                        .as_ref()
                        .is_some_and(|(id, _)| projects.contains(&id.as_str())))
                && (types.is_empty() || types.contains(&e.kind.as_str()))
                && (actor_ids.is_empty()
                    || actor_ids.contains(&e.actor_user_id.as_str())
                    || e.actor_key_id
                        .as_deref()
                        .is_some_and(|k| actor_ids.contains(&k)))
                && (actor_emails.is_empty() || actor_emails.contains(&e.actor_email.to_lowercase()))
                && (resources.is_empty() || resources.contains(&e.resource_id.as_str()))
        };
        // Newest first; `after` pages towards older events, `before` towards newer ones.
        let (items, more) = match p.get("before") {
            Some(before) => {
                let (mut items, more) = org
                    .audit
                    .page(Some(before), limit, false, |e| keep(&e))
                    .map_err(bad_cursor)?;
                items.reverse();
                (items, more)
            }
            None => org
                .audit
                .page(p.get("after"), limit, true, |e| keep(&e))
                .map_err(bad_cursor)?,
        };
        Ok(legacy_list(
            items.iter().map(|e| e.to_json()).collect(),
            more,
        ))
    })
}

/// splitmix64: a cheap, well-mixed hash for deterministic figures.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const MODELS: &[&str] = &["gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14"];

/// One cell of usage: a project × model in a bucket.
struct Cell {
    project_id: String,
    user_id: Option<String>,
    api_key_id: Option<String>,
    model: &'static str,
    requests: u64,
    input: u64,
    output: u64,
    cached: u64,
}

#[derive(Default)]
struct Sums {
    requests: u64,
    input: u64,
    output: u64,
    cached: u64,
}

fn cells(org: &Org, bucket: i64, width: i64) -> Vec<Cell> {
    let users: Vec<&str> = org.users.iter().take(3).map(|u| u.id.as_str()).collect();
    let mut out = Vec::new();
    // A handful of busy projects keeps reports the same size whatever the org's size.
    for (pi, p) in org
        .projects
        .iter()
        .filter(|p| !p.archived())
        .take(3)
        .enumerate()
    {
        let key = org.api_keys.get(&p.id).and_then(|t| {
            t.iter()
                .find(|k| matches!(k.owner, KeyOwner::User(_)))
                .or_else(|| t.iter().next())
                .map(|k| k.id.clone())
        });
        for (mi, model) in MODELS.iter().enumerate() {
            let h = mix(org.seed
                ^ (bucket as u64).wrapping_mul(31)
                ^ ((pi as u64) << 40)
                ^ ((mi as u64) << 48));
            if h.is_multiple_of(5) {
                continue;
            }
            let scale = (width / 60).max(1) as u64;
            let requests = 1 + (h >> 8) % (scale.min(1440) * 3);
            let input = requests * (100 + (h >> 20) % 2000);
            let output = requests * (10 + (h >> 32) % 500);
            out.push(Cell {
                project_id: p.id.clone(),
                user_id: (!users.is_empty())
                    .then(|| users[(h as usize >> 3) % users.len()].to_owned()),
                api_key_id: key.clone(),
                model,
                requests,
                input,
                output,
                cached: input / 4,
            });
        }
    }
    out
}

fn usage(s: &SandboxState, kind: &str, q: Option<&str>) -> ApiResult {
    let p = Params::parse(q);
    let start = p.int("start_time")?.ok_or_else(|| {
        ApiError::invalid(
            "Missing required parameter: 'start_time'.",
            Some("start_time"),
        )
    })?;
    let costs = kind == "costs";
    let width_name = p.get("bucket_width").unwrap_or("1d");
    let (width, default_limit, max_limit) = match (width_name, costs) {
        ("1d", true) => (86_400, 7, 180),
        ("1d", false) => (86_400, 7, 31),
        ("1h", false) => (3_600, 24, 168),
        ("1m", false) => (60, 60, 1_440),
        (w, _) => {
            return Err(ApiError::invalid(
                format!("Invalid 'bucket_width': '{w}'."),
                Some("bucket_width"),
            ));
        }
    };
    let limit = p.limit(default_limit, 1, max_limit)? as i64;
    let group_by = p.all("group_by");
    let allowed: &[&str] = match kind {
        "costs" => &["project_id", "line_item", "api_key_id"],
        "completions" => &[
            "project_id",
            "user_id",
            "api_key_id",
            "model",
            "batch",
            "service_tier",
        ],
        "vector_stores" | "code_interpreter_sessions" => &["project_id"],
        _ => &[
            "project_id",
            "user_id",
            "api_key_id",
            "model",
            "size",
            "source",
            "vector_store_id",
            "context_level",
        ],
    };
    if let Some(bad) = group_by.iter().find(|g| !allowed.contains(g)) {
        return Err(ApiError::invalid(
            format!("Invalid 'group_by' value: '{bad}'."),
            Some("group_by"),
        ));
    }
    let project_ids = p.all("project_ids");
    let user_ids = p.all("user_ids");
    let key_ids = p.all("api_key_ids");
    let models = p.all("models");
    s.read(|org| {
        let now = org.now();
        let end = p.int("end_time")?.unwrap_or(now);
        if end <= start {
            return Err(ApiError::invalid(
                "'end_time' must be after 'start_time'.",
                Some("end_time"),
            ));
        }
        let first = start.div_euclid(width) * width;
        let mut cursor = match p.get("page") {
            None => first,
            Some(page) => page
                .strip_prefix("page_")
                .and_then(|h| i64::from_str_radix(h, 16).ok())
                .filter(|c| *c >= first && (*c - first) % width == 0)
                .ok_or_else(|| ApiError::invalid("Invalid 'page' cursor.", Some("page")))?,
        };
        let mut data = Vec::new();
        while cursor < end && (data.len() as i64) < limit {
            let mut groups: BTreeMap<Vec<Option<String>>, Sums> = BTreeMap::new();
            if cursor + width <= now + width {
                for c in cells(org, cursor, width) {
                    let ok = (project_ids.is_empty()
                        || project_ids.contains(&c.project_id.as_str()))
                        && (user_ids.is_empty()
                            || c.user_id.as_deref().is_some_and(|u| user_ids.contains(&u)))
                        && (key_ids.is_empty()
                            || c.api_key_id
                                .as_deref()
                                .is_some_and(|k| key_ids.contains(&k)))
                        && (models.is_empty() || models.contains(&c.model));
                    if !ok {
                        continue;
                    }
                    let line_item = format!("{}, input", c.model);
                    let key: Vec<Option<String>> =
                        ["project_id", "user_id", "api_key_id", "model", "line_item"]
                            .iter()
                            .map(|d| {
                                if !group_by.contains(d) {
                                    return None;
                                }
                                match *d {
                                    "project_id" => Some(c.project_id.clone()),
                                    "user_id" => c.user_id.clone(),
                                    "api_key_id" => c.api_key_id.clone(),
                                    "model" => Some(c.model.to_owned()),
                                    _ => Some(line_item.clone()),
                                }
                            })
                            .collect();
                    let e = groups.entry(key).or_default();
                    e.requests += c.requests;
                    e.input += c.input;
                    e.output += c.output;
                    e.cached += c.cached;
                }
            }
            let results: Vec<Value> = groups.iter().map(|(k, v)| result(kind, k, v)).collect();
            data.push(
                json!({"object": "bucket", "start_time": cursor, "end_time": cursor + width,
                "results": results}),
            );
            cursor += width;
        }
        let has_more = cursor < end;
        let next_page = has_more.then(|| format!("page_{cursor:x}"));
        Ok(Json(
            json!({"object": "page", "data": data, "has_more": has_more, "next_page": next_page}),
        ))
    })
}

fn result(kind: &str, k: &[Option<String>], v: &Sums) -> Value {
    let (project, user, key, model, line_item) = (&k[0], &k[1], &k[2], &k[3], &k[4]);
    match kind {
        "costs" => {
            let usd = (v.input as f64 * 0.15 + v.output as f64 * 0.6) / 1_000_000.0;
            json!({"object": "organization.costs.result",
                "amount": {"value": (usd * 1e6).round() / 1e6, "currency": "usd"},
                "line_item": line_item, "project_id": project, "api_key_id": key,
                "quantity": null, "quantity_unit": null})
        }
        "completions" => json!({"object": "organization.usage.completions.result",
            "input_tokens": v.input, "output_tokens": v.output, "input_cached_tokens": v.cached,
            "input_audio_tokens": 0, "output_audio_tokens": 0, "num_model_requests": v.requests,
            "project_id": project, "user_id": user, "api_key_id": key, "model": model,
            "batch": null, "service_tier": null}),
        "embeddings" | "moderations" => {
            json!({"object": format!("organization.usage.{kind}.result"),
            "input_tokens": v.input, "num_model_requests": v.requests, "project_id": project,
            "user_id": user, "api_key_id": key, "model": model})
        }
        "images" => json!({"object": "organization.usage.images.result", "images": v.requests,
            "num_model_requests": v.requests, "source": null, "size": null, "project_id": project,
            "user_id": user, "api_key_id": key, "model": model}),
        "audio_speeches" => json!({"object": "organization.usage.audio_speeches.result",
            "characters": v.input, "num_model_requests": v.requests, "project_id": project,
            "user_id": user, "api_key_id": key, "model": model}),
        "audio_transcriptions" => {
            json!({"object": "organization.usage.audio_transcriptions.result",
            "seconds": v.output, "num_model_requests": v.requests, "project_id": project,
            "user_id": user, "api_key_id": key, "model": model})
        }
        "vector_stores" => json!({"object": "organization.usage.vector_stores.result",
            "usage_bytes": v.input * 4, "project_id": project}),
        "code_interpreter_sessions" => {
            json!({"object": "organization.usage.code_interpreter_sessions.result",
            "num_sessions": v.requests, "project_id": project})
        }
        "file_search_calls" => json!({"object": "organization.usage.file_searches.result",
            "num_requests": v.requests, "project_id": project, "user_id": user, "api_key_id": key,
            "vector_store_id": null}),
        _ => json!({"object": "organization.usage.web_searches.result",
            "num_model_requests": v.requests, "num_requests": v.requests, "project_id": project,
            "user_id": user, "api_key_id": key, "model": model, "context_level": null}),
    }
}
