//! The demo `vigil run` offers: a toy shell as an SSH target ([`target`], which the gateway can also
//! start for itself with `ssh.demo_target`), and a gateway in front of it ([`gateway`], which the
//! all-in-one starts). Apart so that the gateway's wiring (`app`) uses the target without the demo
//! gateway, which uses the wiring.

mod gateway;
pub mod target;

pub use crate::web::demo_app::DEMO_WEB_RESOURCE;
pub use gateway::{DemoGateway, DemoWeb, start_demo_gateway};
pub use target::{DEMO_HOSTNAME, DEMO_RESOURCE, DEMO_USER, DemoTarget, start};
