//! The syslog sink into a real rsyslog (Debian's package; `.ci/run` installs it), started here on
//! free ports with a configuration of its own, writing each message as received (`%rawmsg%`) to
//! a file. Every line must parse by RFC 5424's ABNF (a strict parser below, written from the RFC,
//! not from the writer), and the CEF messages by the CEF grammar, with the escaped fields decoding
//! back to what the events held. TCP (octet counting) and UDP.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use sea_orm::ConnectionTrait;
use tokio_util::sync::CancellationToken;
use vigil_events::config::{EventsConfig, SinkConfig, SinkKind, SyslogFormat, Transport};
use vigil_events::{Event, EventType, OutboxTables};
use vigil_testkit::{TempDir, TestDatabase, eventually_within};

const SERVICE: &str = "syslogtest";

/// An rsyslogd of the test's own; killed when dropped.
struct Rsyslog {
    child: Child,
    output: PathBuf,
    tcp_port: u16,
    udp_port: u16,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_rsyslog(dir: &Path) -> Rsyslog {
    let (tcp_port, udp_port) = (free_port(), free_udp_port());
    let output = dir.join("received.log");
    let config = dir.join("rsyslog.conf");
    std::fs::write(
        &config,
        format!(
            r#"global(workDirectory="{dir}")
module(load="imtcp")
module(load="imudp")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="events") {{ action(type="omfile" file="{output}" template="raw") }}
input(type="imtcp" port="{tcp_port}" address="127.0.0.1" ruleset="events")
input(type="imudp" port="{udp_port}" address="127.0.0.1" ruleset="events")
"#,
            dir = dir.display(),
            output = output.display(),
        ),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/rsyslogd")
        .args(["-n", "-C", "-f"])
        .arg(&config)
        .arg("-i")
        .arg(dir.join("rsyslog.pid"))
        .spawn()
        .expect("rsyslogd (apt-get install rsyslog)");
    let rsyslog = Rsyslog {
        child,
        output,
        tcp_port,
        udp_port,
    };
    eventually_within(Duration::from_secs(10), "rsyslog listening", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", tcp_port))
            .await
            .ok()
            .map(drop)
    })
    .await;
    rsyslog
}

// ---- RFC 5424, section 6 (ABNF), strictly ----

#[derive(Debug)]
struct Syslog {
    pri: u16,
    timestamp: String,
    hostname: String,
    app_name: String,
    msgid: String,
    /// SD-ID → params (decoded).
    data: BTreeMap<String, BTreeMap<String, String>>,
    msg: String,
}

fn printusascii(c: char) -> bool {
    ('\u{21}'..='\u{7e}').contains(&c)
}

/// A header field: NILVALUE or 1*max PRINTUSASCII, then SP.
fn header_field<'a>(rest: &'a str, max: usize, name: &str) -> Result<(String, &'a str), String> {
    let end = rest.find(' ').ok_or(format!("{name}: no SP after it"))?;
    let field = &rest[..end];
    if field.is_empty() || field.chars().count() > max || !field.chars().all(printusascii) {
        return Err(format!("{name}: {field:?} is not 1*{max}PRINTUSASCII"));
    }
    Ok((field.to_owned(), &rest[end + 1..]))
}

fn digits(text: &str, count: usize) -> bool {
    text.len() == count && text.bytes().all(|b| b.is_ascii_digit())
}

/// TIMESTAMP = FULL-DATE "T" FULL-TIME (NILVALUE is allowed by the RFC but never written by us).
fn timestamp_ok(text: &str) -> bool {
    let Some((date, time)) = text.split_once('T') else {
        return false;
    };
    let date: Vec<&str> = date.split('-').collect();
    if date.len() != 3 || !digits(date[0], 4) || !digits(date[1], 2) || !digits(date[2], 2) {
        return false;
    }
    let (partial, offset) = match time.strip_suffix('Z') {
        Some(partial) => (partial, "Z"),
        None => match time.rfind(['+', '-']) {
            Some(at) => (&time[..at], &time[at..]),
            None => return false,
        },
    };
    let offset_ok = offset == "Z" || {
        let (hours, minutes) = offset[1..].split_once(':').unwrap_or(("", ""));
        digits(hours, 2) && digits(minutes, 2)
    };
    let (hms, fraction) = partial.split_once('.').map_or((partial, None), |(a, b)| (a, Some(b)));
    let hms: Vec<&str> = hms.split(':').collect();
    offset_ok
        && hms.len() == 3
        && hms.iter().all(|part| digits(part, 2))
        && fraction.is_none_or(|f| (1..=6).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()))
}

/// SD-NAME = 1*32PRINTUSASCII except '=', SP, ']', '"'.
fn sd_name(text: &str) -> bool {
    !text.is_empty() && text.len() <= 32 && text.chars().all(|c| printusascii(c) && !matches!(c, '=' | ']' | '"'))
}

/// STRUCTURED-DATA = NILVALUE / 1*SD-ELEMENT; returns the elements and the rest after them.
#[allow(clippy::type_complexity)]
fn structured_data(mut rest: &str) -> Result<(BTreeMap<String, BTreeMap<String, String>>, &str), String> {
    let mut elements = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('-') {
        return Ok((elements, after));
    }
    while let Some(after) = rest.strip_prefix('[') {
        let id_end = after.find([' ', ']']).ok_or("SD-ELEMENT not closed")?;
        let id = &after[..id_end];
        if !sd_name(id.split_once('@').map_or(id, |(name, _)| name)) || !id.chars().all(printusascii) {
            return Err(format!("bad SD-ID {id:?}"));
        }
        let mut params = BTreeMap::new();
        let mut cursor = &after[id_end..];
        loop {
            if let Some(after) = cursor.strip_prefix(']') {
                cursor = after;
                break;
            }
            cursor = cursor.strip_prefix(' ').ok_or("SD-PARAM not preceded by SP")?;
            let eq = cursor.find('=').ok_or("SD-PARAM without '='")?;
            let name = &cursor[..eq];
            if !sd_name(name) {
                return Err(format!("bad PARAM-NAME {name:?}"));
            }
            cursor = cursor[eq + 1..].strip_prefix('"').ok_or("PARAM-VALUE not quoted")?;
            let mut value = String::new();
            let mut chars = cursor.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err("PARAM-VALUE not closed".into()),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, c @ ('"' | '\\' | ']'))) => value.push(c),
                        // The RFC keeps a backslash before anything else as it is.
                        Some((_, c)) => {
                            value.push('\\');
                            value.push(c);
                        }
                        None => return Err("PARAM-VALUE ends in a backslash".into()),
                    },
                    Some((_, ']')) => return Err("unescaped ']' in PARAM-VALUE".into()),
                    Some((_, c)) => value.push(c),
                }
            };
            params.insert(name.to_owned(), value);
            cursor = &cursor[end + 1..];
        }
        elements.insert(id.to_owned(), params);
        rest = cursor;
    }
    if elements.is_empty() {
        return Err("STRUCTURED-DATA is neither '-' nor an SD-ELEMENT".into());
    }
    Ok((elements, rest))
}

fn parse_5424(line: &str) -> Result<Syslog, String> {
    let rest = line.strip_prefix('<').ok_or("no PRI")?;
    let close = rest.find('>').ok_or("PRI not closed")?;
    let prival = &rest[..close];
    if prival.is_empty() || prival.len() > 3 || !prival.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("PRIVAL {prival:?}"));
    }
    let pri: u16 = prival.parse().map_err(|_| "PRIVAL")?;
    if pri > 191 || (prival.len() > 1 && prival.starts_with('0')) {
        return Err(format!("PRIVAL {pri} out of range"));
    }
    let rest = rest[close + 1..].strip_prefix("1 ").ok_or("VERSION is not 1")?;
    let (timestamp, rest) = header_field(rest, 64, "TIMESTAMP")?;
    if !timestamp_ok(&timestamp) {
        return Err(format!("TIMESTAMP {timestamp:?}"));
    }
    let (hostname, rest) = header_field(rest, 255, "HOSTNAME")?;
    let (app_name, rest) = header_field(rest, 48, "APP-NAME")?;
    let (_procid, rest) = header_field(rest, 128, "PROCID")?;
    let (msgid, rest) = header_field(rest, 32, "MSGID")?;
    let (data, rest) = structured_data(rest)?;
    let msg = match rest {
        "" => String::new(),
        _ => rest.strip_prefix(' ').ok_or("no SP before MSG")?.to_owned(),
    };
    Ok(Syslog {
        pri,
        timestamp,
        hostname,
        app_name,
        msgid,
        data,
        msg,
    })
}

// ---- CEF (ArcSight "Implementing ArcSight CEF", rev. 25) ----

/// `CEF:Version|Vendor|Product|Version|Signature ID|Name|Severity|Extension`: the seven header
/// fields (unescaped) and the extension's key/value pairs (unescaped).
fn parse_cef(text: &str) -> Result<(Vec<String>, HashMap<String, String>), String> {
    let rest = text.strip_prefix("CEF:").ok_or("no CEF: prefix")?;
    let mut header = Vec::new();
    let mut field = String::new();
    let mut chars = rest.chars();
    while header.len() < 7 {
        match chars.next() {
            None => return Err("header ends early".into()),
            Some('|') => header.push(std::mem::take(&mut field)),
            Some('\\') => match chars.next() {
                Some(c @ ('|' | '\\')) => field.push(c),
                other => return Err(format!("bad header escape \\{other:?}")),
            },
            Some('\n' | '\r') => return Err("line break in header".into()),
            Some(c) => field.push(c),
        }
    }
    if header[0] != "0" {
        return Err(format!("version {:?}", header[0]));
    }
    let severity: u8 = header[6].parse().map_err(|_| "severity")?;
    if severity > 10 {
        return Err("severity above 10".into());
    }
    let extension: String = chars.collect();
    // Split at unescaped '='; each key is the last space-separated word before one.
    let mut pieces: Vec<String> = vec![String::new()];
    let mut chars = extension.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('=') => pieces.last_mut().unwrap().push_str("\u{0}EQ"),
                Some('\\') => pieces.last_mut().unwrap().push_str("\u{0}BS"),
                Some('n') => pieces.last_mut().unwrap().push('\n'),
                Some('r') => pieces.last_mut().unwrap().push('\r'),
                other => return Err(format!("bad extension escape \\{other:?}")),
            },
            '=' => pieces.push(String::new()),
            '\n' | '\r' => return Err("raw line break in extension".into()),
            c => pieces.last_mut().unwrap().push(c),
        }
    }
    let unescape = |text: &str| text.replace("\u{0}EQ", "=").replace("\u{0}BS", "\\");
    let mut pairs = HashMap::new();
    let mut key = pieces[0].trim().to_owned();
    for (i, piece) in pieces.iter().enumerate().skip(1) {
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad extension key {key:?}"));
        }
        let (value, next_key) = if i + 1 == pieces.len() {
            (piece.as_str(), "")
        } else {
            piece.rsplit_once(' ').ok_or(format!("no key after value {piece:?}"))?
        };
        pairs.insert(std::mem::take(&mut key), unescape(value));
        key = next_key.to_owned();
    }
    Ok((header, pairs))
}

// ---- the test ----

fn sink(rsyslog: &Rsyslog, transport: Transport, format: SyslogFormat) -> SinkConfig {
    let port = if transport == Transport::Udp {
        rsyslog.udp_port
    } else {
        rsyslog.tcp_port
    };
    SinkConfig {
        kind: SinkKind::Syslog,
        address: format!("127.0.0.1:{port}"),
        transport,
        format,
        hostname: "vigil-test".into(),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        ..SinkConfig::default()
    }
}

fn awkward_events() -> Vec<Event> {
    let user = "al\"i]c=e|\\ü";
    vec![
        Event::new(
            EventType::SessionFlagged,
            SERVICE,
            "session/s1".into(),
            serde_json::json!({"user": user, "client_ip": "203.0.113.7", "gateway_id": "gw-1", "resource": "db|prod"}),
        )
        .with_session("s1")
        .with_risk(Some(85)),
        Event::new(
            EventType::SessionEnded,
            SERVICE,
            "session/s1".into(),
            serde_json::json!({"user": user, "reason": "TERMINATED", "detail": "line one\nline two"}),
        )
        .with_session("s1")
        .with_actor("ops@example.com"),
        Event::new(
            EventType::LockCreated,
            SERVICE,
            "lock/l1".into(),
            serde_json::json!({"reason": "a=b"}),
        ),
    ]
}

fn check_line(line: &str, events: &HashMap<String, Event>) -> Result<(&'static str, String), String> {
    let parsed = parse_5424(line)?;
    let params = parsed.data.get("vigil@32473").ok_or("no vigil@32473 element")?;
    let event = events.get(&params["id"]).ok_or("unknown event id")?;
    assert_eq!(parsed.pri, 10 * 8 + u16::from(event.kind.severity()));
    assert_eq!(
        (parsed.hostname.as_str(), parsed.app_name.as_str()),
        ("vigil-test", "vigil")
    );
    assert_eq!(parsed.msgid, event.kind.as_str());
    assert!(parsed.timestamp.ends_with('Z'));
    assert_eq!(params["type"], event.kind.as_str());
    assert_eq!(params.get("session"), event.session_id.as_ref());
    assert_eq!(params.get("actor"), event.actor.as_ref());
    if parsed.msg.starts_with("CEF:") {
        let (header, extension) = parse_cef(&parsed.msg)?;
        assert_eq!(
            header[1..5],
            ["Vigil", "Vigil", env!("CARGO_PKG_VERSION"), event.kind.as_str()]
        );
        assert_eq!(extension["externalId"], event.id);
        assert_eq!(extension["rt"], event.time.to_string());
        assert_eq!(
            extension.get("suser").map(String::as_str),
            Some(event.field("user")).filter(|u| !u.is_empty())
        );
        assert_eq!(
            extension.get("cs3").map(String::as_str),
            Some(event.field("resource")).filter(|r| !r.is_empty())
        );
        assert_eq!(
            extension.get("reason").map(String::as_str),
            Some(event.field("reason")).filter(|r| !r.is_empty())
        );
        assert_eq!(extension.get("cn1"), event.risk_score.map(|s| s.to_string()).as_ref());
        Ok(("cef", event.id.clone()))
    } else {
        Ok(("rfc5424", event.id.clone()))
    }
}

async fn syslog_lines_parse_by_the_rfc_and_cef_grammars(database: Arc<TestDatabase>) {
    let dir = TempDir::new();
    let rsyslog = start_rsyslog(dir.path()).await;
    let db = database.connect().await;
    for statement in OutboxTables::new(SERVICE).create_statements(db.get_database_backend()) {
        db.execute_unprepared(&statement).await.unwrap();
    }
    let events = awkward_events();
    vigil_events::outbox::append(&db, SERVICE, &events).await.unwrap();
    let config = EventsConfig {
        sinks: BTreeMap::from([
            (
                "tcp5424".to_owned(),
                sink(&rsyslog, Transport::Tcp, SyslogFormat::Rfc5424),
            ),
            ("tcpcef".to_owned(), sink(&rsyslog, Transport::Tcp, SyslogFormat::Cef)),
            ("udpcef".to_owned(), sink(&rsyslog, Transport::Udp, SyslogFormat::Cef)),
        ]),
        poll_interval: Duration::from_millis(50),
        ..EventsConfig::default()
    };
    let shutdown = CancellationToken::new();
    let relay = vigil_events::relay::spawn(db.clone(), SERVICE, &config, shutdown.clone()).unwrap();
    let output = rsyslog.output.clone();
    let text = eventually_within(Duration::from_secs(20), "rsyslog wrote every message", || {
        let output = output.clone();
        async move {
            let text = std::fs::read_to_string(&output).ok()?;
            (text.lines().count() >= 3 * events_len()).then_some(text)
        }
    })
    .await;
    shutdown.cancel();
    relay.stopped().await;

    let by_id: HashMap<String, Event> = events.iter().map(|event| (event.id.clone(), event.clone())).collect();
    let mut seen: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let (format, id) = check_line(line, &by_id).unwrap_or_else(|error| panic!("{error}: {line}"));
        seen.entry(format).or_default().push(id);
    }
    let ids: Vec<String> = events.iter().map(|event| event.id.clone()).collect();
    assert_eq!(seen["rfc5424"], ids, "each event once, in order");
    let mut cef = seen["cef"].clone();
    cef.sort();
    let mut twice: Vec<String> = ids.iter().chain(&ids).cloned().collect();
    twice.sort();
    assert_eq!(cef, twice, "each event once over TCP and once over UDP");
}

fn events_len() -> usize {
    3
}

#[test]
fn the_grammar_checks_refuse_what_they_should() {
    assert!(parse_5424("<13>1 2026-12-07T03:04:05.678Z h a p m - hello").is_ok());
    assert!(
        parse_5424("<192>1 2026-12-07T03:04:05Z h a p m -").is_err(),
        "PRI range"
    );
    assert!(parse_5424("<13>2 2026-12-07T03:04:05Z h a p m -").is_err(), "version");
    assert!(parse_5424("<13>1 2026-12-07 03:04:05 h a p m -").is_err(), "timestamp");
    assert!(
        parse_5424("<13>1 2026-12-07T03:04:05Z h a p m [x a=\"b]\"]").is_err(),
        "unescaped ]"
    );
    assert!(
        parse_5424("<13>1 2026-12-07T03:04:05Z h a p m [x a=b]").is_err(),
        "unquoted value"
    );
    let parsed = parse_5424(r#"<13>1 2026-12-07T03:04:05Z h a p m [x@1 a="q\"\]\\"] msg"#).unwrap();
    assert_eq!(parsed.data["x@1"]["a"], "q\"]\\");
    assert!(parse_cef("CEF:0|a|b|c|d|e|11|").is_err(), "severity");
    assert!(parse_cef("CEF:0|a|b|c|d|e|5|k=a=b").is_err(), "unescaped = in a value");
    let (_, pairs) = parse_cef(r"CEF:0|a\|x|b|c|d|e|5|k=a\=b c\\ msg=two words").unwrap();
    assert_eq!(pairs["k"], "a=b c\\");
    assert_eq!(pairs["msg"], "two words");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_syslog_lines_parse_by_the_rfc_and_cef_grammars() {
    let database = TestDatabase::postgres().await;
    vigil_testkit::with_database(database, syslog_lines_parse_by_the_rfc_and_cef_grammars).await;
}
