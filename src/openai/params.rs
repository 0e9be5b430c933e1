//! Query parameters of the list operations, and their encoding the way OpenAI's SDKs send them
//! (arrays as `name[]=a&name[]=b`, objects as `name[key]=v`).
//!
//! Plain data; depends on nothing else of ours. `limit: None` sends no limit on a single page
//! call and means "the endpoint's maximum" when streaming.

/// Query pairs in order; names may contain `[]`.
pub(crate) type Query = Vec<(String, String)>;

/// Parameters of a list that pages: its query, its cursor and its page size.
pub(crate) trait Paginated: Clone + Send + Sync + 'static {
    fn query(&self) -> Query;
    /// `after` (or `page` for usage and costs).
    fn cursor(&mut self) -> &mut Option<String>;
    fn limit(&mut self) -> &mut Option<u32>;
}

macro_rules! paginated {
    ($cursor:ident: $($t:ty),+) => {
        $(impl Paginated for $t {
            fn query(&self) -> Query {
                <$t>::query(self)
            }
            fn cursor(&mut self) -> &mut Option<String> {
                &mut self.$cursor
            }
            fn limit(&mut self) -> &mut Option<u32> {
                &mut self.limit
            }
        })+
    };
}
paginated!(after: CursorParams, ListUsersParams, ListProjectsParams, ListProjectApiKeysParams, RbacListParams, AuditLogParams);
paginated!(page: CostsParams, UsageParams);

fn push(q: &mut Query, name: &str, value: impl ToString) {
    q.push((name.to_string(), value.to_string()));
}

fn push_opt(q: &mut Query, name: &str, value: Option<impl ToString>) {
    if let Some(v) = value {
        push(q, name, v);
    }
}

fn push_all(q: &mut Query, name: &str, values: &[String]) {
    for v in values {
        push(q, name, v);
    }
}

/// Sort order of RBAC lists and admin keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    Desc,
}

impl SortOrder {
    fn as_str(self) -> &'static str {
        match self {
            SortOrder::Asc => "asc",
            SortOrder::Desc => "desc",
        }
    }
}

/// `after`/`limit` of the legacy `after=last_id` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CursorParams {
    pub after: Option<String>,
    pub limit: Option<u32>,
}

impl CursorParams {
    pub(crate) fn query(&self) -> Query {
        let mut q = Query::new();
        push_opt(&mut q, "limit", self.limit);
        push_opt(&mut q, "after", self.after.as_deref());
        q
    }
}

/// Parameters of `GET /organization/users`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListUsersParams {
    /// Only these addresses (sent as `emails[]=`).
    pub emails: Vec<String>,
    pub after: Option<String>,
    pub limit: Option<u32>,
}

impl ListUsersParams {
    pub(crate) fn query(&self) -> Query {
        let mut q = Query::new();
        push_opt(&mut q, "limit", self.limit);
        push_opt(&mut q, "after", self.after.as_deref());
        push_all(&mut q, "emails[]", &self.emails);
        q
    }
}

/// Parameters of `GET /organization/projects`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListProjectsParams {
    /// Include archived projects (OpenAI's default is false).
    pub include_archived: bool,
    pub after: Option<String>,
    pub limit: Option<u32>,
}

impl ListProjectsParams {
    pub(crate) fn query(&self) -> Query {
        let mut q = Query::new();
        push_opt(&mut q, "limit", self.limit);
        push_opt(&mut q, "after", self.after.as_deref());
        if self.include_archived {
            push(&mut q, "include_archived", "true");
        }
        q
    }
}

/// Which project API keys to list, by their owner's access.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OwnerAccessFilter {
    /// All keys (the only complete inventory; the default here).
    #[default]
    Any,
    Active,
    Inactive,
    /// Send no filter: OpenAI then applies hidden visibility rules and may omit keys.
    Unset,
}

/// Parameters of `GET /organization/projects/{p}/api_keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListProjectApiKeysParams {
    pub owner_project_access: OwnerAccessFilter,
    pub after: Option<String>,
    pub limit: Option<u32>,
}

impl ListProjectApiKeysParams {
    pub(crate) fn query(&self) -> Query {
        let mut q = Query::new();
        push_opt(&mut q, "limit", self.limit);
        push_opt(&mut q, "after", self.after.as_deref());
        let access = match self.owner_project_access {
            OwnerAccessFilter::Any => Some("any"),
            OwnerAccessFilter::Active => Some("active"),
            OwnerAccessFilter::Inactive => Some("inactive"),
            OwnerAccessFilter::Unset => None,
        };
        push_opt(&mut q, "owner_project_access", access);
        q
    }
}

/// Parameters of the RBAC lists (groups, group users, roles, role assignments, project
/// groups) and of admin keys: `after` is the previous page's `next`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RbacListParams {
    pub after: Option<String>,
    /// Page size (0-1000; project groups 0-100).
    pub limit: Option<u32>,
    pub order: Option<SortOrder>,
}

impl RbacListParams {
    pub(crate) fn query(&self) -> Query {
        let mut q = Query::new();
        push_opt(&mut q, "limit", self.limit);
        push_opt(&mut q, "after", self.after.as_deref());
        push_opt(&mut q, "order", self.order.map(SortOrder::as_str));
        q
    }
}

/// A Unix-seconds range filter (`effective_at[gte]=...`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub gt: Option<i64>,
    pub gte: Option<i64>,
    pub lt: Option<i64>,
    pub lte: Option<i64>,
}

/// Parameters of `GET /organization/audit_logs` (every filter OpenAI documents).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditLogParams {
    pub effective_at: TimeRange,
    pub project_ids: Vec<String>,
    pub event_types: Vec<String>,
    pub actor_ids: Vec<String>,
    pub actor_emails: Vec<String>,
    pub resource_ids: Vec<String>,
    pub tenant_only: Option<bool>,
    pub limit: Option<u32>,
    /// Cursor: events after this id.
    pub after: Option<String>,
    /// Cursor: events before this id.
    pub before: Option<String>,
}

impl AuditLogParams {
    pub(crate) fn query(&self) -> Query {
        let mut q = Query::new();
        let range = &self.effective_at;
        push_opt(&mut q, "effective_at[gt]", range.gt);
        push_opt(&mut q, "effective_at[gte]", range.gte);
        push_opt(&mut q, "effective_at[lt]", range.lt);
        push_opt(&mut q, "effective_at[lte]", range.lte);
        push_all(&mut q, "project_ids[]", &self.project_ids);
        push_all(&mut q, "event_types[]", &self.event_types);
        push_all(&mut q, "actor_ids[]", &self.actor_ids);
        push_all(&mut q, "actor_emails[]", &self.actor_emails);
        push_all(&mut q, "resource_ids[]", &self.resource_ids);
        push_opt(&mut q, "tenant_only", self.tenant_only);
        push_opt(&mut q, "limit", self.limit);
        push_opt(&mut q, "after", self.after.as_deref());
        push_opt(&mut q, "before", self.before.as_deref());
        q
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BucketWidth {
    Minute,
    Hour,
    #[default]
    Day,
}

impl BucketWidth {
    fn as_str(self) -> &'static str {
        match self {
            BucketWidth::Minute => "1m",
            BucketWidth::Hour => "1h",
            BucketWidth::Day => "1d",
        }
    }

    /// Largest page of usage buckets OpenAI serves for this width.
    pub(crate) fn max_usage_limit(self) -> u32 {
        match self {
            BucketWidth::Minute => 1440,
            BucketWidth::Hour => 168,
            BucketWidth::Day => 31,
        }
    }
}

/// Parameters of `GET /organization/costs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostsParams {
    /// Start (Unix seconds, inclusive). Required by OpenAI.
    pub start_time: i64,
    /// End (Unix seconds, exclusive).
    pub end_time: Option<i64>,
    pub project_ids: Vec<String>,
    pub api_key_ids: Vec<String>,
    /// `group_by[]`: `project_id`, `line_item`, `api_key_id`.
    pub group_by: Vec<String>,
    /// Buckets per page, 1-180.
    pub limit: Option<u32>,
    pub page: Option<String>,
}

impl CostsParams {
    pub(crate) fn query(&self) -> Query {
        let mut q = Query::new();
        push(&mut q, "start_time", self.start_time);
        push_opt(&mut q, "end_time", self.end_time);
        // Costs only come in daily buckets; sending it keeps the request explicit.
        push(&mut q, "bucket_width", "1d");
        push_all(&mut q, "project_ids[]", &self.project_ids);
        push_all(&mut q, "api_key_ids[]", &self.api_key_ids);
        push_all(&mut q, "group_by[]", &self.group_by);
        push_opt(&mut q, "limit", self.limit);
        push_opt(&mut q, "page", self.page.as_deref());
        q
    }
}

/// The usage endpoints (`/organization/usage/{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageKind {
    Completions,
    Embeddings,
    Moderations,
    Images,
    AudioSpeeches,
    AudioTranscriptions,
    VectorStores,
    CodeInterpreterSessions,
    FileSearchCalls,
    WebSearchCalls,
}

impl UsageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageKind::Completions => "completions",
            UsageKind::Embeddings => "embeddings",
            UsageKind::Moderations => "moderations",
            UsageKind::Images => "images",
            UsageKind::AudioSpeeches => "audio_speeches",
            UsageKind::AudioTranscriptions => "audio_transcriptions",
            UsageKind::VectorStores => "vector_stores",
            UsageKind::CodeInterpreterSessions => "code_interpreter_sessions",
            UsageKind::FileSearchCalls => "file_search_calls",
            UsageKind::WebSearchCalls => "web_search_calls",
        }
    }
}

/// Parameters of the usage endpoints (filters an endpoint does not know are ignored by it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageParams {
    /// Start (Unix seconds, inclusive). Required by OpenAI.
    pub start_time: i64,
    /// End (Unix seconds, exclusive).
    pub end_time: Option<i64>,
    /// Bucket width (OpenAI's default is a day).
    pub bucket_width: Option<BucketWidth>,
    pub project_ids: Vec<String>,
    pub user_ids: Vec<String>,
    pub api_key_ids: Vec<String>,
    pub models: Vec<String>,
    /// Batch requests only (completions).
    pub batch: Option<bool>,
    pub group_by: Vec<String>,
    pub limit: Option<u32>,
    pub page: Option<String>,
}

impl UsageParams {
    pub(crate) fn query(&self) -> Query {
        let mut q = Query::new();
        push(&mut q, "start_time", self.start_time);
        push_opt(&mut q, "end_time", self.end_time);
        push_opt(
            &mut q,
            "bucket_width",
            self.bucket_width.map(BucketWidth::as_str),
        );
        push_all(&mut q, "project_ids[]", &self.project_ids);
        push_all(&mut q, "user_ids[]", &self.user_ids);
        push_all(&mut q, "api_key_ids[]", &self.api_key_ids);
        push_all(&mut q, "models[]", &self.models);
        push_opt(&mut q, "batch", self.batch);
        push_all(&mut q, "group_by[]", &self.group_by);
        push_opt(&mut q, "limit", self.limit);
        push_opt(&mut q, "page", self.page.as_deref());
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(q: &Query) -> String {
        let mut url = url::Url::parse("http://x/").unwrap();
        url.query_pairs_mut().extend_pairs(q);
        url.query().unwrap_or("").to_string()
    }

    #[test]
    fn users_emails_are_an_array() {
        let p = ListUsersParams {
            emails: vec!["a@x.io".into(), "b+1@x.io".into()],
            limit: Some(2),
            after: None,
        };
        assert_eq!(
            encoded(&p.query()),
            "limit=2&emails%5B%5D=a%40x.io&emails%5B%5D=b%2B1%40x.io"
        );
        assert_eq!(encoded(&ListUsersParams::default().query()), "");
    }

    #[test]
    fn projects_and_api_keys_defaults() {
        assert_eq!(
            ListProjectsParams {
                include_archived: true,
                ..Default::default()
            }
            .query(),
            vec![("include_archived".to_string(), "true".to_string())]
        );
        assert_eq!(
            encoded(&ListProjectApiKeysParams::default().query()),
            "owner_project_access=any"
        );
        let unset = ListProjectApiKeysParams {
            owner_project_access: OwnerAccessFilter::Unset,
            ..Default::default()
        };
        assert!(unset.query().is_empty());
    }

    #[test]
    fn audit_log_filters_use_bracketed_names() {
        let p = AuditLogParams {
            effective_at: TimeRange {
                gte: Some(10),
                lt: Some(20),
                ..Default::default()
            },
            project_ids: vec!["proj_1".into()],
            event_types: vec!["user.added".into(), "user.deleted".into()],
            actor_emails: vec!["a@b.c".into()],
            tenant_only: Some(false),
            limit: Some(100),
            after: Some("audit_log-9".into()),
            ..Default::default()
        };
        let names: Vec<_> = p
            .query()
            .into_iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        assert_eq!(
            names,
            [
                "effective_at[gte]=10",
                "effective_at[lt]=20",
                "project_ids[]=proj_1",
                "event_types[]=user.added",
                "event_types[]=user.deleted",
                "actor_emails[]=a@b.c",
                "tenant_only=false",
                "limit=100",
                "after=audit_log-9"
            ]
        );
    }

    #[test]
    fn costs_and_usage() {
        let c = CostsParams {
            start_time: 1_700_000_000,
            group_by: vec!["project_id".into()],
            page: Some("page_2".into()),
            ..Default::default()
        };
        assert_eq!(
            encoded(&c.query()),
            "start_time=1700000000&bucket_width=1d&group_by%5B%5D=project_id&page=page_2"
        );
        let u = UsageParams {
            start_time: 5,
            bucket_width: Some(BucketWidth::Hour),
            models: vec!["gpt-4o".into()],
            batch: Some(true),
            ..Default::default()
        };
        assert_eq!(
            encoded(&u.query()),
            "start_time=5&bucket_width=1h&models%5B%5D=gpt-4o&batch=true"
        );
        let r = RbacListParams {
            order: Some(SortOrder::Desc),
            limit: Some(1000),
            after: None,
        };
        assert_eq!(encoded(&r.query()), "limit=1000&order=desc");
    }
}
