//! Bodies through the proxy: counted into the session's bytes, and cut when the session ends (a
//! streaming response or a long upload stops at once instead of running to its end).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use tokio_util::sync::WaitForCancellationFutureOwned;
use vigil_agent::Agent;

use super::sessions::WebSession;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the proxy sends, either way.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A body counted into a session and cut when it ends.
pub struct Metered<B> {
    inner: B,
    session: Arc<WebSession>,
    agent: Agent,
    /// From the browser (bytes in) or to it (bytes out).
    inbound: bool,
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<B> Metered<B> {
    pub fn new(inner: B, session: &Arc<WebSession>, agent: &Agent, inbound: bool) -> Self {
        Self {
            inner,
            session: Arc::clone(session),
            agent: agent.clone(),
            inbound,
            cut: Box::pin(session.ended.clone().cancelled_owned()),
        }
    }
}

impl<B> Body for Metered<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err("the Vigil session ended".into())));
        }
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.session.count(&this.agent, this.inbound, data.len());
                    crate::metrics::relayed(if this.inbound { "in" } else { "out" }, data.len());
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
