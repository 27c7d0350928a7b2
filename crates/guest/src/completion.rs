//! Argument completion (`completion/complete`): [`CompletionDef`], [`CompletionSpec`],
//! [`CompletionRequest`] and [`IntoCompletion`].
//!
//! A completer returns candidate values for the partial value it is given (filtering is its
//! job); the SDK answers the first 100 with `total` and `hasMore`. An argument of a known prompt
//! or template without a completer completes to nothing; an unknown prompt or URI is `-32602`.

use serde_json::{Map, Value};

use crate::{Context, Error};

/// A completer: the context and the request.
pub type Completer = fn(&Context, &CompletionRequest) -> Result<Vec<String>, Error>;

/// What a completer completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionRef {
    /// An argument of the prompt with this name (`ref/prompt`).
    Prompt(&'static str),
    /// A variable of the resource template with this URI template (`ref/resource`).
    Resource(&'static str),
}

/// A completer for one argument. `#[completion(prompt = "…" | resource = "…", argument = "…")]`
/// builds one.
#[derive(Clone, Copy)]
pub struct CompletionDef {
    pub(crate) target: CompletionRef,
    pub(crate) argument: &'static str,
    pub(crate) complete: Completer,
}

impl CompletionDef {
    /// Completes `argument` of `target`.
    pub const fn new(target: CompletionRef, argument: &'static str, complete: Completer) -> Self {
        Self { target, argument, complete }
    }
}

impl std::fmt::Debug for CompletionDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompletionDef").field("target", &self.target).field("argument", &self.argument).finish()
    }
}

/// Names a completer for `server!`; `#[completion]` implements it for a hidden struct named like
/// the function.
pub trait CompletionSpec {
    /// The completer.
    const DEF: CompletionDef;
}

/// A `completion/complete` request.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    pub(crate) argument: String,
    pub(crate) value: String,
    pub(crate) context: Map<String, Value>,
}

impl CompletionRequest {
    /// The argument being completed.
    pub fn argument(&self) -> &str {
        &self.argument
    }

    /// What the user has typed so far.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// An argument the user has already filled in (`context.arguments`).
    pub fn context_argument(&self, name: &str) -> Option<&str> {
        self.context.get(name).and_then(Value::as_str)
    }

    /// Keeps the `candidates` that start with the typed value.
    pub fn filter_prefix<'a>(&self, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        candidates.into_iter().filter(|c| c.starts_with(self.value.as_str())).map(str::to_owned).collect()
    }
}

/// What a completer may return: `Vec<String>`, `Vec<&str>`, or `Result` of either.
pub trait IntoCompletion {
    /// The candidate values.
    fn into_completion(self) -> Result<Vec<String>, Error>;
}

impl IntoCompletion for Vec<String> {
    fn into_completion(self) -> Result<Vec<String>, Error> {
        Ok(self)
    }
}

impl IntoCompletion for Vec<&str> {
    fn into_completion(self) -> Result<Vec<String>, Error> {
        Ok(self.into_iter().map(str::to_owned).collect())
    }
}

impl<T: IntoCompletion, E: Into<Error>> IntoCompletion for Result<T, E> {
    fn into_completion(self) -> Result<Vec<String>, Error> {
        self.map_err(Into::into)?.into_completion()
    }
}
