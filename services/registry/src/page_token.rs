//! Page tokens: opaque to callers, verifiable by every replica.
//!
//! A token is the keyset cursor (sort value and id of the last row served) plus a fingerprint of
//! the query it belongs to, authenticated with HMAC-SHA256 under the deployment's key. So a token
//! that was never issued, was altered, or is replayed against another filter or order is refused
//! with `InvalidArgument` instead of silently returning the wrong page.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::{PageCursor, SessionFilter, SortKey};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the MAC kept in the token (128 bits is plenty against forgery of a page position).
const MAC_LEN: usize = 16;

/// Issues and checks page tokens.
#[derive(Clone)]
pub struct PageTokens {
    key: Vec<u8>,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageTokens").field("key", &"<redacted>").finish()
    }
}

#[derive(Serialize, Deserialize)]
struct TokenBody {
    /// Fingerprint of (filter, sort, direction).
    q: String,
    c: PageCursor,
}

impl PageTokens {
    /// Tokens signed with `key`. Replicas that serve the same clients must share the key.
    pub fn new(key: impl AsRef<[u8]>) -> Self {
        Self {
            key: key.as_ref().to_vec(),
        }
    }

    /// The token for continuing after `cursor` in the query (`filter`, `sort`, `ascending`).
    pub fn issue(&self, filter: &SessionFilter, sort: SortKey, ascending: bool, cursor: &PageCursor) -> String {
        let body = TokenBody {
            q: fingerprint(filter, sort, ascending),
            c: cursor.clone(),
        };
        // Serialising plain strings and integers cannot fail.
        let mut bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mac = self.mac(&bytes);
        bytes.extend_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The cursor in `token`, if this deployment issued it for this very query.
    pub fn check(
        &self,
        token: &str,
        filter: &SessionFilter,
        sort: SortKey,
        ascending: bool,
    ) -> ServiceResult<PageCursor> {
        let not_issued = || ServiceError::invalid("page_token was not issued by this server; start again without it");
        let bytes = URL_SAFE_NO_PAD.decode(token.as_bytes()).map_err(|_| not_issued())?;
        if bytes.len() <= MAC_LEN {
            return Err(not_issued());
        }
        let (body, mac) = bytes.split_at(bytes.len() - MAC_LEN);
        self.verifier(body)
            .verify_truncated_left(mac)
            .map_err(|_| not_issued())?;
        let body: TokenBody = serde_json::from_slice(body).map_err(|_| not_issued())?;
        if body.q != fingerprint(filter, sort, ascending) {
            return Err(ServiceError::invalid(
                "page_token belongs to a different filter or order; use the same filter and order as the first page",
            ));
        }
        Ok(body.c)
    }

    fn verifier(&self, body: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length.
        let mut mac =
            HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(body);
        mac
    }

    fn mac(&self, body: &[u8]) -> [u8; MAC_LEN] {
        let full = self.verifier(body).finalize().into_bytes();
        let mut truncated = [0; MAC_LEN];
        truncated.copy_from_slice(&full[..MAC_LEN]);
        truncated
    }
}

/// A stable digest of what defines a listing's order and membership.
fn fingerprint(filter: &SessionFilter, sort: SortKey, ascending: bool) -> String {
    let canonical = format!("{filter:?}|{sort:?}|{ascending}");
    let digest = Sha256::digest(canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SortValue;

    fn cursor() -> PageCursor {
        PageCursor {
            value: SortValue::Int(1_700_000_000_000),
            id: "0192f0c4-0000-7000-8000-000000000001".into(),
        }
    }

    #[test]
    fn a_token_round_trips_for_the_same_query() {
        let tokens = PageTokens::new("key");
        let filter = SessionFilter {
            user: Some("alice".into()),
            ..Default::default()
        };
        let token = tokens.issue(&filter, SortKey::StartedAt, false, &cursor());
        assert_eq!(
            tokens.check(&token, &filter, SortKey::StartedAt, false).unwrap(),
            cursor()
        );
    }

    #[test]
    fn forged_altered_foreign_and_misapplied_tokens_are_refused() {
        let tokens = PageTokens::new("key");
        let filter = SessionFilter::default();
        let token = tokens.issue(&filter, SortKey::StartedAt, false, &cursor());

        for garbage in ["", "abc", "!!!!", "eyJxIjoiIn0"] {
            assert!(matches!(
                tokens.check(garbage, &filter, SortKey::StartedAt, false),
                Err(ServiceError::InvalidArgument(_))
            ));
        }
        let mut altered = token.clone().into_bytes();
        altered[3] = if altered[3] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert!(tokens.check(&altered, &filter, SortKey::StartedAt, false).is_err());
        assert!(
            PageTokens::new("other key")
                .check(&token, &filter, SortKey::StartedAt, false)
                .is_err()
        );

        let error = tokens.check(&token, &filter, SortKey::User, false).unwrap_err();
        assert!(error.to_string().contains("different filter or order"));
        let other_filter = SessionFilter {
            user: Some("bob".into()),
            ..Default::default()
        };
        assert!(tokens.check(&token, &other_filter, SortKey::StartedAt, false).is_err());
    }
}
