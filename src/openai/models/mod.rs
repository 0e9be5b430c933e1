//! Typed, lenient models of OpenAI admin API objects (requests and responses).
//!
//! Lenient on purpose: unknown fields are ignored, missing fields default, roles are open
//! strings and closed-looking enums keep unknown values (`Unknown(String)`), so a field or
//! value OpenAI adds next month does not break a sync. Secrets returned once are
//! `SecretString`; timestamps are Unix seconds. Plain data: depends on nothing else of ours.
//! The models kept as inventory items also derive `utoipa::ToSchema` (components named
//! `OpenAi<Type>`), only to document them where the API serves them.

use serde::{Deserialize, Deserializer, Serialize};

/// Deserialises `null` as the type's default (OpenAI sends `null` for some documented arrays).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Declares a string enum that keeps unknown values in `Unknown(String)`. Its schema
/// (component `OpenAi<Name>`) is a plain string listing the known values, not an `enum`:
/// unknown values are kept and served again.
macro_rules! open_enum {
    ($(#[doc = $doc:literal])* $name:ident { $($(#[doc = $vdoc:literal])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($(#[doc = $vdoc])* $variant,)+
            /// A value this client does not know yet, kept as sent.
            Unknown(String),
        }

        impl $name {
            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Unknown(other) => other,
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($text => $name::$variant,)+
                    _ => $name::Unknown(s),
                }
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::openai::models::open_enum_schema(
                    &[$($doc),*],
                    &[$(($text, &[$($vdoc),*] as &[&str])),+],
                )
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(concat!("OpenAi", stringify!($name)))
            }
        }
    };
}

/// The schema of an [`open_enum!`]: a string whose description lists the known values
/// (with their docs), which are also its `examples`.
fn open_enum_schema(
    docs: &[&str],
    values: &[(&str, &[&str])],
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let join = |lines: &[&str]| {
        let lines: Vec<&str> = lines.iter().map(|l| l.trim()).collect();
        lines.join(" ")
    };
    let mut description = join(docs);
    if !description.is_empty() {
        description.push_str("\n\n");
    }
    description
        .push_str("An open string: OpenAI may add values, which are kept as sent. Known values:");
    for (text, vdocs) in values {
        description.push_str(&format!("\n- `{text}`"));
        if !vdocs.is_empty() {
            description.push_str(": ");
            description.push_str(&join(vdocs));
        }
    }
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .examples(values.iter().map(|(text, _)| *text))
        .into()
}

mod projects;
mod rbac;
mod reports;
mod users;

pub use projects::*;
pub use rbac::*;
pub use reports::*;
pub use users::*;

/// The answer of every delete (`{object, id?, deleted}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Deleted {
    pub object: String,
    /// The deleted id (RBAC membership deletes omit it).
    pub id: Option<String>,
    pub deleted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn unknown_fields_and_enum_values_are_kept_or_ignored() {
        let json = r#"{"object":"organization.invite","id":"invite-1","email":"a@b.c","role":"writer",
            "status":"revoked","created_at":1,"brand_new_field":{"x":1},"projects":null}"#;
        let invite: Invite = serde_json::from_str(json).unwrap();
        assert_eq!(invite.status, InviteStatus::Unknown("revoked".into()));
        assert_eq!(invite.role, "writer");
        assert!(invite.projects.is_empty());
        let back = serde_json::to_value(&invite).unwrap();
        assert_eq!(back["status"], "revoked");
        let invite: Invite = serde_json::from_str(
            r#"{"id":"i","status":"pending","email":"e","role":"reader","created_at":2}"#,
        )
        .unwrap();
        assert_eq!(invite.status, InviteStatus::Pending);
    }

    #[test]
    fn optional_fields_may_be_missing_or_null() {
        let user: OrgUser =
            serde_json::from_str(r#"{"id":"user-1","added_at":5,"role":null,"name":null}"#)
                .unwrap();
        assert_eq!(user.id, "user-1");
        assert_eq!(user.role, None);
        let role: Role = serde_json::from_str(r#"{"id":"role_1","permissions":null}"#).unwrap();
        assert!(role.permissions.is_empty());
    }

    #[test]
    fn audit_log_details_are_found_by_type() {
        let json = r#"{"id":"audit_log-1","type":"user.added","effective_at":7,
            "actor":{"type":"api_key","api_key":{"id":"key_1","type":"user","user":{"id":"u","email":"e"}}},
            "user.added":{"id":"user_x","data":{"role":"member"}}}"#;
        let log: AuditLog = serde_json::from_str(json).unwrap();
        assert_eq!(log.details().unwrap()["data"]["role"], "member");
        let actor = log.actor.unwrap();
        assert_eq!(actor.actor_type, Some(AuditActorType::ApiKey));
    }

    #[test]
    fn service_account_key_value_is_secret() {
        let json = r#"{"id":"svc_acct_1","name":"bot","role":"member","created_at":1,
            "api_key":{"object":"organization.project.service_account.api_key","id":"key_1","name":"k","value":"sk-svcacct-TOPSECRET","created_at":1}}"#;
        let created: CreatedServiceAccount = serde_json::from_str(json).unwrap();
        let shown = format!("{created:?}");
        assert!(!shown.contains("TOPSECRET"), "{shown}");
        let value = created.api_key.unwrap().value.unwrap();
        assert_eq!(value.expose_secret(), "sk-svcacct-TOPSECRET");
    }

    #[test]
    fn group_accepts_scim_managed_alias() {
        let g: Group = serde_json::from_str(
            r#"{"object":"group","id":"g","name":"n","created_at":1,"scim_managed":true}"#,
        )
        .unwrap();
        assert!(g.is_scim_managed);
    }

    #[test]
    fn usage_results_keep_endpoint_specific_counters() {
        let json = r#"{"object":"bucket","start_time":0,"end_time":86400,"results":[
            {"object":"organization.usage.images.result","images":3,"num_model_requests":2,"size":"1024x1024"}]}"#;
        let b: UsageBucket = serde_json::from_str(json).unwrap();
        assert_eq!(b.results[0].num_model_requests, Some(2));
        assert_eq!(b.results[0].metrics["images"], 3);
    }
}
