//! sessionctl driven through `run` against in-process fakes of the services, one file per command; the
//! fakes and helpers they share are in `fakes`. One test binary, so the suite links once.

mod audit;
mod fakes;
mod formats;

mod connection;
mod events;
mod locks;
mod policies_create;
mod policies_delete;
mod policies_effective;
mod policies_get;
mod policies_list;
mod policies_update;
mod profiles;
mod sessions_end;
mod sessions_get;
mod sessions_list;
mod stats;
mod terminations_get;
mod terminations_list;
mod watch;
