//! Accepted connections that the node can cut when it stops.
//!
//! tonic spawns a task per connection (and hyper one per request) that outlives the server's
//! accept loop: aborting the server leaves them running for as long as the peer keeps the
//! connection open. A leader's Raft append stream and a client's Telemetry stream never end by
//! themselves, so a graceful drain could wait forever, and the tasks keep clones of the services
//! (the Raft handle, the stores) alive, so a replica restarted in the same process found its
//! stores still locked. Every accepted connection is wrapped in a [`Severable`]: once the node's
//! [`CancellationToken`] fires, its reads and writes fail, hyper ends the connection and resets
//! its streams, and the tasks drop what they hold.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::Connected;

/// An I/O stream whose reads and writes fail once its token is cancelled.
pub struct Severable<IO> {
    inner: IO,
    token: CancellationToken,
    /// Wakes a task parked on `inner` when the token fires.
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<IO> Severable<IO> {
    pub fn new(inner: IO, token: CancellationToken) -> Self {
        let cancelled = Box::pin(token.clone().cancelled_owned());
        Self { inner, token, cancelled }
    }

    fn severed() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, "the broker replica is stopping")
    }

    /// Called when `inner` is not ready: registers for the token too, so a parked connection
    /// notices the cut. `Ok` means keep waiting.
    fn park(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.token.is_cancelled() || self.cancelled.as_mut().poll(cx).is_ready() {
            return Err(Self::severed());
        }
        Ok(())
    }

    /// Ready results of `inner` pass through, except after the cut.
    fn check<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => match self.park(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
            Poll::Ready(_) if self.token.is_cancelled() => Poll::Ready(Err(Self::severed())),
            ready => ready,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Severable<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.check(cx, r)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Severable<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.check(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for Severable<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_parked_read_fails_once_the_token_fires() {
        let (a, mut b) = tokio::io::duplex(64);
        let token = CancellationToken::new();
        let mut s = Severable::new(a, token.clone());
        b.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");

        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1];
            s.read(&mut buf).await
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!reader.is_finished(), "nothing to read yet: the read waits");
        token.cancel();
        let err = reader.await.unwrap().expect_err("a cut connection fails its read");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        drop(b);
    }

    #[tokio::test]
    async fn writes_fail_after_the_cut() {
        let (a, _b) = tokio::io::duplex(64);
        let token = CancellationToken::new();
        let mut s = Severable::new(a, token.clone());
        s.write_all(b"ok").await.unwrap();
        token.cancel();
        assert_eq!(s.write_all(b"no").await.unwrap_err().kind(), io::ErrorKind::ConnectionAborted);
    }
}
