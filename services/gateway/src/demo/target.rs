//! A demo SSH target in the gateway's own process: a toy shell, so `vigil run` can offer a real SSH
//! session through the gateway without an sshd. It accepts one key (the gateway's) and knows a handful
//! of commands; it is a target like any other to the gateway (own host key, pinned).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use russh::keys::{PrivateKey, PublicKey};
use russh::server::{self, Auth, ChannelOpenHandle, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, Pty};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::keys;
use crate::listen::next_connection;

/// The host name the toy shell reports.
pub const DEMO_HOSTNAME: &str = "demo-target";

/// The demo user's name, and the demo target's resource name.
pub const DEMO_USER: &str = "demo";
pub const DEMO_RESOURCE: &str = "demo-target";

/// A running demo target.
pub struct DemoTarget {
    pub addr: SocketAddr,
    /// Its host key's public half, to pin in the gateway's target list.
    pub host_key: String,
}

/// Starts the toy shell on `listen`, accepting only `allowed` (the gateway's client key).
pub async fn start(listen: SocketAddr, allowed: PublicKey, shutdown: CancellationToken) -> anyhow::Result<DemoTarget> {
    let host_key = keys::generate();
    let public = keys::openssh_public(host_key.public_key());
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let config = Arc::new(server_config(host_key));
    let started = Instant::now();
    tokio::spawn(async move {
        loop {
            let Some((socket, _)) = next_connection(&listener, &shutdown).await else {
                return;
            };
            let handler = ToyShell {
                allowed: allowed.clone(),
                user: String::new(),
                channels: HashMap::new(),
                started,
            };
            let config = Arc::clone(&config);
            tokio::spawn(async move {
                if let Ok(running) = server::run_stream(config, socket, handler).await {
                    let _ = running.await;
                }
            });
        }
    });
    Ok(DemoTarget { addr, host_key: public })
}

fn server_config(host_key: PrivateKey) -> server::Config {
    server::Config {
        server_id: russh::SshId::Standard("SSH-2.0-VigilDemoTarget".into()),
        methods: (&[MethodKind::PublicKey][..]).into(),
        auth_rejection_time: Duration::from_millis(100),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        inactivity_timeout: None,
        ..server::Config::default()
    }
}

#[derive(Default)]
struct ShellChannel {
    pty: bool,
    interactive: bool,
    line: String,
}

struct ToyShell {
    allowed: PublicKey,
    user: String,
    channels: HashMap<ChannelId, ShellChannel>,
    started: Instant,
}

/// What a command printed and its exit status; `exit` asks to end the shell.
struct Outcome {
    output: String,
    status: u32,
    exit: bool,
}

impl ToyShell {
    fn run(&self, line: &str) -> Outcome {
        let line = line.trim();
        let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
        let ok = |output: String| Outcome {
            output,
            status: 0,
            exit: false,
        };
        match command {
            "" => ok(String::new()),
            "help" => ok("commands: echo, whoami, hostname, date, uptime, ls, cat motd, sleep N, exit\n".into()),
            "echo" => ok(format!("{rest}\n")),
            "whoami" => ok(format!("{}\n", self.user)),
            "hostname" => ok(format!("{DEMO_HOSTNAME}\n")),
            "date" => {
                let seconds = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                ok(format!("{seconds} seconds since 1970 (UTC)\n"))
            }
            "uptime" => ok(format!("up {} seconds\n", self.started.elapsed().as_secs())),
            "ls" => ok("motd\n".into()),
            "cat" if rest.trim() == "motd" => ok(MOTD.into()),
            "exit" | "logout" => Outcome {
                output: String::new(),
                status: 0,
                exit: true,
            },
            _ => Outcome {
                output: format!("toy-shell: {command}: command not found (try help)\n"),
                status: 127,
                exit: false,
            },
        }
    }
}

const MOTD: &str = "This is Vigil's demo target, a toy shell inside the gateway process.\n\
End this session from another terminal: sessionctl sessions list, then sessionctl terminate.\n";

fn crlf(text: &str, pty: bool) -> String {
    if pty {
        text.replace('\n', "\r\n")
    } else {
        text.to_owned()
    }
}

fn prompt(user: &str) -> String {
    format!("{user}@{DEMO_HOSTNAME}:~$ ")
}

fn end_channel(session: &mut Session, channel: ChannelId, status: u32) -> Result<(), russh::Error> {
    session.exit_status_request(channel, status)?;
    session.eof(channel)?;
    session.close(channel)
}

impl server::Handler for ToyShell {
    type Error = russh::Error;

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        if key.public_key.key_data() == self.allowed.key_data() {
            self.user = user.to_owned();
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), ShellChannel::default());
        reply.accept().await;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(state) = self.channels.get_mut(&channel) {
            state.pty = true;
        }
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        let pty = match self.channels.get_mut(&channel) {
            Some(state) => {
                state.interactive = true;
                state.pty
            }
            None => return session.channel_failure(channel),
        };
        session.channel_success(channel)?;
        let greeting = format!("{MOTD}Type help for the commands.\n");
        session.data(channel, crlf(&greeting, pty) + &prompt(&self.user))?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        command: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let pty = self.channels.get(&channel).is_some_and(|state| state.pty);
        let outcome = self.run(&String::from_utf8_lossy(command));
        if !outcome.output.is_empty() {
            session.data(channel, crlf(&outcome.output, pty))?;
        }
        end_channel(session, channel, outcome.status)
    }

    async fn data(&mut self, channel: ChannelId, data: &[u8], session: &mut Session) -> Result<(), Self::Error> {
        let Some(state) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        if !state.interactive {
            return Ok(());
        }
        let pty = state.pty;
        let mut echo = String::new();
        let mut lines = Vec::new();
        let mut hang_up = false;
        for &byte in data {
            match byte {
                b'\r' | b'\n' => {
                    if pty {
                        echo.push_str("\r\n");
                    }
                    lines.push(std::mem::take(&mut state.line));
                }
                // Backspace / DEL.
                0x08 | 0x7f if state.line.pop().is_some() && pty => echo.push_str("\u{8} \u{8}"),
                0x08 | 0x7f => {}
                // Ctrl-C: drop the line.
                0x03 => {
                    state.line.clear();
                    echo.push_str("^C\r\n");
                    echo.push_str(&prompt(&self.user));
                }
                // Ctrl-D on an empty line: log out.
                0x04 if state.line.is_empty() => hang_up = true,
                byte if (0x20..0x7f).contains(&byte) => {
                    state.line.push(byte as char);
                    if pty {
                        echo.push(byte as char);
                    }
                }
                _ => {}
            }
        }
        let mut output = echo;
        let mut exit = hang_up;
        for line in lines {
            let outcome = self.run(&line);
            output.push_str(&crlf(&outcome.output, pty));
            if outcome.exit {
                exit = true;
                break;
            }
            output.push_str(&prompt(&self.user));
        }
        if !output.is_empty() {
            session.data(channel, output)?;
        }
        if exit {
            if pty {
                session.data(channel, "logout\r\n".to_owned())?;
            }
            self.channels.remove(&channel);
            end_channel(session, channel, 0)?;
        }
        Ok(())
    }

    async fn channel_eof(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        if self.channels.remove(&channel).is_some_and(|state| state.interactive) {
            end_channel(session, channel, 0)?;
        }
        Ok(())
    }
}
