//! `server! { name: …, version: …, instructions: …, tools: [...], resources: [...], prompts: [...],
//! completions: [...] }`: a static `berth_guest::Server` named `BERTH_SERVER` and the component
//! export.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Path, Token, bracketed};

const SCALARS: &[&str] = &["name", "version", "instructions"];
const LISTS: &[&str] = &["tools", "resources", "prompts", "completions"];

enum Value {
    Expr(Expr),
    List(Vec<Path>),
}

struct Entry {
    key: Ident,
    value: Value,
}

impl Parse for Entry {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key: Ident = input.parse()?;
        input.parse::<Token![:]>()?;
        let name = key.to_string();
        let value = if LISTS.contains(&name.as_str()) {
            let content;
            bracketed!(content in input);
            let paths = Punctuated::<Path, Token![,]>::parse_terminated(&content)?;
            Value::List(paths.into_iter().collect())
        } else if SCALARS.contains(&name.as_str()) {
            Value::Expr(input.parse()?)
        } else {
            return Err(syn::Error::new(
                key.span(),
                format!("unknown server! key `{name}`; expected one of: {}, {}", SCALARS.join(", "), LISTS.join(", ")),
            ));
        };
        Ok(Entry { key, value })
    }
}

struct Input {
    entries: Vec<Entry>,
}

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let entries = Punctuated::<Entry, Token![,]>::parse_terminated(input)?;
        let mut seen: Vec<String> = Vec::new();
        for entry in &entries {
            let key = entry.key.to_string();
            if seen.contains(&key) {
                return Err(syn::Error::new(entry.key.span(), format!("`{key}` is given twice")));
            }
            seen.push(key);
        }
        Ok(Input { entries: entries.into_iter().collect() })
    }
}

pub(crate) fn server(input: TokenStream) -> syn::Result<TokenStream> {
    let input: Input = syn::parse2(input)?;
    let mut name = quote!(::core::env!("CARGO_PKG_NAME"));
    let mut version = quote!(::core::env!("CARGO_PKG_VERSION"));
    let mut builders = Vec::new();
    for entry in input.entries {
        let key = entry.key.to_string();
        match (key.as_str(), entry.value) {
            ("name", Value::Expr(expr)) => name = quote!(#expr),
            ("version", Value::Expr(expr)) => version = quote!(#expr),
            ("instructions", Value::Expr(expr)) => builders.push(quote!(.with_instructions(#expr))),
            ("tools", Value::List(paths)) => {
                builders.push(quote!(.with_tools(&[#(<#paths as ::berth_guest::ToolSpec>::DEF),*])));
            }
            ("resources", Value::List(paths)) => {
                builders.push(quote!(.with_resources(&[#(<#paths as ::berth_guest::ResourceSpec>::DEF),*])));
            }
            ("prompts", Value::List(paths)) => {
                builders.push(quote!(.with_prompts(&[#(<#paths as ::berth_guest::PromptSpec>::DEF),*])));
            }
            ("completions", Value::List(paths)) => {
                builders.push(quote!(.with_completions(&[#(<#paths as ::berth_guest::CompletionSpec>::DEF),*])));
            }
            _ => return Err(syn::Error::new(entry.key.span(), format!("bad value for `{key}`"))),
        }
    }
    Ok(quote! {
        /// This component's MCP server: what `server!` declared. Tests can call its methods
        /// directly (`BERTH_SERVER.call_tool(&Context::new(), "add", r#"{"a":1,"b":2}"#)`).
        #[allow(dead_code)]
        pub(crate) static BERTH_SERVER: ::berth_guest::Server =
            ::berth_guest::Server::new(#name, #version) #(#builders)*;

        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        struct __BerthComponent;

        const _: () = {
            use ::berth_guest::bindings::exports::berth::mcp::server as __server;
            use ::berth_guest::__private::export as __export;

            impl __server::Guest for __BerthComponent {
                fn info() -> __server::ServerInfo {
                    __export::info(&BERTH_SERVER)
                }
                fn list_tools() -> ::std::vec::Vec<__server::Tool> {
                    __export::list_tools(&BERTH_SERVER)
                }
                fn call_tool(
                    name: ::std::string::String,
                    arguments: __server::Json,
                ) -> ::core::result::Result<__server::Json, __server::Error> {
                    __export::call_tool(&BERTH_SERVER, &name, &arguments)
                }
                fn list_resources() -> ::std::vec::Vec<__server::Resource> {
                    __export::list_resources(&BERTH_SERVER)
                }
                fn list_resource_templates() -> ::std::vec::Vec<__server::ResourceTemplate> {
                    __export::list_resource_templates(&BERTH_SERVER)
                }
                fn read_resource(uri: ::std::string::String) -> ::core::result::Result<__server::Json, __server::Error> {
                    __export::read_resource(&BERTH_SERVER, &uri)
                }
                fn list_prompts() -> ::std::vec::Vec<__server::Prompt> {
                    __export::list_prompts(&BERTH_SERVER)
                }
                fn get_prompt(
                    name: ::std::string::String,
                    arguments: __server::Json,
                ) -> ::core::result::Result<__server::Json, __server::Error> {
                    __export::get_prompt(&BERTH_SERVER, &name, &arguments)
                }
                fn complete(request: __server::Json) -> ::core::result::Result<__server::Json, __server::Error> {
                    __export::complete(&BERTH_SERVER, &request)
                }
            }
        };

        ::berth_guest::export!(__BerthComponent with_types_in ::berth_guest::bindings);
    })
}
