//! Page tokens as callers send them back: the registry's signed cursor (decode, then the signature,
//! then the body), termination's and policy's plain cursors.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use vigil_registry::domain::{PageCursor, SessionFilter, SortKey, SortValue};
use vigil_registry::page_token::PageTokens;

/// The key the harness signs with (the registry's checks use the same one).
const KEY: &[u8] = b"fuzz page-token key";

/// The first byte picks the mode, the query's order and direction; the rest is the token, a body to
/// sign, or a cursor to issue.
pub fn page_token(data: &[u8]) {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let sort = [
        SortKey::StartedAt,
        SortKey::LastActivity,
        SortKey::User,
        SortKey::Resource,
        SortKey::RiskScore,
    ][usize::from(head >> 4) % 5];
    let ascending = head & 0x08 != 0;
    let filter = if head & 0x04 != 0 {
        SessionFilter {
            user: Some("alice@acme.example".into()),
            ..SessionFilter::default()
        }
    } else {
        SessionFilter::default()
    };
    let tokens = PageTokens::new(KEY);
    match head & 0x03 {
        // A token as a caller types it: never issued, so never accepted.
        0 => {
            let text = String::from_utf8_lossy(rest);
            assert!(
                tokens.check(&text, &filter, sort, ascending).is_err(),
                "a forged token passed"
            );
        }
        // A body signed with the right key (as if the key had leaked): decoded without a panic, and
        // what passes is what it says.
        1 => {
            let token = sign(rest);
            if let Ok(cursor) = tokens.check(&token, &filter, sort, ascending) {
                let again = tokens.issue(&filter, sort, ascending, &cursor);
                assert_eq!(
                    tokens.check(&again, &filter, sort, ascending).ok().as_ref(),
                    Some(&cursor)
                );
            }
        }
        // Any cursor the registry issues comes back as it was, for this query only.
        _ => {
            let cursor = cursor_of(rest);
            let token = tokens.issue(&filter, sort, ascending, &cursor);
            assert_eq!(
                tokens.check(&token, &filter, sort, ascending).ok().as_ref(),
                Some(&cursor)
            );
            assert!(
                tokens.check(&token, &filter, sort, !ascending).is_err(),
                "replayed in another order"
            );
            assert!(
                PageTokens::new(b"another key")
                    .check(&token, &filter, sort, ascending)
                    .is_err()
            );
        }
    }
    plain_cursors(rest);
}

/// Termination's and policy's cursors: decoded without a panic; what decodes is canonical.
fn plain_cursors(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok((_, id)) = vigil_termination::service::decode_page_token(&text) {
        assert_eq!(
            uuid_text(&id),
            Some(id.clone()),
            "a termination cursor's id is a canonical UUID"
        );
    }
    if let Ok((_, id)) = vigil_policy::service::decode_audit_token(&text) {
        assert!(!id.is_empty());
    }
}

fn uuid_text(text: &str) -> Option<String> {
    text.parse::<uuid::Uuid>().ok().map(|id| id.hyphenated().to_string())
}

/// A token whose body is `body`, signed as the registry signs (HMAC-SHA256, 16 bytes kept).
fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).expect("HMAC takes any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut bytes = body.to_vec();
    bytes.extend_from_slice(&digest[..16]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A cursor made of arbitrary bytes: an integer or a text sort value, and an id.
fn cursor_of(data: &[u8]) -> PageCursor {
    let (value, id) = match data.split_first() {
        Some((&kind, rest)) if kind & 1 == 0 && rest.len() >= 8 => {
            let (number, id) = rest.split_at(8);
            let number = i64::from_le_bytes(number.try_into().expect("eight bytes"));
            (SortValue::Int(number), id)
        }
        _ => {
            let half = data.len() / 2;
            (
                SortValue::Text(String::from_utf8_lossy(&data[..half]).into_owned()),
                &data[half..],
            )
        }
    };
    PageCursor {
        value,
        id: String::from_utf8_lossy(id).into_owned(),
    }
}
