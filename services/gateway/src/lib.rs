//! `vigil-gateway`: a real gateway built on the Vigil agent SDK ([`vigil_agent`]), and the worked
//! example for gateway authors.
//!
//! The SSH bastion ([`ssh`]) terminates users' SSH connections (public keys from a users file), takes
//! the target from the login (`ssh -p 2222 alice+prod-db-01@gateway`; `alice` alone lists what she may
//! reach), admits every connection as a Vigil session through the agent, then signs in to the target
//! with the gateway's own key (checking the target's pinned host key) and relays the session
//! channels. When the registry ends a session (a kill, a lock, an eviction, a timeout) the user reads
//! why in their terminal and in the SSH disconnect message.
//!
//! The web proxy ([`web`]) does the same for web applications: one Vigil session per browser session
//! (a cookie), the user named by an authenticating proxy in front, and a page with the message once
//! the session has ended.

pub mod app;
pub mod config;
pub mod demo;
pub mod keys;
mod listen;
pub mod live;
pub mod login;
pub mod metrics;
pub mod ssh;
pub mod stream;
pub mod target;
pub mod users;
pub mod web;
