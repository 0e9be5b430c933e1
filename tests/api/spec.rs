//! OpenAI's published admin API spec (`spec/openai-admin-api/openapi.admin.yaml`) as a
//! response validator: the arbiter when the sandbox and our client disagree.
//!
//! The YAML is loaded once per test binary. Every response schema (a documented status of an
//! operation, plus `ErrorResponse` for undocumented error statuses) is put beside the
//! component schemas in the `$defs` of one JSON Schema 2020-12 document, with
//! `#/components/schemas/X` rewritten to `#/$defs/X` and OpenAPI 3.0 `nullable: true` turned
//! into `anyOf [.., null]`; `jsonschema` compiles that document once into a map of validators.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// Where the spec lives, relative to the crate root (CI runs from a fresh clone).
pub const SPEC_PATH: &str = "spec/openai-admin-api/openapi.admin.yaml";

/// The loaded spec.
pub struct Spec {
    /// `(METHOD, normalized template)` → operation.
    operations: BTreeMap<(String, String), Operation>,
    validators: jsonschema::ValidatorMap,
    /// Schema for error statuses an operation does not document (OpenAI's `ErrorResponse`);
    /// `None`: an undocumented status is a violation (our own document).
    error_schema: Option<String>,
}

/// One operation of the spec.
pub struct Operation {
    pub operation_id: String,
    /// The template as the spec writes it (`/organization/projects/{project_id}`).
    pub template: String,
    /// Documented status (`"200"`, `"400"`, `"default"`) → `$defs` key of its JSON schema
    /// (`None`: documented without a JSON body) and its media type.
    responses: BTreeMap<String, Response>,
}

/// One documented response.
struct Response {
    schema: Option<String>,
    media_type: Option<String>,
}

/// Why a response breaks the contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// JSON pointer into the response body (empty = the whole body).
    pub pointer: String,
    pub error: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} -> {}: at '{}': {}",
            self.method, self.path, self.status, self.pointer, self.error
        )
    }
}

/// `{project_id}` and `{id}` alike become `{}`: the sandbox and the spec may name them apart.
pub fn normalize_template(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut in_param = false;
    for c in template.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push('{');
            }
            '}' => {
                in_param = false;
                out.push('}');
            }
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// The spec, loaded and compiled once.
pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SPEC_PATH);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let doc: Value = serde_norway::from_str(&text)
            .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
        Spec::from_openapi(&doc, Some(ERROR_SCHEMA))
    })
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];
const ERROR_SCHEMA: &str = "ErrorResponse";
/// Media types whose bodies are one JSON document.
const JSON_TYPES: [&str; 2] = ["application/json", "application/problem+json"];

impl Spec {
    /// Compiles an OpenAPI 3.x document (as JSON). `error_schema` validates error statuses
    /// an operation does not document; without it they are violations.
    pub fn from_openapi(doc: &Value, error_schema: Option<&str>) -> Spec {
        let mut defs: Map<String, Value> = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(name) = error_schema {
            assert!(defs.contains_key(name), "the spec has no {name} schema");
        }
        let mut operations = BTreeMap::new();
        let mut n = 0usize;
        for (template, item) in doc["paths"].as_object().expect("spec paths") {
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let mut responses = BTreeMap::new();
                for (status, resp) in op["responses"].as_object().into_iter().flatten() {
                    let resp = resolve(doc, resp);
                    let content = resp["content"].as_object();
                    let media_type = content.and_then(|c| c.keys().next().cloned());
                    let schema = content.and_then(|c| {
                        JSON_TYPES
                            .iter()
                            .find_map(|t| c.get(*t).and_then(|m| m.get("schema")))
                    });
                    let schema = schema.map(|schema| {
                        let key = format!("__response_{n}");
                        n += 1;
                        defs.insert(key.clone(), schema.clone());
                        key
                    });
                    responses.insert(status.clone(), Response { schema, media_type });
                }
                operations.insert(
                    (method.to_uppercase(), normalize_template(template)),
                    Operation {
                        operation_id: op["operationId"].as_str().unwrap_or_default().to_owned(),
                        template: template.clone(),
                        responses,
                    },
                );
            }
        }
        let mut root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": Value::Object(defs),
        });
        rewrite(&mut root);
        let validators = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            // Formats (uuid, date-time, email) are part of a contract we write ourselves.
            .should_validate_formats(error_schema.is_none())
            .build_map(&root)
            .unwrap_or_else(|e| panic!("compile the spec's schemas: {e}"));
        Spec {
            operations,
            validators,
            error_schema: error_schema.map(str::to_owned),
        }
    }

    /// The template of the operation serving `method` on a concrete `path`; a literal segment
    /// beats a parameter (`/v1/connections/test` over `/v1/connections/{connection_id}`).
    pub fn template_for(&self, method: &str, path: &str) -> Option<&str> {
        let segments: Vec<&str> = path.split('/').collect();
        self.operations
            .iter()
            .filter(|((m, _), _)| m.eq_ignore_ascii_case(method))
            .filter_map(|(_, op)| {
                let parts: Vec<&str> = op.template.split('/').collect();
                if parts.len() != segments.len() {
                    return None;
                }
                let mut literals = 0;
                for (part, segment) in parts.iter().zip(&segments) {
                    if part.starts_with('{') {
                        continue;
                    }
                    if part != segment {
                        return None;
                    }
                    literals += 1;
                }
                Some((literals, op.template.as_str()))
            })
            .max_by_key(|(literals, _)| *literals)
            .map(|(_, template)| template)
    }

    /// `Some(media type)` when `status` is documented for the operation (the inner `None`:
    /// documented without a body).
    pub fn documented(&self, method: &str, template: &str, status: u16) -> Option<Option<&str>> {
        let response = self
            .operation(method, template)?
            .responses
            .get(&status.to_string())?;
        Some(response.media_type.as_deref())
    }

    /// The operation served at `method` + `template` (any parameter names).
    pub fn operation(&self, method: &str, template: &str) -> Option<&Operation> {
        self.operations
            .get(&(method.to_uppercase(), normalize_template(template)))
    }

    /// Every operation: `(METHOD, spec template, operation)`.
    pub fn operations(&self) -> impl Iterator<Item = (&str, &Operation)> {
        self.operations.iter().map(|((m, _), op)| (m.as_str(), op))
    }

    /// Checks one response body. `path` is only for the message.
    pub fn validate(
        &self,
        method: &str,
        template: &str,
        path: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), Vec<Violation>> {
        let violation = |pointer: &str, error: String| Violation {
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            pointer: pointer.to_owned(),
            error,
        };
        let Some(op) = self.operation(method, template) else {
            return Err(vec![violation(
                "",
                format!("the spec has no operation {method} {template}"),
            )]);
        };
        let key = match op
            .responses
            .get(&status.to_string())
            .or_else(|| op.responses.get("default"))
        {
            Some(Response {
                schema: Some(key), ..
            }) => key.as_str(),
            Some(Response { schema: None, .. }) => return Ok(()),
            // Undocumented error statuses (401, 403, 404, 5xx): OpenAI's error shape.
            None if status >= 400 && self.error_schema.is_some() => {
                self.error_schema.as_deref().unwrap_or_default()
            }
            None => {
                return Err(vec![violation(
                    "",
                    format!(
                        "status {status} is not documented for {} (documented: {:?})",
                        op.operation_id,
                        op.responses.keys().collect::<Vec<_>>()
                    ),
                )]);
            }
        };
        let validator = self
            .validators
            .get(&format!("#/$defs/{key}"))
            .unwrap_or_else(|| panic!("no compiled validator for {key}"));
        let errors: Vec<Violation> = validator
            .iter_errors(body)
            .map(|e| {
                violation(
                    &e.instance_path().to_string(),
                    format!("{e} (schema {} of {})", e.schema_path(), op.operation_id),
                )
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Follows a `$ref` to `#/components/responses/...` (one level, as the spec uses).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

/// `#/components/schemas/X` → `#/$defs/X`; `nullable: true` → `anyOf [schema, null]`.
fn rewrite(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref")
                && let Some(name) = r.strip_prefix("#/components/schemas/")
            {
                *r = format!("#/$defs/{name}");
            }
            for child in map.values_mut() {
                rewrite(child);
            }
            if map.remove("nullable") == Some(Value::Bool(true)) {
                let inner = Value::Object(std::mem::take(map));
                map.insert("anyOf".to_owned(), json!([inner, {"type": "null"}]));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_normalize() {
        assert_eq!(
            normalize_template("/organization/projects/{project_id}/users/{user_id}"),
            "/organization/projects/{}/users/{}"
        );
    }

    #[test]
    fn nullable_becomes_any_of() {
        let mut v = json!({"type": "string", "nullable": true});
        rewrite(&mut v);
        assert_eq!(v, json!({"anyOf": [{"type": "string"}, {"type": "null"}]}));
    }
}
