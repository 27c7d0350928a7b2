//! The login, consent and error pages: server-rendered HTML without scripts.
//!
//! Every value is HTML-escaped. Every page is sent with `no-store`, anti-framing headers
//! (`X-Frame-Options: DENY`, CSP `frame-ancestors 'none'`), a CSP that forbids scripts and
//! `Referrer-Policy: no-referrer`, so the authorization request's query never leaks onwards.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, HttpResponseBuilder};

/// Escapes text for HTML element content and double-quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Adds the headers every page carries.
pub(crate) fn secure(mut builder: HttpResponseBuilder) -> HttpResponseBuilder {
    builder
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    builder
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}}\
         label{{display:block;margin:.8rem 0 .2rem}}input[type=email],input[type=password]{{width:100%;padding:.4rem}}\
         button{{padding:.5rem 1.2rem;margin:1rem .5rem 0 0}}.host{{font-size:1.3rem;font-weight:bold}}\
         .warn{{background:#fff4d6;padding:.5rem}}.error{{color:#a00}}code{{word-break:break-all}}\
         </style></head><body>{body}</body></html>\n",
        title = escape(title)
    )
}

/// A page that ends the flow without redirecting (bad client, bad redirect URI, CSRF...).
pub(crate) fn error(status: StatusCode, title: &str, detail: &str) -> HttpResponse {
    let body = format!("<h1>{}</h1><p class=\"error\">{}</p>", escape(title), escape(detail));
    secure(HttpResponse::build(status)).body(layout(title, &body))
}

/// The login form.
pub(crate) struct Login<'a> {
    pub(crate) tenant_name: &'a str,
    pub(crate) action: &'a str,
    pub(crate) csrf: &'a str,
    /// The authorization request's query string, replayed after login.
    pub(crate) request: &'a str,
    pub(crate) client_name: &'a str,
    pub(crate) email: &'a str,
    pub(crate) failed: bool,
}

pub(crate) fn login(page: &Login<'_>) -> String {
    let failure = if page.failed { "<p class=\"error\">The email address or password is not correct.</p>" } else { "" };
    let body = format!(
        "<h1>Sign in to {tenant}</h1>\
         <p><strong>{client}</strong> wants to use an MCP server of {tenant}. Sign in to continue.</p>{failure}\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"request\" value=\"{request}\">\
         <label for=\"email\">Email</label><input id=\"email\" type=\"email\" name=\"email\" value=\"{email}\" required autofocus>\
         <label for=\"password\">Password</label><input id=\"password\" type=\"password\" name=\"password\" required>\
         <button type=\"submit\">Sign in</button></form>",
        tenant = escape(page.tenant_name),
        client = escape(page.client_name),
        action = escape(page.action),
        csrf = escape(page.csrf),
        request = escape(page.request),
        email = escape(page.email),
    );
    layout("Sign in", &body)
}

/// The consent form.
pub(crate) struct Consent<'a> {
    pub(crate) tenant_name: &'a str,
    pub(crate) action: &'a str,
    pub(crate) csrf: &'a str,
    pub(crate) member: &'a str,
    pub(crate) client_name: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) redirect_uri: &'a str,
    pub(crate) redirect_host: &'a str,
    pub(crate) loopback: bool,
    /// For a metadata document client, the host publishing its document.
    pub(crate) document_host: Option<&'a str>,
    /// A metadata document client whose redirect URIs are all on loopback.
    pub(crate) localhost_only: bool,
    pub(crate) resource: &'a str,
    pub(crate) scope: &'a str,
    /// Hidden fields replaying the authorization request.
    pub(crate) fields: &'a [(&'static str, &'a str)],
}

pub(crate) fn consent(page: &Consent<'_>) -> String {
    let hidden: String = page
        .fields
        .iter()
        .map(|(name, value)| format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", escape(value)))
        .collect();
    let publisher = match page.document_host {
        Some(host) => {
            format!("<p>This client describes itself in a document published by <strong>{}</strong>.</p>", escape(host))
        }
        None => String::new(),
    };
    let warning = match (page.localhost_only, page.document_host) {
        (true, Some(host)) => format!(
            "<p class=\"warn\">This client only redirects to this computer (a local address), so nothing proves \
             it is the application published by <strong>{}</strong>: any program on this computer could use that \
             name. Only continue if you started this from an application you trust.</p>",
            escape(host)
        ),
        _ if page.loopback => "<p class=\"warn\">This client receives the authorization on this computer (a local \
             address). Only continue if you started this from an application you trust.</p>"
            .to_owned(),
        _ => String::new(),
    };
    let body = format!(
        "<h1>Allow access?</h1>\
         <p>Signed in to {tenant} as <strong>{member}</strong>.</p>\
         <p><strong>{client}</strong> <small>(client id <code>{client_id}</code>)</small> asks to call the MCP server\
         <br><code>{resource}</code><br>with scope <code>{scope}</code> on your behalf.</p>{publisher}\
         <p>If you allow it, your browser will be sent to</p><p class=\"host\">{host}</p>\
         <p><small><code>{redirect}</code></small></p>{warning}\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{hidden}\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        tenant = escape(page.tenant_name),
        member = escape(page.member),
        client = escape(page.client_name),
        client_id = escape(page.client_id),
        resource = escape(page.resource),
        scope = escape(page.scope),
        host = escape(page.redirect_host),
        redirect = escape(page.redirect_uri),
        action = escape(page.action),
        csrf = escape(page.csrf),
    );
    layout("Allow access?", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_everywhere() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        let html = consent(&Consent {
            tenant_name: "<Acme>",
            action: "/t/acme/oauth/authorize",
            csrf: "c",
            member: "ada@example.com",
            client_name: "<script>alert(1)</script>",
            client_id: "bc_x",
            redirect_uri: "https://evil.example/cb?\"><script>",
            redirect_host: "evil.example",
            loopback: false,
            document_host: Some("<b>evil.example"),
            localhost_only: true,
            resource: "http://127.0.0.1/t/acme/x/mcp",
            scope: "mcp",
            fields: &[("state", "\"><script>")],
        });
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("evil.example"));
        assert!(!html.contains("<b>"), "{html}");
    }

    fn consent_for(loopback: bool, document_host: Option<&str>, localhost_only: bool) -> String {
        consent(&Consent {
            tenant_name: "Acme",
            action: "/t/acme/oauth/authorize",
            csrf: "c",
            member: "ada@example.com",
            client_name: "App",
            client_id: "https://app.example.com/client.json",
            redirect_uri: "http://127.0.0.1:3000/cb",
            redirect_host: "127.0.0.1:3000",
            loopback,
            document_host,
            localhost_only,
            resource: "http://127.0.0.1/t/acme/x/mcp",
            scope: "mcp",
            fields: &[],
        })
    }

    #[test]
    fn document_clients_name_their_publisher_and_localhost_only_ones_are_flagged() {
        let html = consent_for(true, Some("app.example.com"), true);
        assert!(html.contains("published by <strong>app.example.com</strong>"), "{html}");
        assert!(html.contains("nothing proves"), "{html}");
        let html = consent_for(true, Some("app.example.com"), false);
        assert!(!html.contains("nothing proves") && html.contains("a local"), "{html}");
        let html = consent_for(false, None, false);
        assert!(!html.contains("published by") && !html.contains("class=\"warn\""), "{html}");
    }
}
