//! vigil-gateway end to end, with programs nobody here wrote: OpenSSH's `ssh`, `scp` and `sftp` through
//! the gateway to a real OpenSSH `sshd` the test starts on a free port, against a real registry,
//! termination and policy on PostgreSQL and Redis.
//!
//! Needs `ssh`, `scp`, `sftp`, `ssh-keygen` and `/usr/sbin/sshd` (`.ci/run` installs openssh-client and
//! openssh-server when missing) and, for sshd, root (the CI machine and the development container).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use vigil_gateway::app::Gateway;
use vigil_gateway::config::{GatewayConfig, TargetConfig};
use vigil_proto::v1 as pb;
use vigil_proto::v1::{EndReason, ResourceType, SessionStatus};
use vigil_tests::tempdir::TempDir;
use vigil_tests::*;

/// A throwaway OpenSSH server: own host key, config and authorized_keys; killed on drop.
struct Sshd {
    port: u16,
    host_key_public: String,
    child: tokio::process::Child,
    log: PathBuf,
}

impl Sshd {
    async fn start(dir: &Path, authorized_key: &str) -> Self {
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd (sshd's privilege separation directory)");
        let host_key = dir.join("sshd_host_key");
        keygen(&host_key).await;
        let authorized_keys = dir.join("authorized_keys");
        std::fs::write(&authorized_keys, format!("{authorized_key}\n")).expect("write authorized_keys");
        let port = free_port();
        let config = dir.join("sshd_config");
        // HOME is the test's directory: the target's shell reads none of the machine's own dotfiles (a
        // root ~/.bashrc running `pyenv init`, which waits forever on a rehash lock left by a killed
        // session, once made every command through the target hang).
        let log = dir.join("sshd.log");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nPidFile {}\nStrictModes no\n\
                 UsePAM no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n\
                 AcceptEnv LANG VIGIL_TEST_*\nPrintMotd no\nPrintLastLog no\nSetEnv HOME={}\n",
                host_key.display(),
                authorized_keys.display(),
                dir.join("sshd.pid").display(),
                dir.display(),
            ),
        )
        .expect("write sshd_config");
        let child = tokio::process::Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .arg("-E")
            .arg(&log)
            .kill_on_drop(true)
            .spawn()
            .expect("/usr/sbin/sshd must be installed (apt-get install openssh-server)");
        eventually("sshd to accept connections", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(drop)
        })
        .await;
        let host_key_public = std::fs::read_to_string(dir.join("sshd_host_key.pub")).expect("host key .pub");
        Self {
            port,
            host_key_public: host_key_public.trim().to_owned(),
            child,
            log,
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// An ed25519 key pair at `path` and `path.pub`, made by OpenSSH's own ssh-keygen.
async fn keygen(path: &Path) {
    let status = tokio::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "vigil-test", "-f"])
        .arg(path)
        .status()
        .await
        .expect("ssh-keygen must be installed (apt-get install openssh-client)");
    assert!(status.success(), "ssh-keygen failed");
}

/// The gateway stack in front of an sshd, the toy shell and two targets that must fail; users with keys.
struct World {
    stack: GatewayStack,
    sshd: Sshd,
    ssh_port: u16,
    alice_key: PathBuf,
    mallory_key: PathBuf,
    users_file: PathBuf,
    dir: TempDir,
}

const GATEWAY_ID: &str = "ssh-gw-test";

impl std::ops::Deref for World {
    type Target = GatewayStack;

    fn deref(&self) -> &GatewayStack {
        &self.stack
    }
}

impl World {
    async fn new() -> Self {
        // Short: the stalled-client test waits for it.
        Self::with_login_grace(Duration::from_secs(2)).await
    }

    async fn with_login_grace(login_grace: Duration) -> Self {
        let mut stack = GatewayStack::new(GATEWAY_ID).await;
        let dir = TempDir::new();
        let mut config = stack.gateway_config(dir.path());
        let alice_key = dir.path().join("alice");
        keygen(&alice_key).await;
        let mallory_key = dir.path().join("mallory");
        keygen(&mallory_key).await;
        write_users(&config.ssh.users_file, &alice_key);

        // The gateway's client key first: sshd's authorized_keys holds it.
        let client_key =
            vigil_gateway::keys::load_or_create(&config.ssh.client_key, "vigil-gateway").expect("client key");
        let sshd = Sshd::start(
            dir.path(),
            &vigil_gateway::keys::openssh_public(client_key.public_key()),
        )
        .await;
        // Generous: the load test starts 200 clients at once on a 2-core machine.
        config.registry.admission_timeout = Duration::from_secs(60);
        config.ssh.users_reload_interval = Duration::from_millis(100);
        config.ssh.login_grace = login_grace;
        config.ssh.connect_timeout = Duration::from_secs(5);
        // The toy shell too: cheap sessions for the load test (no sshd fork per login).
        let toy = vigil_gateway::demo::start(
            "127.0.0.1:0".parse().expect("address"),
            client_key.public_key().clone(),
            stack.registry.shutdown.child_token(),
        )
        .await
        .expect("toy target");
        config.ssh.targets = targets(&toy, &sshd);
        let ssh_port = stack.start_gateway(&config).await.ssh_addr.port();
        Self {
            stack,
            sshd,
            ssh_port,
            alice_key,
            mallory_key,
            users_file: config.ssh.users_file,
            dir,
        }
    }

    /// `ssh` with the test's options, as `login`, with `key`.
    fn ssh(&self, login: &str, key: &Path) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("ssh");
        command
            .arg("-p")
            .arg(self.ssh_port.to_string())
            .arg("-i")
            .arg(key)
            .args(common_options())
            .arg(format!("{login}@127.0.0.1"))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    async fn run_ssh(&self, login: &str, key: &Path, remote: &[&str]) -> Output {
        let mut command = self.ssh(login, key);
        command.args(remote);
        output_of(command).await
    }

    async fn stop(self) {
        self.stack.stop().await;
    }
}

/// alice (sre) and bob (finance), both with alice's key; mallory's key is nobody's.
fn write_users(users_file: &Path, alice_key: &Path) {
    let alice_public = std::fs::read_to_string(alice_key.with_extension("pub")).expect("alice.pub");
    std::fs::write(
        users_file,
        format!(
            "[[user]]\nname = \"alice\"\ngroups = [\"sre\"]\nkeys = [\"{}\"]\n\n\
             [[user]]\nname = \"bob\"\ngroups = [\"finance\"]\nkeys = [\"{}\"]\n",
            alice_public.trim(),
            alice_public.trim()
        ),
    )
    .expect("users file");
}

/// `toy` (the toy shell, for anyone), `box` (the sshd, for sre), `down` (nothing listens) and
/// `impostor` (the sshd, with another host key pinned: it must be refused).
fn targets(toy: &vigil_gateway::demo::DemoTarget, sshd: &Sshd) -> Vec<TargetConfig> {
    let target = |name: &str, address: String, user: &str, host_key: String, groups: &[&str]| TargetConfig {
        name: name.into(),
        address,
        user: user.into(),
        host_key,
        groups: groups.iter().map(|group| (*group).to_owned()).collect(),
    };
    vec![
        target("toy", toy.addr.to_string(), "alice", toy.host_key.clone(), &[]),
        target("box", sshd.address(), "root", sshd.host_key_public.clone(), &["sre"]),
        target(
            "down",
            format!("127.0.0.1:{}", free_port()),
            "root",
            sshd.host_key_public.clone(),
            &[],
        ),
        target(
            "impostor",
            sshd.address(),
            "root",
            vigil_gateway::keys::openssh_public(vigil_gateway::keys::generate().public_key()),
            &[],
        ),
    ]
}

/// The two heavy tests (200 clients at once, the benchmark) take the machine for themselves: side by
/// side on two cores, admissions queue behind key exchanges for longer than any sane timeout.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn common_options() -> Vec<String> {
    [
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        "ConnectTimeout=10",
        "-F",
        "/dev/null",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

struct Output {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

async fn output_of(mut command: tokio::process::Command) -> Output {
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("the client finishes in time")
        .expect("run the client");
    Output {
        status: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// An interactive `ssh -tt` whose stdin the test types into and whose output it reads.
struct Interactive {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    output: Arc<std::sync::Mutex<String>>,
    /// The tasks reading stdout and stderr; done once ssh has closed both.
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Interactive {
    fn start(mut command: tokio::process::Command) -> Self {
        command
            .arg("-tt")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start ssh");
        let stdin = child.stdin.take().expect("stdin");
        let output = Arc::new(std::sync::Mutex::new(String::new()));
        let mut readers = Vec::new();
        for mut stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let output = Arc::clone(&output);
            readers.push(tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    output.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
            }));
        }
        Self {
            child,
            stdin,
            output,
            readers,
        }
    }

    async fn type_line(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("type into ssh");
    }

    fn text(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    async fn wait_for(&self, what: &str) {
        let output = Arc::clone(&self.output);
        let what = what.to_owned();
        eventually(&format!("{what:?} in the terminal"), || {
            let found = output.lock().unwrap().contains(&what);
            async move { found.then_some(()) }
        })
        .await;
    }

    /// Waits for ssh to exit (and for everything it printed to be read); its exit code.
    async fn exit(&mut self) -> Option<i32> {
        let code = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("ssh exits in time")
            .expect("wait for ssh")
            .code();
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(PATIENCE, reader).await;
        }
        code
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_runs_through_the_gateway_with_its_output_and_exit_status() {
    let world = World::new().await;
    // The gateway's health says SERVING once its link to the registry is up.
    let channel = vigil_runtime::server::connect_channel(
        &format!("http://{}", world.gateway().health_addr),
        Duration::from_secs(5),
    )
    .await
    .expect("health port");
    let health = tonic_health::pb::health_client::HealthClient::new(channel);
    eventually("the gateway SERVING", || {
        let mut health = health.clone();
        async move {
            let status = health
                .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
                .await
                .ok()?
                .into_inner()
                .status;
            (status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32).then_some(())
        }
    })
    .await;

    let output = world.run_ssh("alice+box", &world.alice_key, &["echo hello"]).await;
    assert_eq!(output.status, Some(0), "{output:?}");
    assert_eq!(output.stdout, "hello\n", "{output:?}");

    let output = world
        .run_ssh("alice+box", &world.alice_key, &["echo to-stderr >&2; exit 3"])
        .await;
    assert_eq!(output.status, Some(3), "{output:?}");
    assert!(output.stderr.contains("to-stderr"), "{output:?}");

    // Standard input reaches the command, and its end (EOF) too: `cat` ends.
    let mut command = world.ssh("alice+box", &world.alice_key);
    command
        .arg("cat; echo done")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("ssh");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"line one\nline two\n").await.expect("write");
    drop(stdin);
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("in time")
        .expect("ssh output");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "line one\nline two\ndone\n");

    // Environment variables the target accepts pass (sshd: AcceptEnv VIGIL_TEST_*).
    let mut command = world.ssh("alice+box", &world.alice_key);
    command
        .env("VIGIL_TEST_COLOUR", "teal")
        .args(["-o", "SendEnv=VIGIL_TEST_COLOUR", "echo $VIGIL_TEST_COLOUR"]);
    let output = output_of(command).await;
    assert_eq!(output.stdout, "teal\n", "{output:?}");

    // Every one of those was a Vigil session, now ended by the user.
    let sessions = eventually("the four sessions ended as USER_CLOSED", || async {
        let ended = world.sessions(vec![SessionStatus::Disconnected]).await;
        (ended.len() == 4 && ended.iter().all(|s| s.end_reason == EndReason::UserClosed as i32)).then_some(ended)
    })
    .await;
    assert!(sessions.iter().all(|s| s.user == "alice" && s.resource_name == "box"));
    assert_eq!(world.gateway().bastion.live.len(), 0);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_session_is_listed_and_a_kill_shows_the_message_in_the_terminal() {
    let world = World::new().await;
    let mut shell = Interactive::start(world.ssh("alice+box", &world.alice_key));
    shell.type_line("echo typed-$((6*7))").await;
    shell.wait_for("typed-42").await;
    // The pty is real: the target sees a terminal of the client's size.
    shell.type_line("tty; echo term=$TERM").await;
    shell.wait_for("/dev/pts/").await;

    let session = eventually("the session listed with its activity", || async {
        world
            .live_sessions()
            .await
            .into_iter()
            .find(|s| s.bytes_in > 0 && s.bytes_out > 0 && s.last_activity_at.is_some())
    })
    .await;
    assert_eq!(session.user, "alice");
    assert_eq!(session.user_groups, ["sre"]);
    assert_eq!(session.resource_name, "box");
    assert_eq!(session.resource_type, ResourceType::Ssh as i32);
    assert_eq!(session.gateway_id, GATEWAY_ID);
    assert_eq!(session.client_ip, "127.0.0.1");
    assert!(session.device.starts_with("OpenSSH_"), "device {:?}", session.device);
    assert_eq!(session.status, SessionStatus::Active as i32);

    // The idle warning reaches the terminal as a line.
    use vigil_agent::GatewayHandler;
    world
        .gateway()
        .commands
        .idle_warning(&pb::IdleWarning {
            session_id: session.id.clone(),
            disconnect_at: Some((std::time::SystemTime::now() + Duration::from_secs(20 * 60)).into()),
            user_message: String::new(),
        })
        .await;
    shell.wait_for("disconnected in 20 minutes unless you type").await;

    let started = Instant::now();
    let mut termination = world.registry.termination_client().await;
    termination
        .terminate(pb::TerminateRequest {
            selector: Some(pb::SessionSelector {
                target: Some(pb::session_selector::Target::SessionIds(pb::SessionIds {
                    ids: vec![session.id.clone()],
                })),
            }),
            reason: EndReason::Admin as i32,
            user_message: "Maintenance window, back at 14:00".into(),
            ..Default::default()
        })
        .await
        .expect("terminate");
    let code = shell.exit().await;
    let elapsed = started.elapsed();
    let text = shell.text();
    assert_eq!(code, Some(255), "{text}");
    assert!(
        text.contains("You have been disconnected by an administrator: Maintenance window, back at 14:00"),
        "{text}"
    );
    // And OpenSSH printed the disconnect message it received.
    assert!(text.contains("Received disconnect from 127.0.0.1"), "{text}");
    println!("kill took {elapsed:?}");

    let ended = world.ended_for(&session.id, EndReason::Admin).await;
    assert!(ended.ended_at.is_some());
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_refuses_the_next_login_with_its_message_and_ends_the_live_one() {
    let world = World::new().await;
    let mut shell = Interactive::start(world.ssh("alice+box", &world.alice_key));
    shell.type_line("echo ready").await;
    shell.wait_for("ready").await;

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
    // The live session ends with the lock's message.
    assert_eq!(shell.exit().await, Some(255));
    assert!(
        shell.text().contains("Suspended by the SOC, call 555-0100"),
        "{}",
        shell.text()
    );

    // The next login is refused with it, before any shell.
    eventually("the gateway to hold the lock", || async {
        (!world.gateway().agent.locks().is_empty()).then_some(())
    })
    .await;
    let output = world
        .run_ssh("alice+box", &world.alice_key, &["echo should-not-run"])
        .await;
    assert_eq!(output.status, Some(255), "{output:?}");
    assert!(!output.stdout.contains("should-not-run"), "{output:?}");
    assert!(
        output.stderr.contains("Suspended by the SOC, call 555-0100"),
        "{output:?}"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_copy_both_ways_with_scp_and_sftp() {
    let world = World::new().await;
    let local = world.dir.path().join("payload.bin");
    let payload: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&local, &payload).expect("payload");
    let remote_dir = world.dir.path().join("remote");
    std::fs::create_dir_all(&remote_dir).expect("remote dir");
    let remote = remote_dir.join("copy.bin");

    let mut scp = tokio::process::Command::new("scp");
    scp.arg("-P")
        .arg(world.ssh_port.to_string())
        .arg("-i")
        .arg(&world.alice_key)
        .args(common_options())
        .arg(&local)
        .arg(format!("alice+box@127.0.0.1:{}", remote.display()))
        .kill_on_drop(true);
    let output = output_of(scp).await;
    assert_eq!(output.status, Some(0), "{output:?}");
    assert_eq!(std::fs::read(&remote).expect("copied"), payload);

    // Back with sftp (the subsystem relayed as such).
    let back = world.dir.path().join("back.bin");
    let batch = world.dir.path().join("batch");
    std::fs::write(&batch, format!("get {} {}\n", remote.display(), back.display())).expect("batch");
    let mut sftp = tokio::process::Command::new("sftp");
    sftp.arg("-P")
        .arg(world.ssh_port.to_string())
        .arg("-i")
        .arg(&world.alice_key)
        .args(common_options())
        .arg("-b")
        .arg(&batch)
        .arg("alice+box@127.0.0.1")
        .kill_on_drop(true);
    let output = output_of(sftp).await;
    assert_eq!(output.status, Some(0), "{output:?}");
    assert_eq!(std::fs::read(&back).expect("fetched"), payload);

    // Both were sessions of their own.
    let sessions = world.ended_sessions(2, "the scp and sftp sessions recorded").await;
    assert!(sessions.iter().all(|s| s.resource_name == "box" && s.user == "alice"));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_logins_get_a_clear_message_and_nothing_leaks() {
    let world = World::new().await;

    // No target: the list of what alice may reach.
    let output = world.run_ssh("alice", &world.alice_key, &[]).await;
    assert_eq!(output.status, Some(0), "{output:?}");
    assert!(output.stdout.contains("box"), "{output:?}");
    assert!(output.stdout.contains("down"), "{output:?}");
    assert!(output.stdout.contains("toy"), "{output:?}");

    // Unknown user, and a key that is not the user's: plain refusals.
    let output = world.run_ssh("nobody+box", &world.alice_key, &["true"]).await;
    assert_eq!(output.status, Some(255), "{output:?}");
    assert!(output.stderr.contains("Permission denied"), "{output:?}");
    let output = world.run_ssh("alice+box", &world.mallory_key, &["true"]).await;
    assert_eq!(output.status, Some(255), "{output:?}");
    assert!(output.stderr.contains("Permission denied"), "{output:?}");

    // Unknown target, and one bob's groups do not reach: the same answer.
    let output = world.run_ssh("alice+nowhere", &world.alice_key, &["true"]).await;
    assert_eq!(output.status, Some(255), "{output:?}");
    assert!(output.stderr.contains("Unknown target \"nowhere\""), "{output:?}");
    let output = world.run_ssh("bob+box", &world.alice_key, &["true"]).await;
    assert!(output.stderr.contains("Unknown target \"box\""), "{output:?}");

    // Malformed logins.
    for login in ["alice+", "alice+a+b", "alice+bad%name"] {
        let output = world.run_ssh(login, &world.alice_key, &["true"]).await;
        assert_eq!(output.status, Some(255), "{login}: {output:?}");
        assert!(output.stderr.contains("Malformed login"), "{login}: {output:?}");
    }

    // A target that is down, and one whose host key is not the pinned one: the attempt is recorded.
    let output = world.run_ssh("alice+down", &world.alice_key, &["true"]).await;
    assert_eq!(output.status, Some(255), "{output:?}");
    assert!(output.stderr.contains("Cannot reach down"), "{output:?}");
    let output = world.run_ssh("alice+impostor", &world.alice_key, &["true"]).await;
    assert!(output.stderr.contains("not the pinned one"), "{output:?}");
    let recorded = world
        .ended_sessions(2, "the failed attempts recorded as ended sessions")
        .await;
    assert!(
        recorded.iter().all(|s| s.end_reason == EndReason::GatewayClosed as i32),
        "{recorded:?}"
    );

    // A client that connects and says nothing, and one that stops after its version string.
    let started = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", world.ssh_port))
        .await
        .expect("connect");
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", world.ssh_port))
        .await
        .expect("connect");
    stalled.write_all(b"SSH-2.0-Stalled_1.0\r\n").await.expect("write");
    for stream in [&mut silent, &mut stalled] {
        let mut buffer = vec![0u8; 4096];
        let closed = tokio::time::timeout(PATIENCE, async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a stalled client is dropped");
    }
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());

    // A garbage speaker is dropped too, and the gateway still serves.
    let mut garbage = tokio::net::TcpStream::connect(("127.0.0.1", world.ssh_port))
        .await
        .expect("connect");
    garbage.write_all(&[0xff; 600]).await.expect("write");
    let output = world
        .run_ssh("alice+box", &world.alice_key, &["echo still-serving"])
        .await;
    assert_eq!(output.stdout, "still-serving\n", "{output:?}");

    eventually("no connection left open", || async {
        (world.gateway().bastion.connection_count() <= 1).then_some(())
    })
    .await;
    drop(garbage);
    eventually("no connection or session left", || async {
        (world.gateway().bastion.connection_count() == 0 && world.gateway().bastion.live.is_empty()).then_some(())
    })
    .await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_users_file_takes_effect_without_a_restart() {
    let world = World::new().await;
    let output = world.run_ssh("alice+box", &world.mallory_key, &["true"]).await;
    assert_eq!(output.status, Some(255), "{output:?}");
    let mallory_public = std::fs::read_to_string(world.mallory_key.with_extension("pub")).expect("mallory.pub");
    std::fs::write(
        &world.users_file,
        format!(
            "[[user]]\nname = \"mallory\"\ngroups = [\"sre\"]\nkeys = [\"{}\"]\n",
            mallory_public.trim()
        ),
    )
    .expect("rewrite users");
    let output = eventually("mallory let in once the file is re-read", || async {
        let output = world.run_ssh("mallory+box", &world.mallory_key, &["echo in"]).await;
        (output.status == Some(0)).then_some(output)
    })
    .await;
    assert_eq!(output.stdout, "in\n");
    // Alice is gone with the old file.
    let output = world.run_ssh("alice+box", &world.alice_key, &["true"]).await;
    assert!(output.stderr.contains("Permission denied"), "{output:?}");
    let _ = &world.sshd.log;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_key_signs_in_and_a_users_own_account_is_used_on_the_target() {
    let world = World::new().await;
    let carol_key = world.dir.path().join("carol");
    let status = tokio::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "carol-rsa", "-f"])
        .arg(&carol_key)
        .status()
        .await
        .expect("ssh-keygen");
    assert!(status.success());
    let carol_public = std::fs::read_to_string(carol_key.with_extension("pub")).expect("carol.pub");
    assert!(carol_public.starts_with("ssh-rsa "), "{carol_public}");
    let alice_public = std::fs::read_to_string(world.alice_key.with_extension("pub")).expect("alice.pub");
    std::fs::write(
        &world.users_file,
        format!(
            "[[user]]\nname = \"alice\"\ngroups = [\"sre\"]\nkeys = [\"{}\"]\n\n\
             [[user]]\nname = \"carol\"\nkeys = [\"{}\"]\naccounts = {{ \"toy\" = \"carol-on-toy\" }}\n",
            alice_public.trim(),
            carol_public.trim()
        ),
    )
    .expect("rewrite users");
    // OpenSSH signs with rsa-sha2-512; the toy target sees carol's own account, not the gateway's.
    let output = eventually("carol let in with her RSA key", || async {
        let output = world.run_ssh("carol+toy", &carol_key, &["whoami"]).await;
        (output.status == Some(0)).then_some(output)
    })
    .await;
    assert_eq!(output.stdout, "carol-on-toy\n", "{output:?}");
    // Alice has no account of her own: the target's configured one.
    let output = world.run_ssh("alice+toy", &world.alice_key, &["whoami"]).await;
    assert_eq!(output.stdout, "alice\n", "{output:?}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_gateway_prints_a_command_that_opens_a_real_session() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::with_termination(&schema, &unique_namespace(), test_settings("r1")).await;
    let dir = TempDir::new();
    let shutdown = CancellationToken::new();
    let demo = vigil_gateway::demo::start_demo_gateway(
        &dir.path().join("gateway"),
        "127.0.0.1:0".parse().expect("address"),
        None,
        &registry.url(),
        "demo-ssh-gw",
        "",
        shutdown.clone(),
    )
    .await
    .expect("demo gateway");
    demo.gateway.agent.wait_connected(PATIENCE).await.expect("connected");
    // The printed command, as a newcomer would paste it (plus BatchMode for the test).
    let mut words = demo.ssh_command.split_whitespace();
    assert_eq!(words.next(), Some("ssh"));
    let mut command = tokio::process::Command::new("ssh");
    command
        .args(words)
        .args(["-o", "BatchMode=yes", "-F", "/dev/null"])
        .arg("hostname")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = output_of(command).await;
    assert_eq!(output.stdout, "demo-target\n", "{output:?}");
    assert_eq!(output.status, Some(0), "{output:?}");
    // The toy shell takes one command per exec; its pty shell takes several.
    let mut words = demo.ssh_command.split_whitespace();
    words.next();
    let mut command = tokio::process::Command::new("ssh");
    command.args(words).args(["-o", "BatchMode=yes", "-F", "/dev/null"]);
    let mut shell = Interactive::start(command);
    shell.wait_for("demo@demo-target:~$").await;
    shell.type_line("echo one two").await;
    shell.wait_for("one two").await;
    let listed = eventually("the demo session listed", || async {
        let mut client = registry.sessions_client().await;
        let sessions = client
            .list_sessions(pb::ListSessionsRequest {
                filter: Some(pb::SessionFilter {
                    statuses: vec![SessionStatus::Active as i32],
                    gateway_id: "demo-ssh-gw".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner()
            .sessions;
        sessions.into_iter().next()
    })
    .await;
    assert_eq!(listed.user, "demo");
    assert_eq!(listed.resource_name, "demo-target");
    shell.type_line("exit").await;
    assert_eq!(shell.exit().await, Some(0), "{}", shell.text());
    demo.gateway.stop().await;
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_connections_at_once_are_all_answered_and_nothing_leaks() {
    let _alone = HEAVY.lock().await;
    // 200 key exchanges at once take a 2-core machine several seconds.
    let world = World::with_login_grace(Duration::from_secs(60)).await;
    let mut clients = Vec::new();
    for i in 0..200 {
        // Half sign in and run a command, half are strangers.
        let (login, remote) = if i % 2 == 0 {
            ("alice+toy", format!("echo client-{i}"))
        } else {
            ("stranger+toy", "true".to_owned())
        };
        let mut command = world.ssh(login, &world.alice_key);
        command.arg(remote);
        clients.push(tokio::spawn(async move {
            let output = tokio::time::timeout(Duration::from_secs(120), command.output())
                .await
                .expect("every client finishes")
                .expect("run ssh");
            (
                i,
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }));
    }
    let mut admitted = 0;
    for client in clients {
        let (i, status, stdout, stderr) = client.await.expect("client task");
        if i % 2 == 0 {
            assert_eq!(
                (status, stdout.as_str()),
                (Some(0), format!("client-{i}\n").as_str()),
                "{stderr}"
            );
            admitted += 1;
        } else {
            assert_eq!(status, Some(255), "{stderr}");
            assert!(stderr.contains("Permission denied"), "{stderr}");
        }
    }
    assert_eq!(admitted, 100);
    let ended = world
        .ended_sessions(100, "the hundred sessions recorded and ended")
        .await;
    assert!(ended.iter().all(|s| s.end_reason == EndReason::UserClosed as i32));
    eventually("no connection or session left", || async {
        (world.gateway().bastion.connection_count() == 0
            && world.gateway().bastion.live.is_empty()
            && world.gateway().agent.session_count() == 0)
            .then_some(())
    })
    .await;
    world.stop().await;
}

/// A knob of the benchmark: the environment variable, or the small default CI runs with.
fn knob(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// Seconds `ssh … remote` takes with stdin from `input` bytes of zeros (0: none), stdout discarded.
async fn timed_transfer(mut command: tokio::process::Command, input: usize) -> Duration {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(if input > 0 { Stdio::piped() } else { Stdio::null() });
    let started = Instant::now();
    let mut child = command.spawn().expect("ssh");
    if input > 0 {
        let mut stdin = child.stdin.take().expect("stdin");
        let block = vec![0u8; 1 << 16];
        let mut left = input;
        while left > 0 {
            let n = left.min(block.len());
            stdin.write_all(&block[..n]).await.expect("write");
            left -= n;
        }
        drop(stdin);
    }
    let status = tokio::time::timeout(Duration::from_secs(300), child.wait())
        .await
        .expect("the transfer ends")
        .expect("wait");
    assert!(status.success(), "transfer failed: {status:?}");
    started.elapsed()
}

/// The benchmark in small (CI); `VIGIL_GATEWAY_BENCH_KILLS=200 VIGIL_GATEWAY_BENCH_MB=256
/// VIGIL_GATEWAY_BENCH_SESSIONS=100 cargo test --release -p vigil-tests --test gateway_ssh benchmark --
/// --nocapture` gives the figures in full. Kill latency: `Terminate` called → the ssh client has exited,
/// beside a Redis publish → receive round trip of the same run. Throughput: bytes through the gateway
/// vs straight to the same sshd. Memory: this process's RSS growth per open SSH session (gateway,
/// agent and registry together, all in this process; the sshd and the clients are not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmark_kill_latency_throughput_and_memory() {
    let kills = knob("VIGIL_GATEWAY_BENCH_KILLS", 10);
    let megabytes = knob("VIGIL_GATEWAY_BENCH_MB", 16);
    let sessions = knob("VIGIL_GATEWAY_BENCH_SESSIONS", 10);
    let _alone = HEAVY.lock().await;
    let world = World::with_login_grace(Duration::from_secs(60)).await;

    let latencies = kill_latencies(&world, kills).await;
    let yardstick = redis_yardstick(kills.max(10)).await;
    let throughput = throughput(&world, megabytes << 20).await;
    let (memory_kib, open) = memory_of_open_sessions(&world, sessions).await;

    println!("\n== vigil-gateway benchmark ({kills} kills, {megabytes} MiB each way, {sessions} sessions)");
    println!(
        "kill latency (Terminate -> ssh exited): p50 {:?}  p99 {:?}  max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
    println!(
        "Redis yardstick (publish -> receive):   p50 {:?}  p99 {:?}",
        percentile(&yardstick, 0.5),
        percentile(&yardstick, 0.99)
    );
    let rate = |elapsed: Duration| megabytes as f64 / elapsed.as_secs_f64();
    for (direction, direct, gateway) in [
        ("download:", throughput.direct_down, throughput.gateway_down),
        ("upload:  ", throughput.direct_up, throughput.gateway_up),
    ] {
        println!(
            "{direction} direct {:.1} MiB/s, through the gateway {:.1} MiB/s ({:.0} %)",
            rate(direct),
            rate(gateway),
            100.0 * direct.as_secs_f64() / gateway.as_secs_f64()
        );
    }
    println!(
        "memory: {memory_kib} KiB RSS for {sessions} open sessions, {:.0} KiB per session",
        memory_kib as f64 / sessions as f64
    );
    drop(open);
    world.stop().await;
}

/// `Terminate` called → the ssh client has exited, for `kills` real sessions to the real sshd, sorted.
async fn kill_latencies(world: &World, kills: usize) -> Vec<Duration> {
    let mut termination = world.registry.termination_client().await;
    let mut latencies = Vec::new();
    for round in 0..kills {
        let mut shell = Interactive::start(world.ssh("alice+box", &world.alice_key));
        shell.type_line(&format!("echo ready-{round}-$((1+1))")).await;
        shell.wait_for(&format!("ready-{round}-2")).await;
        let session_id = world.gateway().bastion.live.all()[0].session_id.clone();
        let started = Instant::now();
        termination
            .terminate(pb::TerminateRequest {
                selector: Some(pb::SessionSelector {
                    target: Some(pb::session_selector::Target::SessionIds(pb::SessionIds {
                        ids: vec![session_id],
                    })),
                }),
                reason: EndReason::Admin as i32,
                user_message: format!("bench kill {round}"),
                ..Default::default()
            })
            .await
            .expect("terminate");
        assert_eq!(shell.exit().await, Some(255));
        latencies.push(started.elapsed());
        assert!(
            shell.text().contains(&format!("bench kill {round}")),
            "{}",
            shell.text()
        );
        eventually("the killed session gone from the gateway", || async {
            world.gateway().bastion.live.is_empty().then_some(())
        })
        .await;
    }
    latencies.sort();
    latencies
}

/// The yardstick beside the kill latency: publish → subscriber receives, on the same Redis, sorted.
async fn redis_yardstick(rounds: usize) -> Vec<Duration> {
    use futures::StreamExt;
    use vigil_runtime::bus::ControlBus;
    let bus = redis_bus(&unique_namespace()).await;
    let mut subscription = bus.subscribe("bench").await.expect("subscribe");
    let mut yardstick = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        bus.publish("bench", Arc::from(&b"x"[..])).await.expect("publish");
        tokio::time::timeout(PATIENCE, subscription.next())
            .await
            .expect("received")
            .expect("stream open");
        yardstick.push(started.elapsed());
    }
    yardstick.sort();
    yardstick
}

/// How long `bytes` take each way, through the gateway and straight to the sshd.
struct Throughput {
    direct_down: Duration,
    gateway_down: Duration,
    direct_up: Duration,
    gateway_up: Duration,
}

async fn throughput(world: &World, bytes: usize) -> Throughput {
    let gateway_client_key = world.dir.path().join("gateway_client_key");
    let direct = |remote: String| {
        let mut command = tokio::process::Command::new("ssh");
        command
            .arg("-p")
            .arg(world.sshd.port.to_string())
            .arg("-i")
            .arg(&gateway_client_key)
            .args(common_options())
            .arg("root@127.0.0.1")
            .arg(remote)
            .kill_on_drop(true);
        command
    };
    let through = |remote: String| {
        let mut command = world.ssh("alice+box", &world.alice_key);
        command.arg(remote);
        command
    };
    let download = format!("head -c {bytes} /dev/zero");
    let upload = "cat > /dev/null".to_owned();
    Throughput {
        direct_down: timed_transfer(direct(download.clone()), 0).await,
        gateway_down: timed_transfer(through(download), 0).await,
        direct_up: timed_transfer(direct(upload.clone()), bytes).await,
        gateway_up: timed_transfer(through(upload), bytes).await,
    }
}

/// This process's RSS growth (KiB) for `sessions` open SSH sessions, and the sessions, still open.
async fn memory_of_open_sessions(world: &World, sessions: usize) -> (u64, Vec<Interactive>) {
    let before = rss_kib();
    let mut open = Vec::new();
    for i in 0..sessions {
        let mut shell = Interactive::start(world.ssh("alice+box", &world.alice_key));
        shell.type_line(&format!("echo open-{i}-$((2+2))")).await;
        shell.wait_for(&format!("open-{i}-4")).await;
        open.push(shell);
    }
    let after = rss_kib();
    assert_eq!(world.gateway().bastion.live.len(), sessions);
    (after.saturating_sub(before), open)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_fail_mode_ends_sessions_when_the_registry_stays_away_and_refuses_new_ones() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::with_termination(&schema, &unique_namespace(), test_settings("r1")).await;
    let dir = TempDir::new();
    let shutdown = CancellationToken::new();
    let user_key = dir.path().join("user");
    keygen(&user_key).await;
    let users_file = dir.path().join("users.toml");
    let public = std::fs::read_to_string(user_key.with_extension("pub")).expect("user.pub");
    std::fs::write(
        &users_file,
        format!("[[user]]\nname = \"carol\"\nkeys = [\"{}\"]\n", public.trim()),
    )
    .expect("users");
    let mut config = GatewayConfig::default();
    config.registry.url = registry.url();
    config.registry.gateway_id = "strict-gw".into();
    config.registry.fail_mode = vigil_gateway::config::FailModeSetting::Strict;
    config.registry.link_grace = Duration::from_secs(1);
    config.server.listen = "127.0.0.1:0".parse().expect("address");
    config.ssh.listen = "127.0.0.1:0".parse().expect("address");
    config.ssh.host_key = dir.path().join("host_key");
    config.ssh.client_key = dir.path().join("client_key");
    config.ssh.users_file = users_file;
    config.ssh.demo_target = true;
    let gateway = Gateway::start(&config, shutdown.clone()).await.expect("gateway");
    gateway.agent.wait_connected(PATIENCE).await.expect("connected");
    let ssh = |extra: &[&str]| {
        let mut command = tokio::process::Command::new("ssh");
        command
            .arg("-p")
            .arg(gateway.ssh_addr.port().to_string())
            .arg("-i")
            .arg(&user_key)
            .args(common_options())
            .arg("carol+demo-target@127.0.0.1")
            .args(extra)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    };
    let mut shell = Interactive::start(ssh(&[]));
    shell.wait_for("demo@demo-target:~$").await;

    // The registry goes away and stays away longer than the grace.
    registry.stop().await;
    assert_eq!(shell.exit().await, Some(255), "{}", shell.text());
    assert!(
        shell.text().contains(
            "You have been disconnected by the gateway: Your session was ended because this gateway lost contact"
        ),
        "{}",
        shell.text()
    );
    // And new logins are refused, with a reason, until it is back.
    let output = output_of(ssh(&["hostname"])).await;
    assert_eq!(output.status, Some(255), "{output:?}");
    assert!(
        output.stderr.contains("The gateway cannot open sessions right now"),
        "{output:?}"
    );
    gateway.stop().await;
    shutdown.cancel();
}
