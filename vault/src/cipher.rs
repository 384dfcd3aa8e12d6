//! One data key and the authenticated encryption of one text under it: XChaCha20-Poly1305
//! (192-bit random nonces, so a key seals any number of values without a counter).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use zeroize::Zeroizing;

/// Bytes of a data key.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// A user's data key. Its bytes are wiped when dropped and never printed.
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(bytes.as_mut());
        DataKey(bytes)
    }

    /// A key read back; `None` unless exactly [`KEY_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(DataKey(Zeroizing::new(array)))
    }

    pub fn bytes(&self) -> &[u8] {
        self.0.as_ref()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&(*self.0).into())
    }

    /// `plaintext` sealed: a random nonce followed by the ciphertext and its tag. `aad` (what
    /// the value is and whose) is authenticated, not stored: a sealed value moved to another
    /// field, event or owner does not open.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            // Only a plaintext beyond 256 GiB fails; a value in an event is far below.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The plaintext of what [`DataKey::seal`] made with this key and `aad`; `None` if it
    /// was made otherwise or changed since.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(****)")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_and_aad_only() {
        let key = DataKey::generate();
        let sealed = key.seal(b"MessageSent/body", b"hello");
        assert_eq!(key.open(b"MessageSent/body", &sealed).unwrap(), b"hello");
        assert!(key.open(b"MessageEdited/body", &sealed).is_none());
        assert!(
            DataKey::generate()
                .open(b"MessageSent/body", &sealed)
                .is_none()
        );
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(key.open(b"MessageSent/body", &flipped).is_none());
        assert!(key.open(b"MessageSent/body", &sealed[..10]).is_none());
    }

    #[test]
    fn two_seals_of_one_value_differ() {
        let key = DataKey::generate();
        assert_ne!(key.seal(b"a", b"same"), key.seal(b"a", b"same"));
    }

    #[test]
    fn a_key_reads_back_from_its_bytes_only_at_its_length() {
        let key = DataKey::generate();
        let back = DataKey::from_bytes(key.bytes()).unwrap();
        assert_eq!(back.open(b"x", &key.seal(b"x", b"v")).unwrap(), b"v");
        assert!(DataKey::from_bytes(&[0; 31]).is_none());
        assert_eq!(format!("{key:?}"), "DataKey(****)");
    }
}
