//! The console's server side over plain HTTP/1.1 from a client that is not a browser: the embedded
//! pages, gRPC-Web calls through the shared server's authentication layer and permission tables,
//! origin checks, and the one-time sign-in code. (Every RPC the console uses is also called over
//! gRPC-Web against the real all-in-one by `web/e2e/console.e2e.test.ts`.)

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use vigil_console::{ConsoleApi, ConsolePages, SignInCodes, SignInIssuer};
use vigil_proto::v1 as pb;
use vigil_runtime::auth::{ApiToken, AuthConfig, Secret};
use vigil_runtime::server::{Server, ServerConfig, bind};
use vigil_runtime::tls::TlsConfig;

const SECRET: &str = "0123456789abcdef0123456789abcdef-grpc-web";

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The gRPC status: from the headers (trailers-only answers) or the trailer frame.
    fn grpc_status(&self) -> Option<u32> {
        if let Some(status) = self.header("grpc-status") {
            return status.parse().ok();
        }
        let (_, trailers) = frames(&self.body);
        let trailers = String::from_utf8(trailers?).ok()?;
        trailers
            .lines()
            .find_map(|line| line.strip_prefix("grpc-status:"))
            .and_then(|status| status.trim().parse().ok())
    }
}

/// The message frames and the trailer frame of a gRPC-Web body.
fn frames(mut body: &[u8]) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
    let mut messages = Vec::new();
    let mut trailers = None;
    while body.len() >= 5 {
        let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let payload = body[5..5 + length].to_vec();
        if body[0] & 0x80 != 0 {
            trailers = Some(payload);
        } else {
            messages.push(payload);
        }
        body = &body[5 + length..];
    }
    (messages, trailers)
}

/// Decodes an HTTP/1.1 chunked body.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let Some(end) = raw.windows(2).position(|window| window == b"\r\n") else {
            return body;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), answer read to the end.
async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("the server answers")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(name, value)| name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_vec() };
    Answer { status, headers, body }
}

async fn grpc_web(addr: std::net::SocketAddr, path: &str, message: &impl Message, extra: &[(&str, &str)]) -> Answer {
    let payload = message.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    body.extend_from_slice(&payload);
    let mut headers = vec![("content-type", "application/grpc-web+proto"), ("x-grpc-web", "1")];
    headers.extend_from_slice(extra);
    request(addr, "POST", path, &headers, &body).await
}

async fn start() -> (std::net::SocketAddr, Arc<SignInCodes>, CancellationToken) {
    let auth = AuthConfig {
        hs256_secret: Some(Secret::new(SECRET)),
        api_tokens: vec![ApiToken {
            token: Secret::new("viewer-token"),
            subject: "vera".into(),
            roles: vec!["viewer".into()],
        }],
        ..AuthConfig::required()
    };
    let codes = Arc::new(SignInCodes::new(Some(SignInIssuer {
        secret: Secret::new(SECRET),
        subject: "admin@local".into(),
        roles: vec!["admin".into()],
        token_ttl: Duration::from_secs(600),
    })));
    let server = Server::new(ServerConfig::default())
        .with_security(&auth, &TlsConfig::default())
        .unwrap()
        .with_pages(Arc::new(ConsolePages))
        .add_service(ConsoleApi::server(codes.clone()));
    server.readiness().set_all(true).await;
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.serve(listener, shutdown.clone()));
    (addr, codes, shutdown)
}

#[tokio::test]
async fn pages_are_served_on_the_grpc_port_with_a_strict_policy() {
    let (addr, _codes, shutdown) = start().await;
    for path in ["/", "/sessions/0190f0e2-0000-7000-8000-000000000000"] {
        let page = request(addr, "GET", path, &[], b"").await;
        assert_eq!(page.status, 200, "{path}");
        assert!(page.header("content-type").unwrap().starts_with("text/html"));
        assert!(
            page.header("content-security-policy")
                .unwrap()
                .contains("default-src 'self'")
        );
        assert!(String::from_utf8_lossy(&page.body).contains("/assets/console.js"));
    }
    let script = request(addr, "GET", "/assets/console.js", &[], b"").await;
    assert_eq!(script.status, 200);
    assert!(script.header("content-type").unwrap().starts_with("text/javascript"));
    assert!(!script.body.is_empty());
    assert_eq!(request(addr, "GET", "/assets/missing.js", &[], b"").await.status, 404);
    shutdown.cancel();
}

#[tokio::test]
async fn grpc_web_goes_through_the_auth_layer() {
    let (addr, _codes, shutdown) = start().await;
    let anonymous = grpc_web(addr, "/vigil.v1.ConsoleService/WhoAmI", &pb::WhoAmIRequest {}, &[]).await;
    assert_eq!(anonymous.grpc_status(), Some(16), "UNAUTHENTICATED without a token");

    let viewer = grpc_web(
        addr,
        "/vigil.v1.ConsoleService/WhoAmI",
        &pb::WhoAmIRequest {},
        &[("authorization", "Bearer viewer-token")],
    )
    .await;
    assert_eq!(viewer.status, 200);
    assert!(
        viewer
            .header("content-type")
            .unwrap()
            .starts_with("application/grpc-web")
    );
    assert_eq!(viewer.grpc_status(), Some(0));
    let (messages, _) = frames(&viewer.body);
    let who = pb::WhoAmIResponse::decode(messages[0].as_slice()).unwrap();
    assert_eq!(who.subject, "vera");
    assert_eq!(who.roles, ["viewer"]);
    assert!(!who.permissions.contains(&"sessions:terminate".to_owned()));

    // A method no table knows is refused before any routing.
    let unknown = grpc_web(
        addr,
        "/vigil.v1.SessionRegistry/DropTables",
        &pb::WhoAmIRequest {},
        &[("authorization", "Bearer viewer-token")],
    )
    .await;
    assert_eq!(unknown.grpc_status(), Some(7));
    shutdown.cancel();
}

#[tokio::test]
async fn pages_from_other_origins_may_not_call() {
    let (addr, _codes, shutdown) = start().await;
    let own_origin = format!("http://{addr}");
    let same = grpc_web(
        addr,
        "/vigil.v1.ConsoleService/WhoAmI",
        &pb::WhoAmIRequest {},
        &[("authorization", "Bearer viewer-token"), ("origin", &own_origin)],
    )
    .await;
    assert_eq!(same.grpc_status(), Some(0));
    let foreign = grpc_web(
        addr,
        "/vigil.v1.ConsoleService/WhoAmI",
        &pb::WhoAmIRequest {},
        &[
            ("authorization", "Bearer viewer-token"),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(foreign.grpc_status(), Some(7), "PERMISSION_DENIED for a foreign origin");
    let preflight = request(
        addr,
        "OPTIONS",
        "/vigil.v1.ConsoleService/WhoAmI",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ],
        b"",
    )
    .await;
    assert_eq!(preflight.status, 403);
    shutdown.cancel();
}

#[tokio::test]
async fn a_sign_in_code_is_exchanged_once_for_a_working_token() {
    let (addr, codes, shutdown) = start().await;
    let code = codes.issue(Duration::from_secs(60));
    let exchange = |code: String| async move {
        grpc_web(
            addr,
            "/vigil.v1.ConsoleService/ExchangeSignInCode",
            &pb::ExchangeSignInCodeRequest { code },
            &[],
        )
        .await
    };
    let first = exchange(code.clone()).await;
    assert_eq!(first.grpc_status(), Some(0));
    let (messages, _) = frames(&first.body);
    let token = pb::ExchangeSignInCodeResponse::decode(messages[0].as_slice())
        .unwrap()
        .token;
    let bearer = format!("Bearer {token}");
    let who = grpc_web(
        addr,
        "/vigil.v1.ConsoleService/WhoAmI",
        &pb::WhoAmIRequest {},
        &[("authorization", &bearer)],
    )
    .await;
    let (messages, _) = frames(&who.body);
    let who = pb::WhoAmIResponse::decode(messages[0].as_slice()).unwrap();
    assert_eq!(who.subject, "admin@local");
    assert!(who.permissions.contains(&"sessions:terminate-all".to_owned()));

    assert_eq!(exchange(code).await.grpc_status(), Some(5), "NOT_FOUND the second time");
    shutdown.cancel();
}
