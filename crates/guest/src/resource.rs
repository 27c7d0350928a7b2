//! Resources and resource templates: [`ResourceDef`], [`ResourceSpec`], URI template matching
//! ([`UriVars`]) and the conversion of return values into contents ([`IntoResourceContents`]).
//!
//! Templates support RFC 6570 simple expressions `{name}` (one or more characters other than
//! `/`, `?` and `#`) and reserved expressions `{+name}` (one or more of any character);
//! variable values are percent-decoded.

use serde::Serialize;

use crate::{Context, Error, Json, ResourceContents};

/// A resource's reader: the context, the URI read and the template variables.
pub type ResourceReader = fn(&Context, &str, &UriVars) -> Result<Vec<ResourceContents>, Error>;

/// A resource (a URI) or resource template (a URI with `{variables}`): its descriptor and
/// reader. `#[resource]` builds one.
#[derive(Clone, Copy)]
pub struct ResourceDef {
    pub(crate) uri: &'static str,
    pub(crate) name: &'static str,
    pub(crate) title: Option<&'static str>,
    pub(crate) description: Option<&'static str>,
    pub(crate) mime_type: Option<&'static str>,
    pub(crate) unlisted: bool,
    pub(crate) read: ResourceReader,
}

impl ResourceDef {
    /// A resource at `uri` (a template when it contains `{`).
    pub const fn new(uri: &'static str, name: &'static str, read: ResourceReader) -> Self {
        Self { uri, name, title: None, description: None, mime_type: None, unlisted: false, read }
    }

    /// Sets the title.
    pub const fn with_title(mut self, title: Option<&'static str>) -> Self {
        self.title = title;
        self
    }

    /// Sets the description.
    pub const fn with_description(mut self, description: Option<&'static str>) -> Self {
        self.description = description;
        self
    }

    /// Sets the MIME type (also the default of the contents read).
    pub const fn with_mime_type(mut self, mime_type: Option<&'static str>) -> Self {
        self.mime_type = mime_type;
        self
    }

    /// Keeps the resource readable but out of `resources/list`.
    pub const fn with_unlisted(mut self, unlisted: bool) -> Self {
        self.unlisted = unlisted;
        self
    }

    /// The URI or URI template.
    pub const fn uri(&self) -> &'static str {
        self.uri
    }

    /// Whether this is a template.
    pub fn is_template(&self) -> bool {
        self.uri.contains('{')
    }

    /// The variables if `uri` is this resource (`Some` of none for a plain resource).
    pub fn matches(&self, uri: &str) -> Option<UriVars> {
        if self.is_template() { match_template(self.uri, uri) } else { (self.uri == uri).then(UriVars::default) }
    }
}

impl std::fmt::Debug for ResourceDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceDef").field("uri", &self.uri).finish_non_exhaustive()
    }
}

/// Names a resource for `server!`; `#[resource]` implements it for a hidden struct named like
/// the function.
pub trait ResourceSpec {
    /// The resource.
    const DEF: ResourceDef;
}

/// The variables of a URI matched against a template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UriVars {
    vars: Vec<(String, String)>,
}

impl UriVars {
    /// The (percent-decoded) value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

enum Part<'a> {
    Literal(&'a str),
    Var { name: &'a str, reserved: bool },
}

fn parse_template(template: &str) -> Option<Vec<Part<'_>>> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let (literal, after) = rest.split_at(start);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        let after = after.strip_prefix('{')?;
        let end = after.find('}')?;
        let (expression, tail) = after.split_at(end);
        let (name, reserved) = match expression.strip_prefix('+') {
            Some(name) => (name, true),
            None => (expression, false),
        };
        parts.push(Part::Var { name, reserved });
        rest = tail.strip_prefix('}')?;
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest));
    }
    Some(parts)
}

fn match_parts(parts: &[Part<'_>], uri: &str, vars: &mut Vec<(String, String)>) -> bool {
    let Some((first, rest)) = parts.split_first() else { return uri.is_empty() };
    match first {
        Part::Literal(literal) => uri.strip_prefix(literal).is_some_and(|tail| match_parts(rest, tail, vars)),
        Part::Var { name, reserved } => {
            // Try the shortest value first: a value ends where the rest of the template matches.
            let ends = uri.char_indices().map(|(index, _)| index).skip(1).chain(std::iter::once(uri.len()));
            for index in ends {
                let (value, tail) = uri.split_at(index);
                if value.is_empty() {
                    return false;
                }
                if !reserved && value.contains(['/', '?', '#']) {
                    return false;
                }
                let mark = vars.len();
                vars.push(((*name).to_owned(), percent_decode(value)));
                if match_parts(rest, tail, vars) {
                    return true;
                }
                vars.truncate(mark);
            }
            false
        }
    }
}

/// The variables of `uri` if it matches `template`.
pub(crate) fn match_template(template: &str, uri: &str) -> Option<UriVars> {
    let parts = parse_template(template)?;
    let mut vars = Vec::new();
    match_parts(&parts, uri, &mut vars).then_some(UriVars { vars })
}

fn percent_decode(value: &str) -> String {
    if !value.contains('%') {
        return value.to_owned();
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut iter = bytes.iter().copied().enumerate();
    while let Some((index, byte)) = iter.next() {
        let hex = bytes.get(index + 1..index + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (byte, hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                iter.next();
                iter.next();
            }
            _ => out.push(byte),
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| value.to_owned())
}

/// What a resource function may return: `String`/`&str` (text), `Vec<u8>`/`&[u8]` (a base64
/// blob), [`Json<T>`] (JSON text, `application/json` by default), [`ResourceContents`] or a
/// `Vec` of them, or `Result<T, E>` of any of these. Text and blobs take the URI read and the
/// resource's MIME type.
pub trait IntoResourceContents {
    /// The contents for `uri`.
    fn into_contents(self, uri: &str, mime_type: Option<&str>) -> Result<Vec<ResourceContents>, Error>;
}

impl IntoResourceContents for String {
    fn into_contents(self, uri: &str, mime_type: Option<&str>) -> Result<Vec<ResourceContents>, Error> {
        Ok(vec![ResourceContents::text(uri, self).or_mime_type(mime_type)])
    }
}

impl IntoResourceContents for &str {
    fn into_contents(self, uri: &str, mime_type: Option<&str>) -> Result<Vec<ResourceContents>, Error> {
        Ok(vec![ResourceContents::text(uri, self).or_mime_type(mime_type)])
    }
}

impl IntoResourceContents for Vec<u8> {
    fn into_contents(self, uri: &str, mime_type: Option<&str>) -> Result<Vec<ResourceContents>, Error> {
        Ok(vec![ResourceContents::blob(uri, &self).or_mime_type(mime_type)])
    }
}

impl IntoResourceContents for &[u8] {
    fn into_contents(self, uri: &str, mime_type: Option<&str>) -> Result<Vec<ResourceContents>, Error> {
        Ok(vec![ResourceContents::blob(uri, self).or_mime_type(mime_type)])
    }
}

impl IntoResourceContents for ResourceContents {
    fn into_contents(self, _uri: &str, mime_type: Option<&str>) -> Result<Vec<ResourceContents>, Error> {
        Ok(vec![self.or_mime_type(mime_type)])
    }
}

impl IntoResourceContents for Vec<ResourceContents> {
    fn into_contents(self, _uri: &str, _mime_type: Option<&str>) -> Result<Vec<ResourceContents>, Error> {
        Ok(self)
    }
}

impl<T: Serialize> IntoResourceContents for Json<T> {
    fn into_contents(self, uri: &str, mime_type: Option<&str>) -> Result<Vec<ResourceContents>, Error> {
        let text = serde_json::to_string(&self.0)
            .map_err(|e| Error::internal(format!("cannot serialize the resource: {e}")))?;
        Ok(vec![ResourceContents::text(uri, text).or_mime_type(Some(mime_type.unwrap_or("application/json")))])
    }
}

impl<T: IntoResourceContents, E: Into<Error>> IntoResourceContents for Result<T, E> {
    fn into_contents(self, uri: &str, mime_type: Option<&str>) -> Result<Vec<ResourceContents>, Error> {
        self.map_err(Into::into)?.into_contents(uri, mime_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_variables_match_one_segment() {
        let vars = match_template("test://template/{id}/data", "test://template/42/data").unwrap();
        assert_eq!(vars.get("id"), Some("42"));
        assert!(match_template("test://template/{id}/data", "test://template/4/2/data").is_none());
        assert!(match_template("test://template/{id}/data", "test://template//data").is_none());
        assert!(match_template("test://template/{id}/data", "test://template/42/data/x").is_none());
    }

    #[test]
    fn variables_are_percent_decoded() {
        let vars = match_template("greeting://{name}", "greeting://Ada%20Lovelace").unwrap();
        assert_eq!(vars.get("name"), Some("Ada Lovelace"));
        let vars = match_template("greeting://{name}", "greeting://100%").unwrap();
        assert_eq!(vars.get("name"), Some("100%"));
    }

    #[test]
    fn reserved_variables_span_segments() {
        let vars = match_template("file:///{+path}", "file:///a/b/c.txt").unwrap();
        assert_eq!(vars.get("path"), Some("a/b/c.txt"));
    }

    #[test]
    fn several_variables_split_at_the_literals() {
        let vars = match_template("x://{a}-{b}.json", "x://one-two.json").unwrap();
        assert_eq!((vars.get("a"), vars.get("b")), (Some("one"), Some("two")));
    }
}
