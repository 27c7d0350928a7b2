//! A scripted browser for the OAuth login and consent pages: no redirects followed, cookies kept,
//! hidden form fields read back. Shared by the API tests and the external-client tests.

use std::collections::BTreeMap;

/// A browser: follows nothing by itself, keeps cookies.
pub struct Browser {
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Page {
    pub fn location(&self) -> String {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no Location ({}): {}", self.status, self.text))
            .to_owned()
    }

    pub fn hidden(&self) -> Vec<(String, String)> {
        hidden_fields(&self.text)
    }

    /// The `action` of the page's form.
    pub fn form_action(&self) -> String {
        let tag = self.text.split("<form").nth(1).and_then(|rest| rest.split('>').next()).expect("a form");
        attribute(tag, "action").expect("an action")
    }
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = tag.get(start..)?.find('"')? + start;
    Some(unescape(tag.get(start..end)?))
}

/// The `(name, value)` of every hidden input of a page.
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input")
        .skip(1)
        .filter_map(|rest| {
            let tag = rest.split('>').next()?;
            (tag.contains("type=\"hidden\"")).then(|| Some((attribute(tag, "name")?, attribute(tag, "value")?)))?
        })
        .collect()
}

pub fn form_body(pairs: &[(String, String)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

pub fn query(url: &str) -> BTreeMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

impl Browser {
    pub fn new() -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { client, cookies: BTreeMap::new() }
    }

    pub async fn send(&mut self, mut request: reqwest::RequestBuilder) -> Page {
        if !self.cookies.is_empty() {
            let header: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request = request.header("cookie", header.join("; "));
        }
        let response = request.send().await.unwrap();
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        Page { status, headers, text: response.text().await.unwrap() }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let request = self.client.get(url);
        self.send(request).await
    }

    pub async fn post(&mut self, url: &str, pairs: &[(String, String)]) -> Page {
        let request =
            self.client.post(url).header("content-type", "application/x-www-form-urlencoded").body(form_body(pairs));
        self.send(request).await
    }
}

/// Follows an authorization URL as a person would: signs in with `email` and `password`,
/// approves the consent page, and returns the redirect (to the client) that carries the code.
pub async fn sign_in_and_approve(authorization_url: &str, email: &str, password: &str) -> String {
    let base = url::Url::parse(authorization_url).unwrap();
    let mut browser = Browser::new();
    let login = browser.get(authorization_url).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let mut form = login.hidden();
    form.push(("email".into(), email.into()));
    form.push(("password".into(), password.into()));
    let action = base.join(&login.form_action()).unwrap();
    let signed_in = browser.post(action.as_str(), &form).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.text);
    let consent = browser.get(base.join(&signed_in.location()).unwrap().as_str()).await;
    assert_eq!(consent.status, 200, "{}", consent.text);
    let mut form = consent.hidden();
    form.push(("decision".into(), "approve".into()));
    let action = base.join(&consent.form_action()).unwrap();
    let done = browser.post(action.as_str(), &form).await;
    assert_eq!(done.status, 303, "{}", done.text);
    done.location()
}
