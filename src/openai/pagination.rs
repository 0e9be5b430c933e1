//! The three page shapes of the admin API and a lazy stream over any of them.
//!
//! Legacy lists continue with `after=<last_id>`, RBAC lists with `after=<next>`, usage pages
//! with `page=<next_page>`. The stream fetches a page only when the previous one is consumed
//! and fails (instead of looping forever) when a cursor repeats or is missing while
//! `has_more` is true. [`Client::stream`] runs any list operation through it.

use std::collections::HashSet;
use std::future::Future;

use futures::{Stream, TryStreamExt, stream};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::budget::EndpointFamily;
use super::client::Client;
use super::error::{ErrorKind, OpenAiError};
use super::models::{
    AdminApiKey, AuditLog, Invite, OrgUser, Project, ProjectApiKey, ProjectUser, ServiceAccount,
};
use super::params::Paginated;

/// A page of a legacy list: `{object: "list", data, first_id, last_id, has_more}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct CursorPage<T> {
    #[serde(default)]
    pub object: String,
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    #[serde(default)]
    pub first_id: Option<String>,
    /// Id of the last item: the next page's `after`.
    #[serde(default)]
    pub last_id: Option<String>,
    #[serde(default)]
    pub has_more: bool,
}

/// A page of an RBAC list: `{object: "list", data, has_more, next}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct RbacPage<T> {
    #[serde(default)]
    pub object: String,
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
    /// The next page's `after`.
    #[serde(default)]
    pub next: Option<String>,
}

/// A page of usage or cost buckets: `{object: "page", data, has_more, next_page}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct UsagePage<T> {
    #[serde(default)]
    pub object: String,
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
    /// The next page's `page`.
    #[serde(default)]
    pub next_page: Option<String>,
}

/// Items of legacy lists, whose id may serve as the cursor when `last_id` is absent.
pub trait HasId {
    fn id(&self) -> &str;
}

macro_rules! has_id {
    ($($t:ty),+) => { $(impl HasId for $t { fn id(&self) -> &str { &self.id } })+ };
}
has_id!(
    OrgUser,
    Invite,
    Project,
    ProjectUser,
    ServiceAccount,
    ProjectApiKey,
    AdminApiKey,
    AuditLog
);

/// A page split into what the stream needs.
pub(crate) trait Page {
    type Item;
    /// Items, whether more follow, and the cursor of the next page.
    fn into_parts(self) -> (Vec<Self::Item>, bool, Option<String>);
}

impl<T: HasId> Page for CursorPage<T> {
    type Item = T;
    fn into_parts(self) -> (Vec<T>, bool, Option<String>) {
        // Admin keys document "the id of the last item" and may omit last_id.
        let cursor = self
            .last_id
            .filter(|c| !c.is_empty())
            .or_else(|| self.data.last().map(|item| item.id().to_string()));
        (self.data, self.has_more, cursor)
    }
}

impl<T> Page for RbacPage<T> {
    type Item = T;
    fn into_parts(self) -> (Vec<T>, bool, Option<String>) {
        (self.data, self.has_more, self.next)
    }
}

impl<T> Page for UsagePage<T> {
    type Item = T;
    fn into_parts(self) -> (Vec<T>, bool, Option<String>) {
        (self.data, self.has_more, self.next_page)
    }
}

/// Tracks cursors so that a server that repeats one cannot make a stream loop forever.
#[derive(Debug, Default)]
pub(crate) struct CursorGuard {
    seen: HashSet<String>,
}

impl CursorGuard {
    pub(crate) fn new(initial: Option<&str>) -> Self {
        let mut guard = CursorGuard::default();
        if let Some(c) = initial {
            guard.seen.insert(c.to_string());
        }
        guard
    }

    /// The cursor to fetch next, `Ok(None)` at the end, or an error for a broken cursor.
    pub(crate) fn next(
        &mut self,
        has_more: bool,
        cursor: Option<String>,
    ) -> Result<Option<String>, OpenAiError> {
        if !has_more {
            return Ok(None);
        }
        match cursor.filter(|c| !c.is_empty()) {
            None => Err(OpenAiError::new(
                ErrorKind::InvalidResponse,
                "page says has_more but gives no cursor for the next page",
            )),
            Some(c) if !self.seen.insert(c.clone()) => Err(OpenAiError::new(
                ErrorKind::InvalidResponse,
                format!("pagination cursor did not advance (repeated cursor {c:?})"),
            )),
            Some(c) => Ok(Some(c)),
        }
    }
}

/// A lazy stream of items over pages fetched by `fetch(cursor)`, starting at `initial`.
pub(crate) fn paginate<P, F, Fut>(
    initial: Option<String>,
    fetch: F,
) -> impl Stream<Item = Result<P::Item, OpenAiError>> + Send + 'static
where
    P: Page + Send + 'static,
    P::Item: Send + 'static,
    F: FnMut(Option<String>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<P, OpenAiError>> + Send + 'static,
{
    struct State<F> {
        fetch: F,
        cursor: Option<String>,
        guard: CursorGuard,
        done: bool,
    }
    let state = State {
        fetch,
        guard: CursorGuard::new(initial.as_deref()),
        cursor: initial,
        done: false,
    };
    stream::try_unfold(state, |mut st| async move {
        if st.done {
            return Ok(None);
        }
        let page = (st.fetch)(st.cursor.take()).await?;
        let (items, has_more, cursor) = page.into_parts();
        match st.guard.next(has_more, cursor)? {
            Some(next) => st.cursor = Some(next),
            None => st.done = true,
        }
        Ok(Some((items, st)))
    })
    .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
    .try_flatten()
}

impl Client {
    /// Every item of the list at `path`, fetched page by page from `params`' cursor, with
    /// `default_limit` (the endpoint's largest page) unless `params` sets a limit.
    pub(crate) fn stream<P, Pg>(
        &self,
        family: EndpointFamily,
        path: &[&str],
        params: &P,
        default_limit: u32,
    ) -> impl Stream<Item = Result<Pg::Item, OpenAiError>> + Send + use<P, Pg>
    where
        P: Paginated,
        Pg: Page + DeserializeOwned + Send + 'static,
        Pg::Item: Send + 'static,
    {
        let client = self.clone();
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        let mut params = params.clone();
        params.limit().get_or_insert(default_limit);
        let initial = params.cursor().clone();
        paginate(initial, move |cursor| {
            let client = client.clone();
            let path = path.clone();
            let mut params = params.clone();
            *params.cursor() = cursor;
            async move {
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                let page = client.get::<Pg>(family, &path, params.query()).await?;
                Ok(page.data)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn page(ids: &[&str], has_more: bool, last: Option<&str>) -> CursorPage<OrgUser> {
        CursorPage {
            object: "list".into(),
            data: ids
                .iter()
                .map(|id| OrgUser {
                    id: id.to_string(),
                    ..Default::default()
                })
                .collect(),
            first_id: None,
            last_id: last.map(str::to_string),
            has_more,
        }
    }

    #[test]
    fn guard_rejects_repeats_and_missing_cursors() {
        let mut g = CursorGuard::new(Some("a"));
        assert_eq!(g.next(true, Some("b".into())).unwrap(), Some("b".into()));
        assert_eq!(g.next(false, Some("b".into())).unwrap(), None);
        let e = g.next(true, Some("b".into())).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidResponse);
        assert!(e.message.contains("did not advance"));
        assert!(g.next(true, Some("a".into())).is_err());
        assert!(g.next(true, None).is_err());
        assert!(g.next(true, Some(String::new())).is_err());
    }

    #[test]
    fn cursor_falls_back_to_the_last_item_id() {
        let (_, more, cursor) = page(&["u1", "u2"], true, None).into_parts();
        assert!(more);
        assert_eq!(cursor.as_deref(), Some("u2"));
        let (_, _, cursor) = page(&["u1", "u2"], true, Some("u9")).into_parts();
        assert_eq!(cursor.as_deref(), Some("u9"));
    }

    #[tokio::test]
    async fn stream_is_lazy_and_stops_on_a_repeating_cursor() {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        let s = paginate(None, move |cursor: Option<String>| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                Ok(match cursor.as_deref() {
                    None => page(&["u1", "u2"], true, Some("u2")),
                    // The server answers the second page with the same cursor again.
                    _ => page(&["u3"], true, Some("u2")),
                })
            }
        });
        let mut s = Box::pin(s);
        assert_eq!(s.next().await.unwrap().unwrap().id, "u1");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(s.next().await.unwrap().unwrap().id, "u2");
        let err = s.next().await.unwrap().unwrap_err();
        assert!(err.message.contains("did not advance"), "{err}");
        assert!(s.next().await.is_none());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn stream_reads_all_pages() {
        let s = paginate(None, |cursor: Option<String>| async move {
            let n: u32 = cursor.as_deref().map_or(0, |c| c.parse().unwrap_or(0));
            Ok(RbacPage {
                object: "list".into(),
                data: vec![n],
                has_more: n < 4,
                next: Some((n + 1).to_string()),
            })
        });
        let all: Vec<u32> = s.try_collect().await.unwrap();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
    }
}
