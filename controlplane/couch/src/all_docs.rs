//! Reads every document whose id starts with a prefix (`host:`, `status:`), for the
//! programs that look at a whole fleet from the central database (the rollout driver,
//! `ccnqctl fleet status`) rather than at one host.
//!
//! One `_all_docs` request with `include_docs=true` over the key range
//! `[prefix, prefix + U+FFF0]`, CouchDB's documented idiom for a prefix: ids sort by
//! Unicode collation and nothing a name uses sorts after U+FFF0. Deleted documents are
//! not in `_all_docs`, so a host whose document was deleted is simply not listed.

use http::Method;
use serde_json::Value;

use crate::client::{encode_component, Db};
use crate::error::CouchError;

impl Db {
    /// Every live document whose `_id` starts with `prefix`, in id order.
    pub async fn docs_with_prefix(&self, prefix: &str) -> Result<Vec<Value>, CouchError> {
        let key = |k: String| encode_component(&Value::String(k).to_string());
        let path = format!(
            "/{}/_all_docs?include_docs=true&startkey={}&endkey={}",
            encode_component(self.name()),
            key(prefix.to_string()),
            key(format!("{prefix}\u{fff0}"))
        );
        let answer = self.client().json(Method::GET, &path, None).await?;
        let rows = answer
            .get("rows")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                CouchError::Decode(format!("_all_docs answer without rows: {answer}"))
            })?;
        Ok(rows
            .iter()
            .filter_map(|row| row.get("doc"))
            .filter(|doc| doc.is_object())
            .cloned()
            .collect())
    }
}
