//! Shortened ids, docker's and git's way: wherever an id is taken, any unique abbreviation of it will do.
//!
//! The tables print the last 8 characters of an id (Vigil's ids are UUIDv7, whose leading characters are a
//! timestamp that everything created in the same minute shares, while the tail is random), so an
//! abbreviation is accepted as a prefix *or* as a suffix of the full id. None of the services looks ids up
//! by a part of them, so the candidates come from listing (see each resource's `resolve_*`); an
//! abbreviation that fits more than one is refused with the candidates listed.

use tonic::Code;

use crate::error::{CliError, Service};

/// How many candidates an "ambiguous" error lists.
const SHOWN: usize = 10;

/// Whether `given` is a whole id (a UUID), which is used as it is, without listing anything.
pub fn is_full(given: &str) -> bool {
    given.len() == 36
        && given.chars().enumerate().all(|(at, c)| {
            if matches!(at, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Whether `given` abbreviates `full`: its start or its end, ignoring case.
pub fn abbreviates(full: &str, given: &str) -> bool {
    let (full, given) = (full.to_ascii_lowercase(), given.to_ascii_lowercase());
    !given.is_empty() && (full.starts_with(&given) || full.ends_with(&given))
}

/// The one id among `candidates` (id, and how to tell it apart) that `given` names: an exact match, else
/// the only one it abbreviates. None is the service's NOT_FOUND; several are a usage error listing them.
pub fn pick<'a>(
    given: &str,
    what: &str,
    service: Service,
    candidates: impl IntoIterator<Item = (&'a str, String)>,
) -> Result<String, CliError> {
    let mut matching: Vec<(&str, String)> = Vec::new();
    for (id, label) in candidates {
        if id.eq_ignore_ascii_case(given) {
            return Ok(id.to_owned());
        }
        if abbreviates(id, given) && !matching.iter().any(|(seen, _)| *seen == id) {
            matching.push((id, label));
        }
    }
    match matching.len() {
        0 => Err(not_found(given, what, service)),
        1 => Ok(matching.remove(0).0.to_owned()),
        n => {
            let mut message = format!("`{given}` matches {n} {what}s; give more of the id:");
            for (id, label) in matching.iter().take(SHOWN) {
                message.push_str(&format!("\n  {id}  {label}"));
            }
            if n > SHOWN {
                message.push_str(&format!("\n  … and {} more", n - SHOWN));
            }
            Err(CliError::Usage(message))
        }
    }
}

/// No `what` with an id like `given`: worded and coded like the service's own NOT_FOUND, so
/// `--ignore-not-found` and exit code 1 treat both alike.
pub fn not_found(given: &str, what: &str, service: Service) -> CliError {
    CliError::Server {
        service,
        code: Code::NotFound,
        message: format!("no {what} has an id starting or ending with `{given}`"),
    }
}

/// What `-o name` prints before the id (`session/<id>`), accepted back wherever an id is taken.
const KINDS: [&str; 5] = ["session/", "termination/", "policy/", "lock/", "gateway/"];

/// Checks an id argument: not empty, and only what ids are made of, so a flag's hint that slipped into
/// the arguments (`-- --dry-run`) is refused rather than sent as an id. `kind/id`, as `-o name` prints it,
/// is taken as the id.
pub fn parse_id(s: &str) -> Result<String, String> {
    let s = s.trim();
    let id = KINDS.iter().find_map(|kind| s.strip_prefix(kind)).unwrap_or(s);
    if id.is_empty() {
        return Err("the id is empty".to_owned());
    }
    if id.starts_with('-') {
        return Err(format!(
            "`{id}` is not an id (it looks like a flag; flags go before `--`)"
        ));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(format!("`{id}` is not an id: ids hold letters, digits and dashes"));
    }
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "01a209da-fe18-708a-896c-97c6c27a4dbc";
    const B: &str = "01a209da-fe17-7686-ade2-a08971035a38";

    fn candidates() -> Vec<(&'static str, String)> {
        vec![(A, "alice".to_owned()), (B, "bob".to_owned())]
    }

    #[test]
    fn a_unique_prefix_or_the_printed_tail_names_one() {
        assert!(is_full(A) && !is_full("c27a4dbc"));
        assert_eq!(
            pick("c27a4dbc", "session", Service::Registry, candidates()).expect("tail"),
            A
        );
        assert_eq!(
            pick("01A209DA-FE18", "session", Service::Registry, candidates()).expect("prefix"),
            A
        );
        assert_eq!(pick(B, "session", Service::Registry, candidates()).expect("exact"), B);
    }

    #[test]
    fn an_ambiguous_abbreviation_lists_the_candidates_and_an_unknown_one_is_not_found() {
        let error = pick("01a209da", "session", Service::Registry, candidates()).expect_err("ambiguous");
        assert_eq!(error.exit_code(), crate::EXIT_USAGE);
        let text = error.to_string();
        assert!(
            text.contains("matches 2 sessions") && text.contains(A) && text.contains("bob"),
            "{text}"
        );

        let error = pick("ffff", "session", Service::Registry, candidates()).expect_err("unknown");
        assert_eq!(error.server_code(), Some(Code::NotFound));
    }

    #[test]
    fn flags_and_garbage_are_not_ids() {
        assert!(parse_id("--dry-run").is_err());
        assert!(parse_id("a b").is_err());
        assert!(parse_id(" ").is_err());
        assert_eq!(parse_id(" 5e28f3a8 ").expect("short id"), "5e28f3a8");
        assert_eq!(parse_id("session/5e28f3a8").expect("-o name"), "5e28f3a8");
        assert!(parse_id("session/").is_err());
    }
}
