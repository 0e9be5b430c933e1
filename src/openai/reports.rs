//! Read-only reporting operations: audit logs (legacy paging), usage and costs (`page` paging).
//!
//! Thin typed wrappers over `Client`'s HTTP core; nothing of our store.

use futures::Stream;

use super::budget::EndpointFamily;
use super::client::{Client, Reply};
use super::error::OpenAiError;
use super::models::{AuditLog, CostBucket, UsageBucket};
use super::pagination::{CursorPage, UsagePage};
use super::params::{AuditLogParams, CostsParams, UsageKind, UsageParams};
use super::users::LEGACY_MAX_LIMIT;

const COSTS_MAX_LIMIT: u32 = 180;

impl Client {
    /// Oldest first unless filtered.
    pub async fn list_audit_logs(
        &self,
        p: &AuditLogParams,
    ) -> Result<Reply<CursorPage<AuditLog>>, OpenAiError> {
        self.get(
            EndpointFamily::AuditLogs,
            &["organization", "audit_logs"],
            p.query(),
        )
        .await
    }

    pub fn audit_logs(
        &self,
        p: &AuditLogParams,
    ) -> impl Stream<Item = Result<AuditLog, OpenAiError>> + Send + use<> {
        self.stream::<_, CursorPage<_>>(
            EndpointFamily::AuditLogs,
            &["organization", "audit_logs"],
            p,
            LEGACY_MAX_LIMIT,
        )
    }

    pub async fn list_costs(
        &self,
        p: &CostsParams,
    ) -> Result<Reply<UsagePage<CostBucket>>, OpenAiError> {
        self.get(EndpointFamily::Usage, &["organization", "costs"], p.query())
            .await
    }

    pub fn costs(
        &self,
        p: &CostsParams,
    ) -> impl Stream<Item = Result<CostBucket, OpenAiError>> + Send + use<> {
        self.stream::<_, UsagePage<_>>(
            EndpointFamily::Usage,
            &["organization", "costs"],
            p,
            COSTS_MAX_LIMIT,
        )
    }

    pub async fn list_usage(
        &self,
        kind: UsageKind,
        p: &UsageParams,
    ) -> Result<Reply<UsagePage<UsageBucket>>, OpenAiError> {
        self.get(
            EndpointFamily::Usage,
            &["organization", "usage", kind.as_str()],
            p.query(),
        )
        .await
    }

    pub fn usage(
        &self,
        kind: UsageKind,
        p: &UsageParams,
    ) -> impl Stream<Item = Result<UsageBucket, OpenAiError>> + Send + use<> {
        let limit = p.bucket_width.unwrap_or_default().max_usage_limit();
        self.stream::<_, UsagePage<_>>(
            EndpointFamily::Usage,
            &["organization", "usage", kind.as_str()],
            p,
            limit,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::params::BucketWidth;

    #[test]
    fn usage_limits_follow_the_bucket_width() {
        assert_eq!(BucketWidth::Day.max_usage_limit(), 31);
        assert_eq!(BucketWidth::Hour.max_usage_limit(), 168);
        assert_eq!(BucketWidth::Minute.max_usage_limit(), 1440);
    }
}
