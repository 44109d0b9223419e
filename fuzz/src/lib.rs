//! What each fuzz target checks, as plain functions: the libFuzzer targets (`fuzz_targets/`) call
//! them with libFuzzer's inputs, and the test below calls them with every file of the committed
//! corpus (`corpus/<target>/`), so CI runs the corpus without cargo-fuzz.
//!
//! Every function must return without panicking for any input: a panic is a finding.

mod bus;
mod config;
mod hello_prefix;
mod login;
mod mmdb;
mod page_token;

pub use bus::bus_payload;
pub use config::config;
pub use hello_prefix::hello_prefix;
pub use login::login_name;
pub use mmdb::mmdb;
pub use page_token::page_token;
use prost::Message;
use vigil_core::validate;
use vigil_core::{Cidr, Selector};
use vigil_proto::v1 as pb;

/// A `SessionSelector` as it arrives on the wire (Terminate, ResolveSessions), then validated.
/// What passes must respect the limits the check promises.
pub fn selector(data: &[u8]) {
    let Ok(message) = pb::SessionSelector::decode(data) else {
        return;
    };
    if let Ok(valid) = validate::selector(Some(&message)) {
        match valid {
            Selector::Ids(ids) => {
                assert!(!ids.is_empty() && ids.len() <= validate::MAX_SELECTOR_IDS);
                for id in &ids {
                    assert_eq!(validate::session_id("id", id).as_deref(), Ok(id.as_str()), "canonical");
                }
            }
            Selector::Cidr(network) => {
                assert!(network.check_breadth().is_ok(), "too broad a network passed: {network}");
                assert_eq!(Cidr::parse(&network.to_string()), Ok(network), "round trip");
            }
            Selector::User(name) | Selector::Resource(name) | Selector::Group(name) | Selector::Device(name) => {
                assert!(!name.chars().any(char::is_control) && name.chars().count() <= validate::MAX_NAME_LEN);
            }
            Selector::Gateway(_) | Selector::All { .. } => {}
        }
    }
}

/// A `SessionStart` as a gateway or an Admit call sends it.
pub fn session_start(data: &[u8]) {
    let Ok(message) = pb::SessionStart::decode(data) else {
        return;
    };
    if let Ok(valid) = validate::session_start("start", Some(&message)) {
        assert!(valid.client_ip.parse::<std::net::IpAddr>().is_ok());
        assert!(valid.user_groups.len() <= validate::MAX_GROUPS);
        assert!(!valid.user.chars().any(char::is_control));
    }
}

/// A network as a person types it: strict and lenient readings, breadth, containment.
pub fn cidr(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(network) = Cidr::parse(text) {
        assert_eq!(Cidr::parse(&network.to_string()), Ok(network));
        assert!(network.contains(network.network()));
        let _ = network.ipv4_text_prefix();
    }
    if let Ok(network) = validate::network("cidr", text) {
        assert!(network.check_breadth().is_ok());
    }
    if let Some(network) = Cidr::parse_lenient(text) {
        let _ = network.contains_text(text);
    }
}

/// Text a caller sent, as the audit trail keeps it: never a control character, never long.
pub fn record_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let kept = validate::record_text(&text);
    assert!(!kept.chars().any(char::is_control), "{kept:?}");
    assert!(kept.chars().count() <= validate::MAX_RECORD_TEXT + 1);
    let shown = validate::truncate(&text);
    assert!(shown.chars().count() <= 65);
}

/// What a target checks: one input, no panic.
pub type Check = fn(&[u8]);

/// The targets by name, as the corpus directories are named.
pub const TARGETS: &[(&str, Check)] = &[
    ("selector", selector),
    ("session_start", session_start),
    ("cidr", cidr),
    ("record_text", record_text),
    ("page_token", page_token),
    ("config", config),
    ("bus_payload", bus_payload),
    ("mmdb", mmdb),
    ("login_name", login_name),
    ("hello_prefix", hello_prefix),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed corpus file through its target: the regression suite of the fuzzers.
    #[test]
    fn every_corpus_file_passes_its_target() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for (name, check) in TARGETS {
            let dir = root.join(name);
            let mut files = 0;
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display())) {
                let path = entry.expect("entry").path();
                check(&std::fs::read(&path).expect("read"));
                files += 1;
            }
            assert!(files > 0, "{name} has no corpus");
        }
    }
}
