//! The process's TLS crypto provider. Two are compiled in (`ring`, which async-nats and
//! reqwest ask for, and `aws-lc-rs`, which object_store's S3 client brings), and rustls
//! then refuses to pick one on its own: a TLS connection built without naming one (async-nats
//! with a `tls://` URL) would panic. Every binary installs `ring` first, through
//! [`crate::runtime::build`].

/// Installs `ring` as the process's default provider; a second call (tests) does nothing.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_default_provider_is_installed_once_and_stays() {
        super::install_default_provider();
        super::install_default_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
