//! Procedural macros of the Berth guest SDK. Use them through `berth_guest` (its prelude
//! re-exports them); the expansions name `::berth_guest`, so the guest crate must depend on the
//! SDK under that name.
//!
//! - `#[tool]`, `#[resource(uri = "…")]`, `#[prompt]` and `#[completion(…)]` keep the function as
//!   written and add, beside it, a hidden braced struct of the same name (it lives in the type
//!   namespace, so it does not clash with the function) implementing the SDK's `ToolSpec`,
//!   `ResourceSpec`, `PromptSpec` or `CompletionSpec` with a `const DEF` describing the item.
//! - `server! { … }` lists those names and exports the component.
//!
//! The `berth_guest` crate documents the attributes and their options.

use proc_macro::TokenStream;

mod items;
mod server;
mod util;

/// Turns a function into an MCP tool; see `berth_guest::tool`.
#[proc_macro_attribute]
pub fn tool(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(items::tool(attr.into(), item.into()))
}

/// Turns a function into an MCP resource or resource template; see `berth_guest::resource`.
#[proc_macro_attribute]
pub fn resource(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(items::resource(attr.into(), item.into()))
}

/// Turns a function into an MCP prompt; see `berth_guest::prompt`.
#[proc_macro_attribute]
pub fn prompt(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(items::prompt(attr.into(), item.into()))
}

/// Turns a function into an argument completer; see `berth_guest::completion`.
#[proc_macro_attribute]
pub fn completion(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(items::completion(attr.into(), item.into()))
}

/// Declares the server and exports it as the component's `berth:mcp/server`; see
/// `berth_guest::server`.
#[proc_macro]
pub fn server(input: TokenStream) -> TokenStream {
    expand(server::server(input.into()))
}

fn expand(result: syn::Result<proc_macro2::TokenStream>) -> TokenStream {
    result.unwrap_or_else(syn::Error::into_compile_error).into()
}
