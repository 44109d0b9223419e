//! The beginning of a gateway link's first message, as the registry's pre-hello limit judges it
//! before the gateway is authenticated.

use vigil_registry::{PRE_HELLO_LIMIT, Verdict, first_message};

/// Judged without a panic; a message over the limit passes only when its hello names the gateway
/// with the right credential.
pub fn hello_prefix(data: &[u8]) {
    let seen = &data[..data.len().min(5 + PRE_HELLO_LIMIT)];
    let proved = std::cell::Cell::new(false);
    let verdict = first_message(seen, |gateway_id, credential| {
        let right = gateway_id == "gw-1" && credential == "right";
        proved.set(proved.get() || right);
        right
    });
    if verdict == Verdict::Allowed && seen.len() >= 5 {
        let length = u32::from_be_bytes([seen[1], seen[2], seen[3], seen[4]]) as usize;
        assert!(
            length <= PRE_HELLO_LIMIT || proved.get(),
            "a large first message passed unproven"
        );
    }
    if seen.len() >= 5 + PRE_HELLO_LIMIT {
        assert_ne!(verdict, Verdict::Undecided, "undecided after the limit");
    }
}
