//! Each Vigil service as its callers see it, the way quickwit keeps one trait per service beside a
//! clients crate "to avoid dependency cycles between services": a caller depends on the trait, the
//! providing service implements it, and the gRPC adapter here implements it too, so the all-in-one
//! binary wires services in process and separate processes wire them over gRPC without either
//! side knowing.
//!
//! | trait | provided by | used by |
//! |---|---|---|
//! | [`registry::SessionDirectory`] | registry | termination (resolve, owner checks) |
//! | [`registry::SessionSource`] | registry | policy (sweeper, lock enforcement) |
//! | [`termination::SessionTerminator`] | termination | policy |
//! | [`termination::CommandJournal`] | termination | registry (links) |
//! | [`termination::SessionEvictor`] | termination | registry (admission) |
//! | [`policy::AdmissionPolicy`] | policy | registry (admission, locks) |
//! | [`geo::RiskAssessor`] | geo | registry (admission) |
//!
//! Errors cross the wire both ways through the runtime's one mapping (`Status` ⇄ `ServiceError`).

pub mod geo;
pub mod policy;
pub mod registry;
pub mod termination;

pub use geo::{GrpcRiskAssessor, RiskAssessor};
pub use policy::{AdmissionPolicy, GrpcAdmissionPolicy};
pub use registry::{GrpcSessionDirectory, GrpcSessionSource, SessionDirectory, SessionSource};
pub use termination::{
    CommandJournal, GrpcCommandJournal, GrpcSessionEvictor, GrpcSessionTerminator, SessionEvictor, SessionTerminator,
};
