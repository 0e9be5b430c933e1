//! Rules between the fields of a request body, written into the document as JSON Schema
//! combinators: `#[derive(ToSchema)]` states each field on its own, but "exactly one target",
//! "a person or a group", "not both expiries" and "one connection or all of them" are rules
//! about several fields, and a client or fuzzer reading only the fields would send bodies
//! the service refuses with 422 while the document calls them valid.
//!
//! The service reads `null` as absent, so "given" is "present and not null"
//! (`{"required": [f], "properties": {f: {"type": T}}}`) and "not given" is "absent or null"
//! (`{"properties": {f: {"type": "null"}}}`). Each rule mirrors a check in the domain
//! (`GrantIn::parse`, the offboarding `validate`, `set_grant_expiry`); the contract tests
//! hold the two together.

use serde_json::{Map, Value, json};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{OpenApi, RefOr};

/// Adds each body's rules to its component schema.
pub fn document(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for (name, rule) in [
        ("GrantIn", grant_in()),
        ("GrantPatch", grant_patch()),
        ("OffboardingIn", offboarding_in()),
    ] {
        let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) else {
            continue;
        };
        let (key, value) = rule;
        // One key a schema: `Extensions` is a hash map, and one key keeps the output stable.
        object
            .extensions
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value);
    }
}

/// `field` present and of JSON type `ty` (not null).
fn given(field: &str, ty: &str) -> Value {
    json!({"required": [field], "properties": {field: {"type": ty}}})
}

/// Each of `fields` absent or null.
fn not_given(fields: &[&str]) -> Value {
    let properties: Map<String, Value> = fields
        .iter()
        .map(|f| ((*f).to_owned(), json!({"type": "null"})))
        .collect();
    json!({ "properties": properties })
}

/// Schemas that must all hold: `a` and each of `rest` merged into one object schema.
fn both(a: Value, rest: &[Value]) -> Value {
    let mut out = a;
    for r in rest {
        merge(&mut out, r);
    }
    out
}

fn merge(into: &mut Value, from: &Value) {
    let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) else {
        return;
    };
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => {
                a.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())))
            }
            (Some(Value::Array(a)), Value::Array(b)) => a.extend(b.iter().cloned()),
            _ => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

/// A grant: one target, one grantee (a group only for project access or a role), at most
/// one expiry.
fn grant_in() -> (&'static str, Value) {
    let targets = [
        // Project membership, with its role.
        both(
            given("project_id", "string"),
            &[
                given("role", "string"),
                not_given(&["group_id", "role_id", "organization_role"]),
            ],
        ),
        // A group membership (for a person), `role` left out or `member`.
        both(
            given("group_id", "string"),
            &[
                not_given(&[
                    "project_id",
                    "role_id",
                    "organization_role",
                    "grantee_group_id",
                ]),
                json!({"properties": {"role": {"enum": ["member", null]}}}),
            ],
        ),
        // A role, organization-wide or (with `project_id`) in a project.
        both(
            given("role_id", "string"),
            &[not_given(&["group_id", "organization_role", "role"])],
        ),
        // An organization role (for a person).
        both(
            given("organization_role", "string"),
            &[not_given(&[
                "project_id",
                "group_id",
                "role_id",
                "role",
                "grantee_group_id",
            ])],
        ),
    ];
    let grantees = [
        both(
            given("email", "string"),
            &[not_given(&["grantee_group_id"])],
        ),
        both(
            given("user_id", "string"),
            &[not_given(&["grantee_group_id"])],
        ),
        both(
            given("grantee_group_id", "string"),
            &[not_given(&["email", "user_id"])],
        ),
    ];
    (
        "allOf",
        json!([
            {"anyOf": targets},
            {"anyOf": grantees},
            {"anyOf": [not_given(&["expires_at"]), not_given(&["expires_in_seconds"])]},
        ]),
    )
}

/// A new expiry: exactly one of the two forms.
fn grant_patch() -> (&'static str, Value) {
    (
        "oneOf",
        json!([
            given("expires_at", "string"),
            given("expires_in_seconds", "number")
        ]),
    )
}

/// An offboarding: a person (by email, user id or both), and one connection or all.
fn offboarding_in() -> (&'static str, Value) {
    (
        "allOf",
        json!([
            {"anyOf": [given("email", "string"), given("user_id", "string")]},
            {"anyOf": [
                both(
                    given("connection_id", "string"),
                    &[json!({"properties": {"all_connections": {"enum": [false]}}})],
                ),
                both(
                    json!({"required": ["all_connections"],
                           "properties": {"all_connections": {"enum": [true]}}}),
                    &[not_given(&["connection_id"])],
                ),
            ]},
        ]),
    )
}
