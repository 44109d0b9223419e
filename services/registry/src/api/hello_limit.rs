//! A small message limit until a link's hello is authenticated.
//!
//! The link accepts messages of up to `LINK_MAX_MESSAGE_BYTES` (64 MiB): a hello carries every
//! session its gateway holds. Before the gateway is known, that would let anyone make the replica
//! buffer 64 MiB per connection. So the first message of a link may be larger than
//! [`PRE_HELLO_LIMIT`] only when its beginning proves the gateway: the agent writes the hello's
//! gateway id and credential before its sessions (protobuf fields in number order, as every encoder
//! writes them), so within the first [`PRE_HELLO_LIMIT`] bytes the replica reads both and
//! authenticates them (or the client certificate) before it takes in more. A first message that
//! is larger and does not prove its gateway that early is refused with `RESOURCE_EXHAUSTED`, which
//! counts as a failed hello for the peer (see `hello_guard`).
//!
//! This is a wrapper of the request body of the `GatewayLink` service: it watches the gRPC frames
//! as they arrive and passes them on unchanged.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{Bytes, Service, http};
use tonic::server::NamedService;
use vigil_runtime::auth::authenticate_gateway;

/// The largest first message a peer may send before its gateway is authenticated.
pub const PRE_HELLO_LIMIT: usize = 64 * 1024;

/// gRPC's message prefix: a compression flag and a 4-byte big-endian length.
const FRAME_HEADER: usize = 5;

/// A service whose request bodies are held to [`PRE_HELLO_LIMIT`] until the hello proves its gateway.
#[derive(Clone)]
pub struct PreHelloLimit<S> {
    inner: S,
}

impl<S> PreHelloLimit<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: NamedService> NamedService for PreHelloLimit<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for PreHelloLimit<S>
where
    S: Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let extensions = parts.extensions.clone();
        let body = Body::new(LimitedBody {
            inner: body,
            first: Some(Vec::new()),
            extensions,
        });
        self.inner.call(http::Request::from_parts(parts, body))
    }
}

/// The request body, watched until the first message is known to be small or proven.
struct LimitedBody {
    inner: Body,
    /// The first message's bytes seen so far (at most its header and [`PRE_HELLO_LIMIT`]); `None`
    /// once the first message is allowed.
    first: Option<Vec<u8>>,
    /// What authenticates the peer: the auth layer's gateway gate and the client certificate.
    extensions: tonic::Extensions,
}

impl LimitedBody {
    /// Takes in a chunk of the body; `Err` refuses the link.
    fn observe(&mut self, chunk: &[u8]) -> Result<(), Status> {
        let Some(seen) = &mut self.first else {
            return Ok(());
        };
        let room = (FRAME_HEADER + PRE_HELLO_LIMIT).saturating_sub(seen.len());
        seen.extend_from_slice(&chunk[..chunk.len().min(room)]);
        match first_message(seen, |gateway_id, credential| {
            authenticate_gateway(&self.extensions, gateway_id, credential).is_ok()
        }) {
            Verdict::Undecided => Ok(()),
            Verdict::Allowed => {
                self.first = None;
                Ok(())
            }
            Verdict::Refused(why) => {
                self.first = None;
                Err(Status::resource_exhausted(why))
            }
        }
    }
}

impl HttpBody for LimitedBody {
    type Data = Bytes;
    type Error = tonic::codegen::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
            && let Err(refused) = self.observe(data)
        {
            return Poll::Ready(Some(Err(refused.into())));
        }
        Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What the beginning of a link's first message allows.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// More bytes are needed to tell.
    Undecided,
    /// Small, or its hello proves its gateway: the rest of the link is read as usual.
    Allowed,
    /// Refused, for this reason.
    Refused(String),
}

/// Judges the first gRPC message of a link from its first bytes (`seen`: the 5-byte prefix and at
/// most [`PRE_HELLO_LIMIT`] bytes of the message). `proves(gateway_id, credential)` authenticates
/// a hello's gateway. Pure, for the fuzz target and the tests.
pub fn first_message(seen: &[u8], proves: impl Fn(&str, &str) -> bool) -> Verdict {
    let Some(header) = seen.get(..FRAME_HEADER) else {
        return Verdict::Undecided;
    };
    let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if length <= PRE_HELLO_LIMIT {
        return Verdict::Allowed;
    }
    let too_large = |why: &str| {
        Verdict::Refused(format!(
            "the link's first message is {length} bytes; before a hello proves its gateway at most {PRE_HELLO_LIMIT} \
             are read ({why})"
        ))
    };
    if header[0] != 0 {
        return too_large("a compressed hello cannot be read before it is whole");
    }
    let body = &seen[FRAME_HEADER..];
    match hello_credentials(body) {
        Some(Some((gateway_id, credential))) if proves(&gateway_id, &credential) => Verdict::Allowed,
        Some(Some(_)) => too_large("its gateway id and credential do not authenticate"),
        Some(None) => too_large("its gateway id and credential must come first"),
        None if body.len() >= PRE_HELLO_LIMIT => too_large("its gateway id and credential must come first"),
        None => Verdict::Undecided,
    }
}

/// The gateway id and credential at the start of an `AgentMessage` holding a hello:
/// `Some(Some(..))` once both are read and the sessions (field 4) begin; `Some(None)` when the
/// message is not a hello or does not start with them; `None` when more bytes are needed.
fn hello_credentials(message: &[u8]) -> Option<Option<(String, String)>> {
    // AgentMessage.hello (field 1, length-delimited): tag 0x0a, then the hello's length.
    let mut reader = Reader { bytes: message };
    if reader.varint()? != 0x0a {
        return Some(None);
    }
    let Ok(length) = usize::try_from(reader.varint()?) else {
        return Some(None);
    };
    // Only the hello's own bytes: after it may come the message's trace context.
    let whole = reader.bytes.len() >= length;
    let mut hello = Reader {
        bytes: &reader.bytes[..length.min(reader.bytes.len())],
    };
    let (mut gateway_id, mut credential) = (None, None);
    loop {
        if hello.bytes.is_empty() && whole {
            break;
        }
        let tag = hello.varint()?;
        let (field, wire_type) = (tag >> 3, tag & 7);
        if field >= 4 {
            // The sessions begin: whatever came before is all there is.
            break;
        }
        if wire_type != 2 || field == 0 {
            return Some(None);
        }
        let length = usize::try_from(hello.varint()?).ok()?;
        let value = hello.take(length)?;
        let Ok(text) = std::str::from_utf8(value) else {
            return Some(None);
        };
        match field {
            1 => gateway_id = Some(text.to_owned()),
            2 => credential = Some(text.to_owned()),
            _ => {}
        }
    }
    // No credential: the client certificate may prove the gateway.
    Some(gateway_id.zip(Some(credential.unwrap_or_default())))
}

/// Reads protobuf varints and bytes; `None` when the input ends first.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value: u64 = 0;
        for (index, &byte) in self.bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[index + 1..];
                return Some(value);
            }
        }
        // Ten bytes without an end is malformed; fewer is an unfinished varint.
        if self.bytes.len() >= 10 { Some(u64::MAX) } else { None }
    }

    fn take(&mut self, length: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < length {
            return None;
        }
        let (value, rest) = self.bytes.split_at(length);
        self.bytes = rest;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use vigil_proto::v1 as pb;

    use super::*;

    fn framed(message: &pb::AgentMessage) -> Vec<u8> {
        frame(&message.encode_to_vec())
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    fn hello(gateway_id: &str, credential: &str, sessions: usize) -> pb::AgentMessage {
        let session = pb::SnapshotSession {
            session_id: "0192f0c4-0000-7000-8000-000000000001".into(),
            start: Some(pb::SessionStart {
                user: "alice@acme.example".repeat(8),
                ..Default::default()
            }),
            ..Default::default()
        };
        pb::AgentMessage {
            message: Some(pb::agent_message::Message::Hello(pb::Hello {
                gateway_id: gateway_id.into(),
                credential: credential.into(),
                agent_version: "1.0".into(),
                sessions: vec![session; sessions],
            })),
            trace_context: Default::default(),
        }
    }

    fn proves(gateway_id: &str, credential: &str) -> bool {
        gateway_id == "gw-1" && credential == "right"
    }

    /// The verdict once at most the limit of the message has been seen (as the body sees it).
    fn verdict(bytes: &[u8]) -> Verdict {
        first_message(&bytes[..bytes.len().min(FRAME_HEADER + PRE_HELLO_LIMIT)], proves)
    }

    #[test]
    fn a_small_first_message_passes_unread() {
        assert_eq!(verdict(&framed(&hello("gw-1", "wrong", 3))), Verdict::Allowed);
        assert_eq!(first_message(&[0, 0, 0], proves), Verdict::Undecided);
    }

    #[test]
    fn a_large_hello_passes_only_when_its_beginning_proves_the_gateway() {
        let large = framed(&hello("gw-1", "right", 2_000));
        assert!(large.len() > PRE_HELLO_LIMIT * 4);
        assert_eq!(verdict(&large), Verdict::Allowed);
        // Decided from the first few bytes, long before the limit.
        assert_eq!(first_message(&large[..200], proves), Verdict::Allowed);
        assert_eq!(first_message(&large[..20], proves), Verdict::Undecided);

        let wrong = verdict(&framed(&hello("gw-1", "wrong", 2_000)));
        assert!(
            matches!(&wrong, Verdict::Refused(why) if why.contains("do not authenticate")),
            "{wrong:?}"
        );
    }

    #[test]
    fn a_large_first_message_that_is_no_hello_or_hides_its_credential_is_refused() {
        let activity = pb::AgentMessage {
            message: Some(pb::agent_message::Message::Activity(pb::ActivityBatch::default())),
            trace_context: [("traceparent".to_owned(), "x".repeat(PRE_HELLO_LIMIT * 2))].into(),
        };
        assert!(matches!(verdict(&framed(&activity)), Verdict::Refused(_)));

        // Fields in another order (valid protobuf): the sessions before the credential.
        let Some(pb::agent_message::Message::Hello(mut late)) = hello("gw-1", "", 2_000).message else {
            unreachable!()
        };
        late.gateway_id.clear();
        let mut inner = late.encode_to_vec();
        inner.extend_from_slice(&[0x0a, 4, b'g', b'w', b'-', b'1', 0x12, 5, b'r', b'i', b'g', b'h', b't']);
        let mut message = vec![0x0a];
        prost::encoding::encode_varint(inner.len() as u64, &mut message);
        message.extend_from_slice(&inner);
        let decoded = pb::AgentMessage::decode(&message[..]).expect("valid protobuf");
        assert!(matches!(decoded.message, Some(pb::agent_message::Message::Hello(ref h)) if h.credential == "right"));
        assert!(matches!(verdict(&frame(&message)), Verdict::Refused(_)));

        // A credential as long as the limit: never read whole before the limit.
        let padded = framed(&hello("gw-1", &"r".repeat(PRE_HELLO_LIMIT), 1));
        assert!(matches!(verdict(&padded), Verdict::Refused(_)));

        let mut compressed = framed(&hello("gw-1", "right", 2_000));
        compressed[0] = 1;
        assert!(matches!(verdict(&compressed), Verdict::Refused(why) if why.contains("compressed")));
    }
}
