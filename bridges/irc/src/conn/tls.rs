//! TLS: one rustls client config for the whole process, and the stream type
//! a connection reads and writes.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;

use super::{TlsClientCert, TlsRoots};

/// The engine's TLS state. The trust store is read once (lazily: a process
/// that never opens a TLS connection never reads it) and the resulting
/// `ClientConfig` is shared by every connection; only a connection with its
/// own client certificate gets its own config, built on the same store.
#[derive(Debug)]
pub(crate) struct TlsContext {
    roots: TlsRoots,
    shared: OnceLock<Result<Shared, String>>,
}

/// The trust store, and the config every connection without a client
/// certificate uses.
#[derive(Debug)]
struct Shared {
    roots: Arc<RootCertStore>,
    config: Arc<ClientConfig>,
}

impl TlsContext {
    pub(crate) fn new(roots: TlsRoots) -> Self {
        Self {
            roots,
            shared: OnceLock::new(),
        }
    }

    fn init(&self) -> Result<&Shared, String> {
        self.shared
            .get_or_init(|| {
                let roots = match &self.roots {
                    TlsRoots::Custom(store) => Arc::clone(store),
                    TlsRoots::Native => Arc::new(native_roots()?),
                };
                let config = ClientConfig::builder()
                    .with_root_certificates(Arc::clone(&roots))
                    .with_no_client_auth();
                Ok(Shared {
                    roots,
                    config: Arc::new(config),
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The shared config, or (with a client certificate) a config of its own.
    pub(crate) fn client_config(
        &self,
        cert: Option<&TlsClientCert>,
    ) -> Result<Arc<ClientConfig>, String> {
        let shared = self.init()?;
        let Some(cert) = cert else {
            return Ok(Arc::clone(&shared.config));
        };
        let config = ClientConfig::builder()
            .with_root_certificates(Arc::clone(&shared.roots))
            .with_client_auth_cert(cert.chain.clone(), cert.key.clone_key())
            .map_err(|e| format!("TLS client certificate: {e}"))?;
        Ok(Arc::new(config))
    }
}

fn native_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(format!(
            "no usable CA certificate in the system store ({})",
            errors.join("; ")
        ));
    }
    tracing::debug!(certificates = added, "read the system CA store");
    Ok(store)
}

pub(crate) async fn handshake(
    config: Arc<ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> io::Result<Transport> {
    let name = ServerName::try_from(host.to_owned()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TLS server name {host:?}: {e}"),
        )
    })?;
    let stream = TlsConnector::from(config).connect(name, tcp).await?;
    Ok(Transport::Tls(Box::new(stream)))
}

/// A connection's byte stream. The TLS state is boxed: rustls keeps its
/// buffers there, and a plain connection should not pay for them.
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shared_config() {
        let tls = TlsContext::new(TlsRoots::Custom(Arc::new(RootCertStore::empty())));
        let a = tls.client_config(None).unwrap();
        let b = tls.client_config(None).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
