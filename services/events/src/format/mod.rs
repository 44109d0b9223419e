//! How an event is written for each kind of receiver.

pub mod cef;
pub mod cloudevents;
pub mod rfc5424;
