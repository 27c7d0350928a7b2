//! OAuth clients: registration rules shared by Dynamic Client Registration and the admin API,
//! lookup of a presented `client_id` (a registered client, or a Client ID Metadata Document
//! when it is a URL, see [`super::cimd`]), and client authentication at the token and
//! revocation endpoints.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use berth_auth::cimd::{ClientMetadata, is_document_client_id};
use berth_auth::oauth::{Secret, check_redirect_uri, generate_client_id, secret_hash};
use berth_core::TenantScope;
use berth_storage::PgConnection;
use berth_storage::oauth::{self, NewClient, OAuthClient};
use subtle::ConstantTimeEq;

use super::cimd::{ClientDocuments, DocumentRefused};
use super::errors::OAuthError;

/// Token endpoint authentication methods Berth supports.
pub(crate) const AUTH_METHODS: [&str; 3] = ["none", "client_secret_post", "client_secret_basic"];
/// Grant types a client may register.
pub(crate) const GRANT_TYPES: [&str; 2] = ["authorization_code", "refresh_token"];

/// A client presented in a request, as Berth knows it.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) client_id: String,
    pub(crate) name: String,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) auth_method: String,
    secret_hash: Option<Vec<u8>>,
    /// Whether refresh tokens are issued to it.
    pub(crate) refresh: bool,
    /// For a metadata document client, the facts the consent page shows about it.
    pub(crate) document: Option<DocumentFacts>,
}

/// What the consent page says about a metadata document client.
#[derive(Debug, Clone)]
pub(crate) struct DocumentFacts {
    /// The host publishing the document (the `client_id` URL's host).
    pub(crate) host: String,
    /// Every redirect URI is on loopback: any program on the member's machine could use this
    /// `client_id`, so the consent page warns.
    pub(crate) localhost_only: bool,
}

impl From<OAuthClient> for Client {
    fn from(c: OAuthClient) -> Self {
        Self {
            refresh: c.grant_types.iter().any(|g| g == "refresh_token"),
            client_id: c.client_id,
            name: c.name,
            redirect_uris: c.redirect_uris,
            auth_method: c.token_endpoint_auth_method,
            secret_hash: c.secret_hash,
            document: None,
        }
    }
}

impl From<&ClientMetadata> for Client {
    /// A metadata document client: public (`none`), never stored.
    fn from(m: &ClientMetadata) -> Self {
        let host = url::Url::parse(&m.client_id)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| m.client_id.clone());
        Self {
            client_id: m.client_id.clone(),
            name: m.client_name.clone(),
            redirect_uris: m.redirect_uris.clone(),
            auth_method: "none".to_owned(),
            secret_hash: None,
            refresh: m.refresh,
            document: Some(DocumentFacts { host, localhost_only: m.localhost_only() }),
        }
    }
}

impl Client {
    /// The registered redirect URI matching `requested` exactly, or the only one when none
    /// was requested.
    pub(crate) fn redirect_uri<'a>(&'a self, requested: Option<&'a str>) -> Option<&'a str> {
        match requested {
            Some(uri) => self.redirect_uris.iter().any(|r| r == uri).then_some(uri),
            None => match self.redirect_uris.as_slice() {
                [only] => Some(only.as_str()),
                _ => None,
            },
        }
    }
}

/// Why a presented `client_id` could not be looked up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FindError {
    /// A metadata document client that was refused; the message says why.
    #[error(transparent)]
    Document(#[from] DocumentRefused),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] berth_storage::Error),
}

/// Finds the client a request names: for a URL, the client its metadata document describes
/// (cached, else fetched now); otherwise a registered client of the tenant.
pub(crate) async fn find(
    conn: &mut PgConnection,
    scope: &TenantScope,
    documents: &ClientDocuments,
    client_id: &str,
    from: Option<IpAddr>,
) -> Result<Option<Client>, FindError> {
    if is_document_client_id(client_id) {
        let metadata = documents.client(client_id, from).await?;
        return Ok(Some(Client::from(metadata.as_ref())));
    }
    Ok(oauth::get_client(conn, scope, client_id).await?.map(Client::from))
}

/// Client metadata that passed the registration rules.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    pub(crate) name: String,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) auth_method: String,
    pub(crate) grant_types: Vec<String>,
}

/// Why registration metadata was refused: `(is the redirect URI at fault, message)`.
pub(crate) type Refusal = (bool, String);

impl Registration {
    /// Applies the rules: 1-20 redirect URIs (HTTPS, or HTTP on loopback; no fragments), a known
    /// authentication method, `authorization_code` with optional `refresh_token`, a name of at
    /// most 200 characters.
    pub(crate) fn check(
        name: Option<&str>,
        redirect_uris: Option<&[String]>,
        auth_method: Option<&str>,
        grant_types: Option<&[String]>,
    ) -> Result<Self, Refusal> {
        let redirect_uris = match redirect_uris {
            Some(uris) if !uris.is_empty() && uris.len() <= 20 => uris,
            _ => return Err((true, "redirect_uris must list 1 to 20 URIs".into())),
        };
        for uri in redirect_uris {
            check_redirect_uri(uri).map_err(|why| (true, format!("redirect URI {uri:?} {why}")))?;
        }
        // RFC 7591 §2: the default method is client_secret_basic.
        let auth_method = auth_method.unwrap_or("client_secret_basic");
        if !AUTH_METHODS.contains(&auth_method) {
            return Err((false, format!("token_endpoint_auth_method must be one of {}", AUTH_METHODS.join(", "))));
        }
        let grant_types: Vec<String> = match grant_types {
            None => GRANT_TYPES.iter().map(|g| (*g).to_owned()).collect(),
            Some(types) => types.to_vec(),
        };
        if let Some(bad) = grant_types.iter().find(|g| !GRANT_TYPES.contains(&g.as_str())) {
            return Err((false, format!("grant type {bad:?} is not supported (authorization_code, refresh_token)")));
        }
        if !grant_types.iter().any(|g| g == "authorization_code") {
            return Err((false, "grant_types must include authorization_code".into()));
        }
        let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or("Unnamed client");
        if name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err((false, "client_name must be at most 200 characters without control characters".into()));
        }
        Ok(Self {
            name: name.to_owned(),
            redirect_uris: redirect_uris.to_vec(),
            auth_method: auth_method.to_owned(),
            grant_types,
        })
    }

    /// Stores the client; returns it with its secret (shown once) for confidential clients.
    pub(crate) async fn register(
        &self,
        conn: &mut PgConnection,
        scope: &TenantScope,
        registered_by: &str,
    ) -> Result<(OAuthClient, Option<String>), berth_storage::Error> {
        let secret = (self.auth_method != "none").then(|| Secret::ClientSecret.generate());
        let hash = secret.as_deref().map(secret_hash);
        let client_id = generate_client_id();
        let new = NewClient {
            client_id: &client_id,
            name: &self.name,
            redirect_uris: &self.redirect_uris,
            token_endpoint_auth_method: &self.auth_method,
            secret_hash: hash.as_deref(),
            grant_types: &self.grant_types,
            registered_by,
        };
        let client = oauth::insert_client(conn, scope, &new).await?;
        Ok((client, secret))
    }
}

/// Client credentials presented to the token or revocation endpoint.
#[derive(Debug, Clone, Default)]
pub(crate) struct Presented {
    pub(crate) client_id: Option<String>,
    pub(crate) secret: Option<String>,
    /// Whether they came in an `Authorization: Basic` header.
    pub(crate) basic: bool,
}

fn form_decode(value: &str) -> Option<String> {
    url::form_urlencoded::parse(format!("v={value}").as_bytes()).next().map(|(_, v)| v.into_owned())
}

impl Presented {
    /// Reads `Authorization: Basic` (RFC 6749 §2.3.1) or the `client_id`/`client_secret` form
    /// fields; using both at once is an error.
    pub(crate) fn read(
        req: &HttpRequest,
        client_id: Option<&str>,
        client_secret: Option<&str>,
    ) -> Result<Self, OAuthError> {
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return Ok(Self {
                client_id: client_id.map(str::to_owned),
                secret: client_secret.map(str::to_owned),
                basic: false,
            });
        };
        let bad = || OAuthError::invalid_client("malformed Basic credentials", true);
        let text = value.to_str().map_err(|_| bad())?;
        let (scheme, encoded) = text.trim().split_once(' ').ok_or_else(bad)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(OAuthError::invalid_request("the token endpoint takes Basic client credentials only"));
        }
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
        let (id, secret) = (form_decode(id).ok_or_else(bad)?, form_decode(secret).ok_or_else(bad)?);
        if client_secret.is_some() || client_id.is_some_and(|c| c != id) {
            return Err(OAuthError::invalid_request("client credentials were sent twice"));
        }
        Ok(Self { client_id: Some(id), secret: Some(secret), basic: true })
    }

    /// Finds and authenticates the client with its registered method (metadata document
    /// clients are public: they present no secret).
    pub(crate) async fn authenticate(
        &self,
        conn: &mut PgConnection,
        scope: &TenantScope,
        documents: &ClientDocuments,
        from: Option<IpAddr>,
    ) -> Result<Client, OAuthError> {
        let unknown = || OAuthError::invalid_client("unknown client or bad client credentials", self.basic);
        let client_id =
            self.client_id.as_deref().ok_or_else(|| OAuthError::invalid_client("client_id is required", false))?;
        let client = match find(conn, scope, documents, client_id, from).await {
            Ok(found) => found.ok_or_else(unknown)?,
            Err(FindError::Document(e @ DocumentRefused::TooMany(wait))) => {
                return Err(OAuthError::too_many(wait.as_secs().saturating_add(1), e.to_string()));
            }
            Err(FindError::Document(e)) => return Err(OAuthError::invalid_client(e.to_string(), self.basic)),
            Err(FindError::Storage(e)) => return Err(e.into()),
        };
        match (client.auth_method.as_str(), &self.secret, &client.secret_hash) {
            ("none", None, _) => Ok(client),
            ("client_secret_basic" | "client_secret_post", Some(secret), Some(hash)) => {
                let method_matches = (client.auth_method == "client_secret_basic") == self.basic;
                let secret_matches: bool = secret_hash(secret).ct_eq(hash).into();
                if secret_matches && method_matches { Ok(client) } else { Err(unknown()) }
            }
            _ => Err(unknown()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uris(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn registration_defaults_follow_rfc_7591() {
        let r = Registration::check(None, Some(&uris(&["http://127.0.0.1:9/cb"])), None, None).unwrap();
        assert_eq!(r.auth_method, "client_secret_basic");
        assert_eq!(r.grant_types, vec!["authorization_code", "refresh_token"]);
        assert_eq!(r.name, "Unnamed client");
    }

    #[test]
    fn registration_refuses_bad_redirects_methods_and_grants() {
        let ok = uris(&["https://app.example.com/cb"]);
        assert!(Registration::check(None, None, None, None).unwrap_err().0);
        assert!(Registration::check(None, Some(&uris(&["http://evil.example/cb"])), None, None).unwrap_err().0);
        assert!(!Registration::check(None, Some(&ok), Some("private_key_jwt"), None).unwrap_err().0);
        assert!(Registration::check(None, Some(&ok), None, Some(&uris(&["implicit"]))).is_err());
        assert!(Registration::check(None, Some(&ok), None, Some(&uris(&["refresh_token"]))).is_err());
        assert!(Registration::check(Some("x\u{7}"), Some(&ok), None, None).is_err());
    }

    #[test]
    fn redirect_uris_match_exactly() {
        let client = Client {
            client_id: "bc_x".into(),
            name: "x".into(),
            redirect_uris: uris(&["http://127.0.0.1:3000/callback"]),
            auth_method: "none".into(),
            secret_hash: None,
            refresh: true,
            document: None,
        };
        assert_eq!(client.redirect_uri(Some("http://127.0.0.1:3000/callback")), Some("http://127.0.0.1:3000/callback"));
        assert_eq!(client.redirect_uri(None), Some("http://127.0.0.1:3000/callback"));
        for near in
            ["http://127.0.0.1:3000/callback/", "http://127.0.0.1:3001/callback", "http://localhost:3000/callback"]
        {
            assert_eq!(client.redirect_uri(Some(near)), None, "{near}");
        }
    }
}
