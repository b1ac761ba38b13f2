//! HTTPS: a TLS acceptor from a PEM certificate chain and key, offering HTTP/2 and HTTP/1.1 by
//! ALPN, for [`Bound::with_tls`](crate::server::Bound::with_tls).
//!
//! rustls on ring: no OpenSSL, no C library to build. TLS 1.2 and 1.3 with rustls's safe
//! defaults; no client certificates.

use std::{path::Path, sync::Arc};

use anyhow::Context as _;
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        crypto::ring,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
    },
};

/// The protocols offered by ALPN, preferred first: browsers speak HTTP/2 only over TLS, and
/// over HTTP/2 every tab of a site shares one connection.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The acceptor for a certificate chain (`cert`, PEM, the server's certificate first) and its
/// private key (`key`, PEM: PKCS#8, PKCS#1 or SEC1), with an error that names the file at fault.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("cannot read the certificate chain {}", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "no certificate in {} (a PEM file of CERTIFICATE blocks)",
        cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read the private key {}", key.display()))?;
    // ring rather than rustls's default (aws-lc-rs): no C library to build, on a project that
    // builds on small machines. What it lacks is the post-quantum key exchange (X25519MLKEM768),
    // which rustls marks by deprecating this provider; X25519 and the P-curves remain.
    #[expect(
        deprecated,
        reason = "ring has no post-quantum key exchange; see above"
    )]
    let provider = ring::default_provider();
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and the key do not make a TLS identity")?;
    config.alpn_protocols = ALPN.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}
