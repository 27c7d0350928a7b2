//! JWT access tokens: Berth's own (RFC 9068 profile, Ed25519 keys per tenant) and those of an
//! external OpenID Connect issuer a tenant trusts.
//!
//! Verification pins the algorithm to the key: a key's type (and its JWK `alg`, where given)
//! decides the one algorithm it verifies, so `alg: none`, a symmetric `HS256` token "signed"
//! with a public key, or an RSA key offered for an EdDSA header are all refused before any
//! signature check. Symmetric (`oct`) keys are never accepted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::TokenError;

/// The `typ` header of Berth's access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410); the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/// A newly generated Ed25519 signing key.
#[derive(Clone)]
pub struct GeneratedSigningKey {
    /// Key id, published in the JWKS and in each token's header.
    pub kid: String,
    /// The private key as PKCS#8 DER.
    pub pkcs8_der: Vec<u8>,
    /// The public key as a JWK (`kty` OKP, `crv` Ed25519, `alg` EdDSA).
    pub public_jwk: Value,
}

impl std::fmt::Debug for GeneratedSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedSigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// Generates an Ed25519 key pair with a random key id.
pub fn generate_signing_key() -> GeneratedSigningKey {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = signing.verifying_key().to_bytes();
    let mut kid_bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut kid_bytes);
    let kid = URL_SAFE_NO_PAD.encode(kid_bytes);
    let mut pkcs8_der = ED25519_PKCS8_PREFIX.to_vec();
    pkcs8_der.extend_from_slice(&seed);
    let public_jwk = json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(public),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    });
    GeneratedSigningKey { kid, pkcs8_der, public_jwk }
}

/// The claims of a Berth access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The tenant's issuer, `{public_url}/t/{tenant}`.
    pub iss: String,
    /// The member's id.
    pub sub: String,
    /// The one server URL the token is for (RFC 8707).
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issue time.
    pub iat: i64,
    /// Not before (equal to `iat`).
    pub nbf: i64,
    /// Unique token id.
    pub jti: String,
    /// The OAuth client.
    pub client_id: String,
    /// Space-delimited granted scopes.
    pub scope: String,
    /// The grant (token family) the token belongs to; revoking the grant revokes the token.
    pub gid: String,
}

/// Signs `claims` with an Ed25519 key given as PKCS#8 DER.
pub fn sign_access_token(claims: &AccessClaims, kid: &str, pkcs8_der: &[u8]) -> Result<String, TokenError> {
    crate::crypto::install();
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(pkcs8_der)).map_err(|_| TokenError::Signing)
}

/// A public key and the single algorithm it verifies.
#[derive(Clone)]
pub struct VerificationKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

fn pinned_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let declared = jwk.common.key_algorithm;
    match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            matches!(declared, None | Some(KeyAlgorithm::EdDSA)).then_some(Algorithm::EdDSA)
        }
        AlgorithmParameters::RSA(_) => match declared {
            None | Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
            Some(KeyAlgorithm::RS384) => Some(Algorithm::RS384),
            Some(KeyAlgorithm::RS512) => Some(Algorithm::RS512),
            Some(KeyAlgorithm::PS256) => Some(Algorithm::PS256),
            Some(KeyAlgorithm::PS384) => Some(Algorithm::PS384),
            Some(KeyAlgorithm::PS512) => Some(Algorithm::PS512),
            Some(_) => None,
        },
        AlgorithmParameters::EllipticCurve(p) => match (&p.curve, declared) {
            (EllipticCurve::P256, None | Some(KeyAlgorithm::ES256)) => Some(Algorithm::ES256),
            (EllipticCurve::P384, None | Some(KeyAlgorithm::ES384)) => Some(Algorithm::ES384),
            _ => None,
        },
        // Symmetric keys would let anyone holding the JWKS mint tokens.
        _ => None,
    }
}

impl VerificationKey {
    /// Reads one JWK; `None` for keys that are not signature keys Berth accepts.
    pub fn from_jwk(value: &Value) -> Option<Self> {
        let jwk: Jwk = serde_json::from_value(value.clone()).ok()?;
        if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature) {
            return None;
        }
        let alg = pinned_algorithm(&jwk)?;
        let key = DecodingKey::from_jwk(&jwk).ok()?;
        Some(Self { kid: jwk.common.key_id.clone(), alg, key })
    }

    /// The key id, if the JWK had one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// The keys of one issuer.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

impl KeySet {
    /// Builds a set from public JWKs, skipping the unusable ones.
    pub fn from_jwks<'a>(jwks: impl IntoIterator<Item = &'a Value>) -> Self {
        Self { keys: jwks.into_iter().filter_map(VerificationKey::from_jwk).collect() }
    }

    /// Reads a JWKS document (`{"keys": [...]}`).
    pub fn from_document(document: &Value) -> Self {
        Self::from_jwks(document.get("keys").and_then(Value::as_array).into_iter().flatten())
    }

    /// Whether a key with this id is in the set.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid() == Some(kid))
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn select(&self, kid: Option<&str>) -> Option<&VerificationKey> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

/// What a token must say to be accepted.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// Exact `iss`.
    pub issuer: &'a str,
    /// An `aud` value the token must contain (`None` skips the audience check, for the
    /// revocation endpoint, which accepts a tenant's tokens for any of its servers).
    pub audience: Option<&'a str>,
    /// Required `typ` header (`at+jwt` for Berth's own tokens), compared case-insensitively.
    pub typ: Option<&'a str>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

/// The parts of a header used to pick a key, read without verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedHeader {
    /// `kid`, if present.
    pub kid: Option<String>,
}

/// Reads the `kid` of a JWT without verifying anything (to choose where to look for keys).
pub fn peek_header(token: &str) -> Result<UnverifiedHeader, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    Ok(UnverifiedHeader { kid: header.kid })
}

/// Reads the `iss` claim without verifying anything (to choose which issuer's keys apply).
pub fn peek_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Iss>(token).ok().and_then(|c| c.iss)
}

/// Whether a string has the shape of a compact JWS (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = 0;
    for part in token.split('.') {
        parts += 1;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return false;
        }
    }
    parts == 3
}

/// Verifies signature, algorithm, `typ`, `iss`, `aud`, `exp` and `nbf`, and returns the claims.
pub fn verify<T: DeserializeOwned>(token: &str, keys: &KeySet, expected: &Expected<'_>) -> Result<T, TokenError> {
    crate::crypto::install();
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.crit.is_some() {
        return Err(TokenError::Malformed);
    }
    if let Some(typ) = expected.typ {
        let actual = header.typ.as_deref().unwrap_or("");
        let actual = actual.strip_prefix("application/").unwrap_or(actual);
        if !actual.eq_ignore_ascii_case(typ) {
            return Err(TokenError::Type);
        }
    }
    let key = keys.select(header.kid.as_deref()).ok_or(TokenError::UnknownKey)?;
    if header.alg != key.alg {
        return Err(TokenError::Algorithm);
    }
    let mut validation = Validation::new(key.alg);
    validation.leeway = expected.leeway_secs;
    validation.validate_nbf = true;
    validation.set_issuer(&[expected.issuer]);
    match expected.audience {
        Some(audience) => validation.set_audience(&[audience]),
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<T>(token, &key.key, &validation).map(|data| data.claims).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::ExpiredSignature => TokenError::Expired,
            K::ImmatureSignature => TokenError::NotYetValid,
            K::InvalidIssuer => TokenError::Issuer,
            K::InvalidAudience => TokenError::Audience,
            K::InvalidAlgorithm | K::MissingAlgorithm | K::UnsupportedAlgorithm => TokenError::Algorithm,
            K::InvalidSignature => TokenError::Signature,
            K::MissingRequiredClaim(_) | K::InvalidClaimFormat(_) | K::Json(_) => TokenError::Claims,
            _ => TokenError::Malformed,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    const ISS: &str = "http://127.0.0.1:8080/t/acme";
    const AUD: &str = "http://127.0.0.1:8080/t/acme/files/mcp";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn claims(exp_in: i64) -> AccessClaims {
        let now = now();
        AccessClaims {
            iss: ISS.into(),
            sub: "member-1".into(),
            aud: AUD.into(),
            exp: now + exp_in,
            iat: now,
            nbf: now,
            jti: "jti-1".into(),
            client_id: "bc_client".into(),
            scope: "mcp".into(),
            gid: "grant-1".into(),
        }
    }

    fn expected() -> Expected<'static> {
        Expected { issuer: ISS, audience: Some(AUD), typ: Some(ACCESS_TOKEN_TYPE), leeway_secs: 0 }
    }

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    #[test]
    fn a_signed_token_verifies_with_its_published_key() {
        let key = generate_signing_key();
        let token = sign_access_token(&claims(600), &key.kid, &key.pkcs8_der).unwrap();
        assert!(looks_like_jwt(&token));
        assert_eq!(peek_header(&token).unwrap().kid.as_deref(), Some(key.kid.as_str()));
        assert_eq!(peek_issuer(&token).as_deref(), Some(ISS));
        let keys = KeySet::from_jwks([&key.public_jwk]);
        let verified: AccessClaims = verify(&token, &keys, &expected()).unwrap();
        assert_eq!(verified, claims(600).clone_with_times(&verified));
    }

    impl AccessClaims {
        fn clone_with_times(mut self, other: &AccessClaims) -> Self {
            (self.exp, self.iat, self.nbf) = (other.exp, other.iat, other.nbf);
            self
        }
    }

    #[test]
    fn wrong_audience_issuer_expiry_type_or_key_are_refused() {
        let key = generate_signing_key();
        let other = generate_signing_key();
        let keys = KeySet::from_jwks([&key.public_jwk]);
        let sign = |c: &AccessClaims| sign_access_token(c, &key.kid, &key.pkcs8_der).unwrap();
        let mut c = claims(600);
        c.aud = "http://127.0.0.1:8080/t/acme/other/mcp".into();
        assert_eq!(verify::<AccessClaims>(&sign(&c), &keys, &expected()), Err(TokenError::Audience));
        let mut c = claims(600);
        c.iss = "http://127.0.0.1:8080/t/globex".into();
        assert_eq!(verify::<AccessClaims>(&sign(&c), &keys, &expected()), Err(TokenError::Issuer));
        assert_eq!(verify::<AccessClaims>(&sign(&claims(-5)), &keys, &expected()), Err(TokenError::Expired));
        let foreign = sign_access_token(&claims(600), &other.kid, &other.pkcs8_der).unwrap();
        assert_eq!(verify::<AccessClaims>(&foreign, &keys, &expected()), Err(TokenError::UnknownKey));
        // The other key under our kid: the signature does not match.
        let forged = sign_access_token(&claims(600), &key.kid, &other.pkcs8_der).unwrap();
        assert_eq!(verify::<AccessClaims>(&forged, &keys, &expected()), Err(TokenError::Signature));
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let plain_jwt = jsonwebtoken::encode(&header, &claims(600), &EncodingKey::from_ed_der(&key.pkcs8_der)).unwrap();
        assert_eq!(verify::<AccessClaims>(&plain_jwt, &keys, &expected()), Err(TokenError::Type));
    }

    #[test]
    fn alg_none_and_hs256_signed_with_the_public_key_are_refused() {
        let key = generate_signing_key();
        let keys = KeySet::from_jwks([&key.public_jwk]);
        let header = json!({"alg": "none", "typ": "at+jwt", "kid": key.kid});
        let none = format!("{}.{}.", b64(&header), b64(&serde_json::to_value(claims(600)).unwrap()));
        assert!(verify::<AccessClaims>(&none, &keys, &expected()).is_err());
        let none_sig = format!("{none}AAAA");
        assert!(verify::<AccessClaims>(&none_sig, &keys, &expected()).is_err());
        // HS256 keyed with the published public key bytes (the classic confusion attack).
        let public = URL_SAFE_NO_PAD.decode(key.public_jwk["x"].as_str().unwrap()).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        header.kid = Some(key.kid.clone());
        let hs = jsonwebtoken::encode(&header, &claims(600), &EncodingKey::from_secret(&public)).unwrap();
        assert_eq!(verify::<AccessClaims>(&hs, &keys, &expected()), Err(TokenError::Algorithm));
    }

    #[test]
    fn symmetric_and_mismatched_jwks_are_not_usable_keys() {
        assert!(VerificationKey::from_jwk(&json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h"})).is_none());
        let ed = generate_signing_key().public_jwk;
        let mut as_rs = ed.clone();
        as_rs["alg"] = json!("RS256");
        assert!(VerificationKey::from_jwk(&as_rs).is_none(), "an Ed25519 key declared RS256 is refused");
        let mut enc = ed.clone();
        enc["use"] = json!("enc");
        assert!(VerificationKey::from_jwk(&enc).is_none());
        let set = KeySet::from_document(&json!({"keys": [ed, {"kty": "oct", "k": "eA"}]}));
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn rs256_tokens_of_an_external_issuer_verify_through_ring() {
        let pem = include_str!("../../../tests/fixtures/rsa-test-key.pem");
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        let mut jwk =
            serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap()).unwrap();
        jwk["kid"] = json!("rsa-1");
        let keys = KeySet::from_jwks([&jwk]);
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa-1".into());
        let token = jsonwebtoken::encode(&header, &claims(600), &key).unwrap();
        let external = Expected { typ: None, ..expected() };
        let verified: Map<String, Value> = verify(&token, &keys, &external).unwrap();
        assert_eq!(verified["sub"], "member-1");
        // Change a signature character away from the end: the last one carries padding bits, and
        // setting those makes the encoding malformed rather than the signature wrong.
        let at = token.len() - 10;
        let swapped = if token.as_bytes()[at] == b'A' { "B" } else { "A" };
        let tampered = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
        assert_eq!(verify::<Map<String, Value>>(&tampered, &keys, &external), Err(TokenError::Signature));
        // The same kid offered with another algorithm is refused before any signature check.
        let mut ps = Header::new(Algorithm::PS256);
        ps.kid = Some("rsa-1".into());
        let ps_token = jsonwebtoken::encode(&ps, &claims(600), &key).unwrap();
        assert_eq!(verify::<Map<String, Value>>(&ps_token, &keys, &external), Err(TokenError::Algorithm));
    }

    #[test]
    fn jwt_shapes_are_recognised() {
        assert!(looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("berth_abcdefghijkl_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert!(!looks_like_jwt("a.b.c d"));
    }
}
