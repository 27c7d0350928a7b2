//! Prompts: [`PromptDef`], [`PromptArgumentDef`], [`PromptSpec`] and the conversion of return
//! values into a `GetPromptResult` ([`IntoPromptResult`]).

use serde_json::{Map, Value};

use crate::{Context, Error, GetPromptResult, PromptMessage};

/// A prompt's renderer: the context and the `arguments` object (string values).
pub type PromptRenderer = fn(&Context, &Map<String, Value>) -> Result<GetPromptResult, Error>;

/// A prompt: its descriptor and renderer. `#[prompt]` builds one.
#[derive(Clone, Copy)]
pub struct PromptDef {
    pub(crate) name: &'static str,
    pub(crate) title: Option<&'static str>,
    pub(crate) description: Option<&'static str>,
    pub(crate) arguments: &'static [PromptArgumentDef],
    pub(crate) get: PromptRenderer,
}

impl PromptDef {
    /// A prompt named `name` without arguments.
    pub const fn new(name: &'static str, get: PromptRenderer) -> Self {
        Self { name, title: None, description: None, arguments: &[], get }
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

    /// Sets the arguments.
    pub const fn with_arguments(mut self, arguments: &'static [PromptArgumentDef]) -> Self {
        self.arguments = arguments;
        self
    }

    /// The name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The arguments.
    pub const fn arguments(&self) -> &'static [PromptArgumentDef] {
        self.arguments
    }
}

impl std::fmt::Debug for PromptDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptDef").field("name", &self.name).finish_non_exhaustive()
    }
}

/// One argument of a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptArgumentDef {
    pub(crate) name: &'static str,
    pub(crate) description: Option<&'static str>,
    pub(crate) required: bool,
}

impl PromptArgumentDef {
    /// An argument.
    pub const fn new(name: &'static str, description: Option<&'static str>, required: bool) -> Self {
        Self { name, description, required }
    }

    /// The name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Whether the client must give it.
    pub const fn required(&self) -> bool {
        self.required
    }
}

/// Names a prompt for `server!`; `#[prompt]` implements it for a hidden struct named like the
/// function.
pub trait PromptSpec {
    /// The prompt.
    const DEF: PromptDef;
}

/// What a prompt function may return: `String`/`&str` (one user message), [`PromptMessage`],
/// `Vec<PromptMessage>`, [`GetPromptResult`], or `Result<T, E>` of any of these.
pub trait IntoPromptResult {
    /// The result.
    fn into_prompt_result(self) -> Result<GetPromptResult, Error>;
}

impl IntoPromptResult for GetPromptResult {
    fn into_prompt_result(self) -> Result<GetPromptResult, Error> {
        Ok(self)
    }
}

impl IntoPromptResult for Vec<PromptMessage> {
    fn into_prompt_result(self) -> Result<GetPromptResult, Error> {
        Ok(GetPromptResult::new(self))
    }
}

impl IntoPromptResult for PromptMessage {
    fn into_prompt_result(self) -> Result<GetPromptResult, Error> {
        Ok(GetPromptResult::new(vec![self]))
    }
}

impl IntoPromptResult for String {
    fn into_prompt_result(self) -> Result<GetPromptResult, Error> {
        Ok(GetPromptResult::new(vec![PromptMessage::user(self)]))
    }
}

impl IntoPromptResult for &str {
    fn into_prompt_result(self) -> Result<GetPromptResult, Error> {
        Ok(GetPromptResult::new(vec![PromptMessage::user(self)]))
    }
}

impl<T: IntoPromptResult, E: Into<Error>> IntoPromptResult for Result<T, E> {
    fn into_prompt_result(self) -> Result<GetPromptResult, Error> {
        self.map_err(Into::into)?.into_prompt_result()
    }
}
