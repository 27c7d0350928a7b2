//! The Berth guest SDK: MCP servers as WebAssembly components (`wasm32-wasip2`) implementing
//! the `berth:mcp/mcp-server` world (`wit/mcp.wit`), written like FastMCP servers: a typed
//! function with a doc comment is a tool.
//!
//! ```no_run
//! use berth_guest::prelude::*;
//!
//! /// Adds two numbers.
//! #[tool(read_only)]
//! fn add(a: f64, b: f64) -> f64 {
//!     a + b
//! }
//!
//! /// A personalised greeting.
//! #[resource(uri = "greeting://{name}", mime_type = "text/plain")]
//! fn greeting(name: String) -> String {
//!     format!("Hello, {name}!")
//! }
//!
//! /// Review a piece of code.
//! #[prompt]
//! fn code_review(
//!     /// The code to review.
//!     code: String,
//!     language: Option<String>,
//! ) -> Vec<PromptMessage> {
//!     let language = language.unwrap_or_else(|| "code".into());
//!     vec![PromptMessage::user(format!("Please review this {language}:\n\n{code}"))]
//! }
//!
//! berth_guest::server! {
//!     name: "demo",
//!     instructions: "Arithmetic and greetings.",
//!     tools: [add],
//!     resources: [greeting],
//!     prompts: [code_review],
//! }
//! # fn main() {}
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` (the crate is a `cdylib`); the
//! `.wasm` is a component Berth can run. The crate README has the whole quick start.
//!
//! # Tools: [`#[tool]`](tool)
//!
//! - The doc comment is the description; options: `name = "…"`, `title = "…"`,
//!   `description = "…"`, the hints `read_only`, `destructive`, `idempotent`, `open_world`
//!   (flags, or `= false`), and `input_schema = path::to_fn` (a `fn() -> Value`) to replace the
//!   generated schema.
//! - Each parameter is an argument: its type's `JsonSchema` is its schema, `Option<T>` is not
//!   required, a `///` comment or `#[arg(description = "…")]` describes it, and
//!   `#[arg(name = "…")]` renames it on the wire. `&str`, `&[T]` and `&T` parameters are
//!   deserialized as `String`, `Vec<T>` and `T`. A parameter of type `&Context` is injected
//!   instead. Alternatively one parameter marked `#[args]` takes the whole arguments object as
//!   any `Deserialize + JsonSchema` type (document its fields).
//! - The return value: `String`/`&str` is one text block; [`Content`], `Vec<Content>` and
//!   [`CallToolResult`] are used as they are; anything else (`T: Serialize + JsonSchema`) is
//!   structured content (the tool gets an `outputSchema`; non-object values are wrapped as
//!   `{"result": value}`) plus a text block with its JSON (see [`Json`], [`Structured`]).
//!   `Result<T, E>` adds errors: [`Error::Tool`] (what `?` makes of ordinary errors) is an
//!   `isError: true` result the model sees; the other [`Error`] variants are protocol errors.
//! - Arguments that do not deserialize give an `isError` result naming the problem (input
//!   validation errors are tool execution errors since MCP 2025-11-25); an unknown tool is
//!   `-32602`.
//!
//! # Resources: [`#[resource(uri = "…")]`](resource)
//!
//! A URI without `{` is a resource (listed by `resources/list`); with `{name}` (one path
//! segment) or `{+name}` (any text) it is a template, and each variable is a parameter of the
//! same name (any `FromStr` type, `&str` included). Options: `name` (default: the function's),
//! `title`, `description` (default: the doc comment), `mime_type`, and `unlisted` (readable but
//! not listed). Return `String` (text), `Vec<u8>` (base64 blob), [`Json<T>`], [`ResourceContents`]
//! or a `Vec` of them, or a `Result`. A URI matching nothing is [`Error::ResourceNotFound`].
//!
//! # Prompts: [`#[prompt]`](prompt)
//!
//! Parameters are the prompt's arguments (strings on the wire, parsed with `FromStr`;
//! `Option<T>` is optional), described like tool arguments. Return `Vec<PromptMessage>`, one
//! [`PromptMessage`], a `String` (one user message) or a [`GetPromptResult`], or a `Result`. A
//! missing required argument is `-32602`.
//!
//! # Completion: [`#[completion(prompt = "…", argument = "…")]`](completion)
//!
//! (or `resource = "<URI template>"`): a function of the partial value (`&str`) and optionally
//! `&Context` and [`&CompletionRequest`](CompletionRequest) returning candidate values.
//!
//! # The context
//!
//! [`Context`] logs, reports progress, asks the client (elicitation, sampling, roots), reads the
//! client's capabilities and the server's configuration and secrets. Guests keep no state
//! between calls, and a call that needs the client's answer may run more than once; see the
//! [`context`] module.
//!
//! # Testing on the host
//!
//! The crate compiles for the host too. `server!` declares `BERTH_SERVER`, a [`Server`] whose
//! methods take and return JSON: `BERTH_SERVER.call_tool(&Context::new(), "add", r#"{"a":1,"b":2}"#)`.
//! Outside WebAssembly, [`Context`] has no client (see its docs).

// The macros' expansions name `::berth_guest`, which this crate's own tests must resolve too.
#[cfg(test)]
extern crate self as berth_guest;

/// Bindings generated from `wit/mcp.wit` (`berth:mcp/mcp-server`). The SDK wraps them; they are
/// public for the `export!` macro and for guests that want the raw interface.
#[allow(
    unsafe_code,
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "mcp-server",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "berth_guest::bindings",
    });
}

mod completion;
mod content;
pub mod context;
mod error;
mod prompt;
mod resource;
mod schema;
mod server;
#[cfg(test)]
mod tests;
mod tool;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use berth_guest_macros::{completion, prompt, resource, server, tool};
pub use bindings::berth::mcp::types::LogLevel;
#[doc(inline)]
pub use bindings::export;
pub use completion::{Completer, CompletionDef, CompletionRef, CompletionRequest, CompletionSpec, IntoCompletion};
pub use content::{CallToolResult, Content, GetPromptResult, PromptMessage, ResourceContents, Role};
pub use context::{Context, Elicitation};
pub use error::Error;
pub use prompt::{IntoPromptResult, PromptArgumentDef, PromptDef, PromptRenderer, PromptSpec};
pub use resource::{IntoResourceContents, ResourceDef, ResourceReader, ResourceSpec, UriVars};
pub use schema::input_schema;
pub use server::Server;
pub use tool::{IntoToolResult, Json, Structured, ToolAnnotations, ToolDef, ToolHandler, ToolSpec};
pub use {schemars, serde, serde_json};

/// A `Result` whose error is the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a guest usually needs: the attributes, [`Context`], [`Error`] and the content types.
pub mod prelude {
    pub use serde_json::{Value, json};

    pub use crate::{
        CallToolResult, CompletionRequest, Content, Context, Elicitation, Error, GetPromptResult, Json, LogLevel,
        PromptMessage, ResourceContents, Role, Structured, completion, prompt, resource, tool,
    };
}
