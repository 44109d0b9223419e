//! vigil-gateway's web proxy end to end, with clients nobody here wrote: reqwest (HTTP) and
//! tungstenite (WebSocket) through the proxy to a test application (a hyper server), against a real
//! registry, termination and policy on PostgreSQL and Redis.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;
use vigil_gateway::config::WebResourceConfig;
use vigil_proto::v1 as pb;
use vigil_proto::v1::{EndReason, ResourceType, SessionStatus};
use vigil_tests::tempdir::TempDir;
use vigil_tests::*;

const GATEWAY_ID: &str = "web-gw-test";

type TestBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// The test application: `/stream` streams a line every 50 ms; `/ws` is a WebSocket echo; any other
/// path answers with the method, the path, the request body's length and every header it received.
async fn start_upstream(shutdown: CancellationToken) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let socket = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted.expect("accept").0,
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request| async move {
                    Ok::<_, std::convert::Infallible>(application(request).await)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

async fn application(mut request: Request<Incoming>) -> Response<TestBody> {
    match request.uri().path() {
        "/stream" => {
            let ticks = futures::stream::unfold(0u64, |n| async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((
                    Ok::<_, std::io::Error>(Frame::data(Bytes::from(format!("tick {n}\n")))),
                    n + 1,
                ))
            });
            Response::new(BodyExt::boxed(StreamBody::new(ticks)))
        }
        "/ws" => {
            let key = request.headers()["sec-websocket-key"].as_bytes().to_vec();
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                let upgraded = upgrade.await.expect("the upgrade completes");
                let mut socket =
                    tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() && socket.send(message).await.is_err() {
                        return;
                    }
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "Upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-accept", derive_accept_key(&key))
                .body(empty())
                .expect("101")
        }
        path => {
            let method = request.method().to_string();
            let path = path.to_owned();
            let mut text = String::new();
            for (name, value) in request.headers() {
                text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
            }
            let body = request.into_body().collect().await.expect("body").to_bytes();
            let text = format!("{method} {path}\nbody-length: {}\n{text}", body.len());
            Response::new(BodyExt::boxed(
                Full::new(Bytes::from(text)).map_err(|never| match never {}),
            ))
        }
    }
}

fn empty() -> TestBody {
    BodyExt::boxed(http_body_util::Empty::new().map_err(|never| match never {}))
}

/// The gateway stack with the web proxy on, in front of the test application.
struct World {
    stack: GatewayStack,
    port: u16,
    client: reqwest::Client,
    _dir: TempDir,
}

/// How the user is known: the trusted networks and the development password.
struct Auth {
    trusted: Vec<String>,
    dev_password: String,
}

impl std::ops::Deref for World {
    type Target = GatewayStack;

    fn deref(&self) -> &GatewayStack {
        &self.stack
    }
}

impl World {
    /// Loopback is the trusted proxy: the tests send the identity headers themselves.
    async fn new() -> Self {
        Self::with(Auth {
            trusted: vec!["127.0.0.1/32".into(), "::1".into()],
            dev_password: String::new(),
        })
        .await
    }

    async fn with(auth: Auth) -> Self {
        let mut stack = GatewayStack::new(GATEWAY_ID).await;
        let upstream = start_upstream(stack.shutdown.clone()).await;
        let dir = TempDir::new();
        let mut config = stack.gateway_config(dir.path());
        std::fs::write(
            &config.ssh.users_file,
            "[[user]]\nname = \"alice\"\ngroups = [\"sre\"]\n\n[[user]]\nname = \"bob\"\ngroups = [\"finance\"]\n",
        )
        .expect("users file");
        config.web.enabled = true;
        config.web.listen = "127.0.0.1:0".parse().expect("address");
        config.web.trusted_proxies = auth.trusted;
        config.web.dev_password = auth.dev_password;
        config.web.upstream_timeout = Duration::from_secs(5);
        let down = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        config.web.resources = vec![
            resource("app", &format!("http://{upstream}"), "app.test", &[]),
            resource("admin", &format!("http://{upstream}"), "admin.test", &["admins"]),
            resource("down", &format!("http://{down}"), "down.test", &[]),
        ];
        let web = stack
            .start_gateway(&config)
            .await
            .web_addr
            .expect("the web proxy listens");
        // A real client resolving the resources' host names to the proxy, as DNS would.
        let mut client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30));
        for host in ["app.test", "admin.test", "down.test", "nowhere.test"] {
            client = client.resolve(host, web);
        }
        Self {
            stack,
            port: web.port(),
            client: client.build().expect("client"),
            _dir: dir,
        }
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }

    /// A GET as `user` (through the identity headers, when given) with `cookie` (when given).
    fn get(&self, host: &str, path: &str, user: Option<&str>, cookie: Option<&str>) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .get(self.url(host, path))
            .header("user-agent", "TestBrowser/1.0");
        if let Some(user) = user {
            request = request
                .header("x-forwarded-user", user)
                .header("x-forwarded-groups", "sre, web");
        }
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request
    }

    async fn stop(self) {
        self.stack.stop().await;
    }
}

fn resource(name: &str, upstream: &str, host: &str, groups: &[&str]) -> WebResourceConfig {
    WebResourceConfig {
        name: name.into(),
        upstream: upstream.into(),
        hosts: vec![host.into()],
        groups: groups.iter().map(|group| (*group).to_owned()).collect(),
    }
}

/// Status, `Set-Cookie` values and body text of a response.
async fn read(response: reqwest::Response) -> (StatusCode, Vec<String>, String) {
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    let cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().expect("text").to_owned())
        .collect();
    (status, cookies, response.text().await.expect("body"))
}

/// `name=value` of the session cookie among `Set-Cookie` values.
fn session_cookie(cookies: &[String]) -> String {
    let cookie = cookies
        .iter()
        .find(|cookie| cookie.starts_with("vigil_web_session="))
        .unwrap_or_else(|| panic!("no session cookie in {cookies:?}"));
    cookie.split(';').next().expect("name=value").to_owned()
}

/// The first request of a browser as alice: what the application sees, and the cookie it gets.
async fn first_request(world: &World) -> String {
    let response = world
        .get("app.test", "/hello?x=1", Some("alice"), Some("theme=dark"))
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .send()
        .await
        .expect("first request");
    let (status, cookies, seen) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    // The application got the request with the user set by the gateway, and nothing it must not see.
    assert!(seen.starts_with("GET /hello\n"), "{seen}");
    for expected in [
        "x-vigil-user: alice\n",
        "x-vigil-groups: sre,web\n",
        "cookie: theme=dark\n",
        "x-forwarded-for: 127.0.0.1\n",
        "x-forwarded-proto: http\n",
        &format!("x-forwarded-host: app.test:{}\n", world.port),
    ] {
        assert!(seen.contains(expected), "{expected:?} not in {seen}");
    }
    for absent in ["x-forwarded-user", "x-forwarded-groups", "x-hop", "vigil_web_session"] {
        assert!(!seen.contains(absent), "{absent:?} reached the application: {seen}");
    }
    // The cookie: HttpOnly, SameSite=Lax, a random id.
    let cookie_line = cookies
        .iter()
        .find(|c| c.starts_with("vigil_web_session="))
        .expect("cookie");
    assert!(
        cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Lax"),
        "{cookie_line}"
    );
    let cookie = session_cookie(&cookies);
    assert_eq!(cookie.len(), "vigil_web_session=".len() + 64, "{cookie}");
    cookie
}

/// A second request with the cookie (an upload): the same session, listed with the right fields and
/// the bytes both ways.
async fn same_session(world: &World, cookie: &str) -> pb::Session {
    // Later requests of the same browser: the same session, no new cookie; a body counted in.
    let upload = vec![b'x'; 100_000];
    let response = world
        .client
        .post(world.url("app.test", "/upload"))
        .header("x-forwarded-user", "alice")
        .header("cookie", format!("{cookie}; theme=dark"))
        .body(upload)
        .send()
        .await
        .expect("upload");
    let (status, cookies, seen) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    assert!(cookies.is_empty(), "{cookies:?}");
    assert!(
        seen.contains("body-length: 100000\n") && !seen.contains("vigil_web_session"),
        "{seen}"
    );

    let sessions = world.sessions(vec![SessionStatus::Active, SessionStatus::Idle]).await;
    assert_eq!(sessions.len(), 1, "one browser, one session: {sessions:?}");
    let session = &sessions[0];
    assert_eq!(session.user, "alice");
    assert_eq!(session.user_groups, ["sre", "web"]);
    assert_eq!(session.resource_name, "app");
    assert_eq!(session.resource_type, ResourceType::Web as i32);
    assert_eq!(session.client_ip, "127.0.0.1");
    assert_eq!(session.device, "TestBrowser/1.0");
    assert_eq!(session.gateway_id, GATEWAY_ID);
    eventually("the bytes both ways reported", || async {
        let listed = world.sessions(vec![SessionStatus::Active]).await;
        listed
            .into_iter()
            .find(|s| s.id == session.id && s.bytes_in >= 100_000 && s.bytes_out > 0)
    })
    .await;
    session.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_is_one_vigil_session_and_a_kill_shows_its_message() {
    let world = World::new().await;
    let cookie = first_request(&world).await;
    let session = same_session(&world, &cookie).await;

    world.terminate(&session.id, "Maintenance window, back at 14:00").await;
    let (status, cookies, page) = eventually("the next request to show the message", || async {
        let response = world
            .get("app.test", "/after", Some("alice"), Some(&cookie))
            .send()
            .await
            .ok()?;
        let read = read(response).await;
        (read.0 == StatusCode::FORBIDDEN).then_some(read)
    })
    .await;
    assert!(
        page.contains("You have been disconnected by an administrator: Maintenance window, back at 14:00"),
        "{page}"
    );
    assert!(page.contains("<html"), "{page}");
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("vigil_web_session=;") && c.contains("Max-Age=0")),
        "the cookie is cleared: {cookies:?}"
    );
    // The browser starts over: a new session.
    let (status_again, cookies, _) = read(
        world
            .get("app.test", "/", Some("alice"), None)
            .send()
            .await
            .expect("again"),
    )
    .await;
    assert_eq!((status, status_again), (StatusCode::FORBIDDEN, StatusCode::OK));
    assert_ne!(session_cookie(&cookies), cookie);
    let ended = world.ended_for(&session.id, EndReason::Admin).await;
    assert!(ended.ended_at.is_some());
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_websocket_and_a_streaming_response_are_cut_by_a_kill() {
    let world = World::new().await;
    let (status, cookies, _) = read(
        world
            .get("app.test", "/", Some("alice"), None)
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let cookie = session_cookie(&cookies);

    // A WebSocket through the proxy, in the same browser session.
    let mut socket = open_websocket(&world, &cookie).await;

    // A streaming response, its first lines read.
    let mut streaming = world
        .get("app.test", "/stream", Some("alice"), Some(&cookie))
        .send()
        .await
        .expect("stream");
    let first = streaming.chunk().await.expect("a chunk").expect("not the end");
    assert!(String::from_utf8_lossy(&first).starts_with("tick"), "{first:?}");

    let sessions = world.sessions(vec![SessionStatus::Active, SessionStatus::Idle]).await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let started = Instant::now();
    world.terminate(&sessions[0].id, "Security review").await;
    assert_cut(&mut socket, &mut streaming).await;
    println!("kill -> WebSocket and stream cut in {:?}", started.elapsed());
    // And the old cookie gets the message page.
    let (status, _, page) = read(
        world
            .get("app.test", "/", Some("alice"), Some(&cookie))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Security review"), "{page}");
    world.stop().await;
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A WebSocket through the proxy with `cookie`, checked with one echo.
async fn open_websocket(world: &World, cookie: &str) -> Socket {
    let mut request = world
        .url("app.test", "/ws")
        .replace("http://", "ws://")
        .into_client_request()
        .expect("ws request");
    request
        .headers_mut()
        .insert("x-forwarded-user", "alice".parse().expect("value"));
    request.headers_mut().insert("cookie", cookie.parse().expect("value"));
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", world.port))
        .await
        .expect("connect");
    let (mut socket, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("WebSocket handshake");
    assert_eq!(response.status().as_u16(), 101);
    socket.send(Message::text("ping")).await.expect("send");
    let echoed = socket.next().await.expect("a message").expect("no error");
    assert_eq!(echoed.into_text().expect("text").as_str(), "ping");
    socket
}

/// Both are cut: the WebSocket closes without a word, the stream fails instead of ending.
async fn assert_cut(socket: &mut Socket, streaming: &mut reqwest::Response) {
    let websocket_end = tokio::time::timeout(PATIENCE, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => {}
                other => return other.map(|result| result.map(|_| ())),
            }
        }
    })
    .await
    .expect("the WebSocket is cut");
    assert!(!matches!(websocket_end, Some(Ok(()))), "{websocket_end:?}");
    let stream_end = tokio::time::timeout(PATIENCE, async {
        loop {
            match streaming.chunk().await {
                Ok(Some(_)) => {}
                other => return other,
            }
        }
    })
    .await
    .expect("the stream is cut");
    assert!(
        stream_end.is_err(),
        "a cut stream is an error, not a clean end: {stream_end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_ends_the_browser_session_and_refuses_the_next_with_its_message() {
    let world = World::new().await;
    let (_, cookies, _) = read(
        world
            .get("app.test", "/", Some("alice"), None)
            .send()
            .await
            .expect("get"),
    )
    .await;
    let cookie = session_cookie(&cookies);
    world
        .policy
        .create_lock(
            "soc@example.com",
            &pb::CreateLockRequest {
                target: Some(pb::LockTarget {
                    target: Some(pb::lock_target::Target::User("alice".into())),
                }),
                message: "Suspended by the SOC, call 555-0100".into(),
                reason: "test".into(),
                ttl: None,
            },
        )
        .await
        .expect("lock");
    eventually("the gateway to hold the lock", || async {
        (!world.gateway().agent.locks().is_empty()).then_some(())
    })
    .await;
    // The live session ends with the lock's message.
    let page = eventually("the live session to end", || async {
        let response = world
            .get("app.test", "/", Some("alice"), Some(&cookie))
            .send()
            .await
            .ok()?;
        let (status, _, page) = read(response).await;
        (status == StatusCode::FORBIDDEN).then_some(page)
    })
    .await;
    assert!(page.contains("Suspended by the SOC, call 555-0100"), "{page}");
    // A new browser session is refused with it, and nothing reaches the application.
    let (status, cookies, page) = read(
        world
            .get("app.test", "/", Some("alice"), None)
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        page.contains("Access refused") && page.contains("Suspended by the SOC, call 555-0100"),
        "{page}"
    );
    assert!(!page.contains("x-vigil-user"), "{page}");
    assert!(cookies.is_empty(), "{cookies:?}");
    // Bob is not locked.
    let (status, _, _) = read(world.get("app.test", "/", Some("bob"), None).send().await.expect("get")).await;
    assert_eq!(status, StatusCode::OK);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_from_an_untrusted_source_are_refused_and_dev_basic_auth_uses_the_users_file() {
    // Loopback is not the trusted proxy here.
    let world = World::with(Auth {
        trusted: vec!["192.0.2.0/24".into()],
        dev_password: "s3cret-for-dev".into(),
    })
    .await;
    let (status, _, page) = read(
        world
            .get("app.test", "/", Some("alice"), None)
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        page.contains("X-Forwarded-User") || page.contains("x-forwarded-user"),
        "{page}"
    );
    assert!(page.contains("trusted proxy"), "{page}");

    let response = world.get("app.test", "/", None, None).send().await.expect("get");
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"vigil-gateway\", charset=\"UTF-8\""
    );
    assert_eq!(response.status().as_u16(), 401);
    for (user, password) in [("alice", "wrong"), ("mallory", "s3cret-for-dev"), ("", "")] {
        let response = world
            .get("app.test", "/", None, None)
            .basic_auth(user, Some(password))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status().as_u16(), 401, "{user}:{password}");
    }
    let response = world
        .get("app.test", "/", None, None)
        .basic_auth("alice", Some("s3cret-for-dev"))
        .send()
        .await
        .expect("get");
    let (status, cookies, seen) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert!(
        seen.contains("x-vigil-user: alice\nx-vigil-groups: sre\n")
            || (seen.contains("x-vigil-user: alice\n") && seen.contains("x-vigil-groups: sre\n")),
        "{seen}"
    );
    // The development password is the gateway's: the application never sees it.
    assert!(!seen.contains("authorization"), "{seen}");
    session_cookie(&cookies);
    let sessions = world.sessions(vec![SessionStatus::Active]).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].user_groups, ["sre"], "groups from the users file");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_clear_pages_and_nothing_panics() {
    let world = World::new().await;
    let cases = [
        (
            "nowhere.test",
            Some("alice"),
            StatusCode::NOT_FOUND,
            "No web application is served at",
        ),
        ("app.test", None, StatusCode::UNAUTHORIZED, "does not know who you are"),
        (
            "admin.test",
            Some("alice"),
            StatusCode::FORBIDDEN,
            "alice may not reach admin",
        ),
        (
            "down.test",
            Some("alice"),
            StatusCode::BAD_GATEWAY,
            "down cannot be reached right now",
        ),
    ];
    for (host, user, expected, text) in cases {
        let (status, _, page) = read(world.get(host, "/", user, None).send().await.expect("get")).await;
        assert_eq!(status, expected, "{host}: {page}");
        assert!(page.contains(text), "{host}: {page}");
    }
    let long_user = "a".repeat(300);
    let (status, _, page) = read(
        world
            .get("app.test", "/", Some(&long_user), None)
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("not a user name"), "{page}");
    // Garbage on the wire: hyper answers 400 and the proxy goes on.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", world.port))
        .await
        .expect("connect");
    raw.write_all(b"NOT HTTP AT ALL\r\n\r\n").await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, raw.read_to_end(&mut answer)).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 400"),
        "{answer:?}"
    );
    // A forged cookie is just a new session.
    let (status, cookies, _) = read(
        world
            .get("app.test", "/", Some("alice"), Some("vigil_web_session=forged"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(session_cookie(&cookies), "vigil_web_session=forged");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_gateway_serves_its_web_app_at_the_printed_url() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::with_termination(&schema, &unique_namespace(), test_settings("r1")).await;
    let dir = TempDir::new();
    let shutdown = CancellationToken::new();
    let demo = vigil_gateway::demo::start_demo_gateway(
        &dir.path().join("gateway"),
        "127.0.0.1:0".parse().expect("address"),
        Some("127.0.0.1:0".parse().expect("address")),
        &registry.url(),
        "demo-web-gw",
        "",
        shutdown.clone(),
    )
    .await
    .expect("demo gateway");
    demo.gateway.agent.wait_connected(PATIENCE).await.expect("connected");
    let web = demo.web.as_ref().expect("the demo web app");
    assert!(
        web.curl_command.contains(&format!("demo:{}", web.password)),
        "{}",
        web.curl_command
    );
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let response = client
        .get(&web.url)
        .basic_auth("demo", Some(&web.password))
        .send()
        .await
        .expect("get");
    let (status, _, page) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Hello, demo"), "{page}");
    let response = client
        .get(format!("{}clock", web.url))
        .basic_auth("demo", Some(&web.password))
        .send()
        .await
        .expect("clock");
    let mut response = response;
    let tick = response.chunk().await.expect("chunk").expect("a line");
    assert!(String::from_utf8_lossy(&tick).starts_with("tick "), "{tick:?}");
    demo.gateway.stop().await;
    shutdown.cancel();
}
