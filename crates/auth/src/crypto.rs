//! The `jsonwebtoken` crypto provider: RustCrypto for everything but RSA verification, which
//! `ring` does about ten times faster (the RustCrypto `rsa` crate takes ~180 µs per RS256
//! check here, above B7's 70 µs target; `ring` is already built for rustls).
//!
//! `ring` accepts RSA keys of 2048 bits or more only, which is also the floor Berth wants.

use std::sync::{Once, OnceLock};

use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier};
use jsonwebtoken::signature::{Error as SignatureError, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use ring::signature::{self as ring_signature, RsaParameters, RsaPublicKeyComponents, UnparsedPublicKey};

/// An RSA public key, as the JWK (components) or as PKCS#1 DER.
enum RsaKey {
    Components { n: Vec<u8>, e: Vec<u8> },
    Der(Vec<u8>),
}

struct RingRsa {
    algorithm: Algorithm,
    params: &'static RsaParameters,
    key: RsaKey,
}

impl Verifier<Vec<u8>> for RingRsa {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), SignatureError> {
        let checked = match &self.key {
            RsaKey::Components { n, e } => RsaPublicKeyComponents { n, e }.verify(self.params, message, signature),
            RsaKey::Der(der) => UnparsedPublicKey::new(self.params, der).verify(message, signature),
        };
        checked.map_err(|_| SignatureError::new())
    }
}

impl JwtVerifier for RingRsa {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn rust_crypto() -> &'static CryptoProvider {
    &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    let params: &'static RsaParameters = match algorithm {
        Algorithm::RS256 => &ring_signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &ring_signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &ring_signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &ring_signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &ring_signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &ring_signature::RSA_PSS_2048_8192_SHA512,
        _ => return (rust_crypto().verifier_factory)(algorithm, key),
    };
    if key.family() != jsonwebtoken::AlgorithmFamily::Rsa {
        return Err(jsonwebtoken::errors::ErrorKind::InvalidAlgorithm.into());
    }
    let key = match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => RsaKey::Components { n: n.clone(), e: e.clone() },
        DecodingKeyKind::SecretOrDer(der) => RsaKey::Der(der.clone()),
    };
    Ok(Box::new(RingRsa { algorithm: *algorithm, params, key }))
}

/// Makes this provider the process default (once; a provider installed earlier stays).
pub(crate) fn install() {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let provider =
            PROVIDER.get_or_init(|| CryptoProvider { verifier_factory: new_verifier, ..rust_crypto().clone() });
        let _ = provider.install_default();
    });
}
