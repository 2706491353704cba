//! tonic over turmoil's simulated TCP: the dialer the replicas' Raft network and proposer use,
//! and the accept stream their gRPC server reads.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use hyper_util::rt::TokioIo;
use raftmq_raft::network::{Dialer, peer_endpoint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::Uri;
use tonic::transport::server::Connected;
use turmoil::net::{TcpListener, TcpStream};

pub const PORT: u16 = 7000;

/// Connection attempts so far (all hosts), for the trace.
pub static CONNECTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The production endpoint settings (keepalive, timeouts), connected through turmoil.
pub fn dialer() -> Dialer {
    Dialer::custom(|addr| {
        Ok(peer_endpoint(addr)?.connect_with_connector_lazy(tower::service_fn(|uri: Uri| async move {
            CONNECTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let target = format!("{}:{}", uri.host().unwrap_or_default(), uri.port_u16().unwrap_or(PORT));
            TcpStream::connect(target).await.map(TokioIo::new)
        })))
    })
}

pub async fn listen() -> io::Result<TcpListener> {
    TcpListener::bind((IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT)).await
}

/// Accepted connections, for `Server::serve_with_incoming`.
pub fn incoming(listener: TcpListener) -> impl Stream<Item = io::Result<Conn>> {
    futures::stream::unfold(listener, |l| async move {
        let conn = l.accept().await.map(|(s, _)| Conn(s));
        Some((conn, l))
    })
}

pub struct Conn(TcpStream);

impl Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
