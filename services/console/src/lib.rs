//! The web console, served by the binary that embeds this crate.
//!
//! - [`ConsolePages`]: the built bundle (`services/console/dist/`, built from `web/` by Vite and
//!   committed, so building Vigil needs no Node.js), answered to `GET`s through
//!   [`vigil_runtime::web`]. Every path outside `/assets/` is the single page (`/sessions/<id>`
//!   deep links included).
//! - [`ConsoleApi`]: `vigil.v1.ConsoleService` — the one-time sign-in codes of the link `vigil run`
//!   prints, and "who am I". Everything else the console does goes through the same gRPC services
//!   (over gRPC-Web) as every other client.

mod pages;
mod signin;

pub use pages::ConsolePages;
pub use signin::{ConsoleApi, SignInCodes, SignInIssuer};
