//! `[admin]` over HTTPS: an axum listener whose connections are TLS streams. Handshakes run
//! in their own tasks (bounded by a timeout), so one slow or silent client never holds up the
//! others' accepts; finished streams reach axum through a channel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Time a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Failed handshakes are logged at most once per [`headwall_audit::LogLimit::EVERY_SECS`].
static HANDSHAKE_FAILED: headwall_audit::LogLimit = headwall_audit::LogLimit::new();

/// Connections whose handshake finished, waiting for axum.
const READY: usize = 64;

/// The TLS side of the admin listener.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `listener` and completes handshakes with `config` until this is dropped.
    pub(crate) fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (sender, ready) = mpsc::channel(READY);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = sender.closed() => return,
                    accepted = listener.accept() => accepted,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::debug!(%error, "admin accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, sender) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, peer)).await;
                        }
                        // Not TLS (a plain-HTTP scraper, say), a bad handshake, or too slow:
                        // closed, and said once in a while so a misconfigured client is seen.
                        Ok(Err(error)) => HANDSHAKE_FAILED.run(|| {
                            tracing::warn!(
                                client.addr = %peer,
                                %error,
                                "admin TLS handshake failed (plain HTTP to the HTTPS admin \
                                 listener?); closed"
                            );
                        }),
                        Err(_) => HANDSHAKE_FAILED.run(|| {
                            tracing::warn!(client.addr = %peer, "admin TLS handshake timed out; closed");
                        }),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The acceptor task ends only when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
