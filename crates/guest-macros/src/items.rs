//! `#[tool]`, `#[resource]`, `#[prompt]` and `#[completion]`.

use std::collections::BTreeMap;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{GenericArgument, ItemFn, LitBool, LitStr, PathArguments, ReturnType, Type};

use crate::util::{
    Param, doc_string, first_type_arg, is_context, is_str_ref, last_segment, option_inner, option_str,
    owned_of_reference, plain_name, take_params,
};

/// The `key = "value"`, `flag [= bool]` and `key = path` options of one attribute.
#[derive(Default)]
struct Options {
    strings: BTreeMap<String, LitStr>,
    flags: BTreeMap<String, bool>,
    paths: BTreeMap<String, syn::Path>,
}

impl Options {
    fn parse(attr: TokenStream, what: &str, strings: &[&str], flags: &[&str], paths: &[&str]) -> syn::Result<Self> {
        let mut options = Options::default();
        let parser = syn::meta::parser(|meta| {
            let Some(key) = meta.path.get_ident().map(ToString::to_string) else {
                return Err(meta.error("expected an option name"));
            };
            if strings.contains(&key.as_str()) {
                options.strings.insert(key, meta.value()?.parse()?);
            } else if flags.contains(&key.as_str()) {
                let value =
                    if meta.input.peek(syn::Token![=]) { meta.value()?.parse::<LitBool>()?.value } else { true };
                options.flags.insert(key, value);
            } else if paths.contains(&key.as_str()) {
                options.paths.insert(key, meta.value()?.parse()?);
            } else {
                let mut known: Vec<&str> = strings.iter().chain(flags).chain(paths).copied().collect();
                known.sort_unstable();
                return Err(
                    meta.error(format!("unsupported #[{what}] option `{key}`; expected one of: {}", known.join(", ")))
                );
            }
            Ok(())
        });
        parser.parse2(attr)?;
        Ok(options)
    }

    fn string(&self, key: &str) -> Option<String> {
        self.strings.get(key).map(LitStr::value)
    }
}

/// The hidden marker struct named like the function, and the `const _` block holding the rest.
fn marker(function: &ItemFn) -> TokenStream {
    let vis = &function.vis;
    let ident = &function.sig.ident;
    quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #ident {}
    }
}

fn description(options: &Options, function: &ItemFn) -> Option<String> {
    options.string("description").or_else(|| doc_string(&function.attrs))
}

fn param_name(param: &Param) -> String {
    param.attrs.name.clone().unwrap_or_else(|| plain_name(&param.ident))
}

fn reject_whole(param: &Param, what: &str) -> syn::Result<()> {
    if param.attrs.whole {
        return Err(syn::Error::new(
            param.ident.span(),
            format!("#[args] is only supported on tool parameters, not on a {what}"),
        ));
    }
    Ok(())
}

fn return_type(function: &ItemFn) -> syn::Result<Type> {
    match &function.sig.output {
        ReturnType::Default => Ok(syn::parse_quote!(())),
        ReturnType::Type(_, ty) => {
            if let Type::ImplTrait(_) = &**ty {
                return Err(syn::Error::new(ty.span(), "name the return type (`impl Trait` is not supported here)"));
            }
            Ok((**ty).clone())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// #[tool]

/// Whether a tool's return type converts as it is (text or a result built by hand) rather than
/// being wrapped in `Json` (structured content).
fn converts_as_is(ty: &Type) -> bool {
    match ty {
        Type::Tuple(tuple) => tuple.elems.is_empty(),
        Type::Reference(_) => is_str_ref(ty),
        _ => match last_segment(ty) {
            Some(segment) => match segment.ident.to_string().as_str() {
                "String" | "CallToolResult" | "Content" | "Json" | "Structured" => true,
                "Vec" => first_type_arg(ty).and_then(last_segment).is_some_and(|s| s.ident == "Content"),
                _ => false,
            },
            None => false,
        },
    }
}

/// The type whose `IntoToolResult` impl converts the tool's output, and the expression turning
/// `__out` into it.
fn tool_output(ty: &Type) -> (Type, TokenStream) {
    let is_result = last_segment(ty).is_some_and(|s| s.ident == "Result");
    match (is_result, first_type_arg(ty)) {
        (true, Some(ok)) if !converts_as_is(ok) => {
            let mut wrapped = ty.clone();
            if let Type::Path(path) = &mut wrapped
                && let Some(segment) = path.path.segments.last_mut()
                && let PathArguments::AngleBracketed(args) = &mut segment.arguments
                && let Some(first) = args.args.iter_mut().find(|a| matches!(a, GenericArgument::Type(_)))
            {
                *first = GenericArgument::Type(syn::parse_quote!(::berth_guest::Json<#ok>));
            }
            (wrapped, quote!(__out.map(::berth_guest::Json)))
        }
        (true, Some(_)) => (ty.clone(), quote!(__out)),
        _ if converts_as_is(ty) => (ty.clone(), quote!(__out)),
        _ => (syn::parse_quote!(::berth_guest::Json<#ty>), quote!(::berth_guest::Json(__out))),
    }
}

fn valid_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

pub(crate) fn tool(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let options = Options::parse(
        attr,
        "tool",
        &["name", "title", "description"],
        &["read_only", "destructive", "idempotent", "open_world"],
        &["input_schema"],
    )?;
    let mut function: ItemFn = syn::parse2(item)?;
    let params = take_params(&mut function, "tool")?;
    let fn_ident = function.sig.ident.clone();
    let name = options.string("name").unwrap_or_else(|| plain_name(&fn_ident));
    if !valid_tool_name(&name) {
        let span = options.strings.get("name").map_or(fn_ident.span(), LitStr::span);
        return Err(syn::Error::new(span, "tool names are 1 to 128 characters of A-Z, a-z, 0-9, `_`, `-` and `.`"));
    }

    // Arguments: one generated struct, or a whole-arguments `#[args]` parameter.
    let whole: Vec<&Param> = params.iter().filter(|p| p.attrs.whole).collect();
    let schema_params: Vec<&Param> = params.iter().filter(|p| !is_context(&p.ty) && !p.attrs.whole).collect();
    if whole.len() > 1 {
        return Err(syn::Error::new(fn_ident.span(), "only one parameter can be #[args]"));
    }
    if let (Some(whole), Some(other)) = (whole.first(), schema_params.first()) {
        return Err(syn::Error::new(
            other.ident.span(),
            format!("`{}` is #[args] (the whole arguments object): move `{}` into its type", whole.ident, other.ident),
        ));
    }
    let mut fields = Vec::new();
    let mut call_args = Vec::new();
    for param in &params {
        let ident = &param.ident;
        if is_context(&param.ty) && !param.attrs.whole {
            call_args.push(quote!(__ctx));
            continue;
        }
        let owned = owned_of_reference(&param.ty)?;
        let by_ref = owned.is_some();
        let field_ty = owned.unwrap_or_else(|| param.ty.clone());
        let access = if param.attrs.whole { quote!(__args) } else { quote!(__args.#ident) };
        call_args.push(if by_ref { quote!(&#access) } else { access });
        if param.attrs.whole {
            if param.attrs.name.is_some() || param.attrs.description.is_some() {
                return Err(syn::Error::new(
                    ident.span(),
                    "#[args] takes its schema from its type; document its fields",
                ));
            }
            continue;
        }
        let rename = param.attrs.name.as_ref().map(|name| quote!(#[serde(rename = #name)]));
        let doc = param.attrs.description.as_ref().map(|d| quote!(#[doc = #d]));
        let default = option_inner(&field_ty).map(|_| quote!(#[serde(default)]));
        fields.push(quote!(#doc #rename #default #ident: #field_ty));
    }
    let args_ty = match whole.first() {
        Some(param) => match owned_of_reference(&param.ty)? {
            Some(owned) => owned,
            None => param.ty.clone(),
        },
        None => syn::parse_quote!(__BerthArgs),
    };
    let args_struct = whole.is_empty().then(|| {
        quote! {
            #[derive(::berth_guest::__private::serde::Deserialize, ::berth_guest::__private::schemars::JsonSchema)]
            #[serde(crate = "::berth_guest::__private::serde")]
            #[schemars(crate = "::berth_guest::__private::schemars")]
            #[allow(non_camel_case_types, non_snake_case)]
            struct __BerthArgs { #(#fields),* }
        }
    });
    let input_schema = match options.paths.get("input_schema") {
        Some(path) => quote!(#path),
        None => quote!(::berth_guest::__private::input_schema::<#args_ty>),
    };

    let ret = return_type(&function)?;
    let (converted, conversion) = tool_output(&ret);
    let description = option_str(description(&options, &function).as_deref());
    let title = option_str(options.string("title").as_deref());
    let hint = |key: &str, method: &str| {
        options.flags.get(key).map(|value| {
            let method = format_ident!("{method}");
            quote!(.#method(#value))
        })
    };
    let hints: Vec<TokenStream> = [
        hint("read_only", "read_only"),
        hint("destructive", "destructive"),
        hint("idempotent", "idempotent"),
        hint("open_world", "open_world"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let annotations =
        (!hints.is_empty()).then(|| quote!(.with_annotations(::berth_guest::ToolAnnotations::new() #(#hints)*)));
    let marker = marker(&function);

    Ok(quote! {
        #function
        #marker
        const _: () = {
            #args_struct

            fn __berth_call(
                __ctx: &::berth_guest::Context,
                __arguments: ::berth_guest::__private::Value,
            ) -> ::core::result::Result<::berth_guest::CallToolResult, ::berth_guest::Error> {
                let __args: #args_ty = match ::berth_guest::__private::tool_arguments(#name, __arguments) {
                    ::core::result::Result::Ok(args) => args,
                    ::core::result::Result::Err(invalid) => return ::core::result::Result::Ok(invalid),
                };
                let __out = #fn_ident(#(#call_args),*);
                let __out: #converted = #conversion;
                ::berth_guest::IntoToolResult::into_tool_result(__out)
            }

            impl ::berth_guest::ToolSpec for #fn_ident {
                const DEF: ::berth_guest::ToolDef = ::berth_guest::ToolDef::new(#name, #input_schema, __berth_call)
                    .with_title(#title)
                    .with_description(#description)
                    .with_output_schema(<#converted as ::berth_guest::IntoToolResult>::output_schema)
                    #annotations;
            }
        };
    })
}

// ---------------------------------------------------------------------------------------------
// #[resource]

/// The variables of a URI template (`{name}` and `{+name}` expressions only).
fn template_vars(template: &LitStr) -> syn::Result<Vec<String>> {
    let text = template.value();
    let mut vars = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find('{') {
        let after = rest.get(start + 1..).unwrap_or_default();
        let Some(end) = after.find('}') else {
            return Err(syn::Error::new(template.span(), "unclosed `{` in the URI template"));
        };
        let expression = after.get(..end).unwrap_or_default();
        let name = expression.strip_prefix('+').unwrap_or(expression);
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(syn::Error::new(
                template.span(),
                format!("unsupported URI template expression `{{{expression}}}`: use `{{name}}` or `{{+name}}`"),
            ));
        }
        if vars.iter().any(|v| v == name) {
            return Err(syn::Error::new(template.span(), format!("`{{{name}}}` appears twice in the URI template")));
        }
        vars.push(name.to_owned());
        rest = after.get(end + 1..).unwrap_or_default();
    }
    if rest.contains('}') {
        return Err(syn::Error::new(template.span(), "unmatched `}` in the URI template"));
    }
    Ok(vars)
}

pub(crate) fn resource(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let options =
        Options::parse(attr, "resource", &["uri", "name", "title", "description", "mime_type"], &["unlisted"], &[])?;
    let mut function: ItemFn = syn::parse2(item)?;
    let params = take_params(&mut function, "resource")?;
    let fn_ident = function.sig.ident.clone();
    let Some(uri) = options.strings.get("uri").cloned() else {
        return Err(syn::Error::new(Span::call_site(), "#[resource] needs `uri = \"…\"` (a URI or a URI template)"));
    };
    let vars = template_vars(&uri)?;
    let mut call_args = Vec::new();
    for param in &params {
        reject_whole(param, "resource")?;
        if is_context(&param.ty) {
            call_args.push(quote!(__ctx));
            continue;
        }
        let name = param_name(param);
        if !vars.contains(&name) {
            let message = if vars.is_empty() {
                format!("`{name}` is not a variable of the URI: a static resource takes only `&Context`")
            } else {
                format!("`{name}` is not a variable of the URI template (variables: {})", vars.join(", "))
            };
            return Err(syn::Error::new(param.ident.span(), message));
        }
        let owned = owned_of_reference(&param.ty)?;
        let by_ref = owned.is_some();
        let ty = owned.unwrap_or_else(|| param.ty.clone());
        let value = quote!(::berth_guest::__private::uri_var::<#ty>(__vars, #name)?);
        call_args.push(if by_ref { quote!(&#value) } else { value });
    }
    let name = options.string("name").unwrap_or_else(|| plain_name(&fn_ident));
    let title = option_str(options.string("title").as_deref());
    let description = option_str(description(&options, &function).as_deref());
    let mime_type = option_str(options.string("mime_type").as_deref());
    let unlisted = options.flags.get("unlisted").copied().unwrap_or(false);
    let marker = marker(&function);

    Ok(quote! {
        #function
        #marker
        const _: () = {
            #[allow(unused_variables)]
            fn __berth_read(
                __ctx: &::berth_guest::Context,
                __uri: &str,
                __vars: &::berth_guest::UriVars,
            ) -> ::core::result::Result<::std::vec::Vec<::berth_guest::ResourceContents>, ::berth_guest::Error> {
                ::berth_guest::IntoResourceContents::into_contents(#fn_ident(#(#call_args),*), __uri, #mime_type)
            }

            impl ::berth_guest::ResourceSpec for #fn_ident {
                const DEF: ::berth_guest::ResourceDef = ::berth_guest::ResourceDef::new(#uri, #name, __berth_read)
                    .with_title(#title)
                    .with_description(#description)
                    .with_mime_type(#mime_type)
                    .with_unlisted(#unlisted);
            }
        };
    })
}

// ---------------------------------------------------------------------------------------------
// #[prompt]

pub(crate) fn prompt(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let options = Options::parse(attr, "prompt", &["name", "title", "description"], &[], &[])?;
    let mut function: ItemFn = syn::parse2(item)?;
    let params = take_params(&mut function, "prompt")?;
    let fn_ident = function.sig.ident.clone();
    let mut call_args = Vec::new();
    let mut arguments = Vec::new();
    for param in &params {
        reject_whole(param, "prompt")?;
        if is_context(&param.ty) {
            call_args.push(quote!(__ctx));
            continue;
        }
        let name = param_name(param);
        let description = option_str(param.attrs.description.as_deref());
        let value = match option_inner(&param.ty) {
            Some(inner) if is_str_ref(inner) => {
                quote!(::berth_guest::__private::prompt_arg_opt::<::std::string::String>(__arguments, #name)?.as_deref())
            }
            Some(inner) => {
                if owned_of_reference(inner)?.is_some() {
                    return Err(syn::Error::new(inner.span(), "use an owned type (or `&str`) inside `Option`"));
                }
                quote!(::berth_guest::__private::prompt_arg_opt::<#inner>(__arguments, #name)?)
            }
            None => match owned_of_reference(&param.ty)? {
                Some(owned) => quote!(&::berth_guest::__private::prompt_arg::<#owned>(__arguments, #name)?),
                None => {
                    let ty = &param.ty;
                    quote!(::berth_guest::__private::prompt_arg::<#ty>(__arguments, #name)?)
                }
            },
        };
        let required = option_inner(&param.ty).is_none();
        arguments.push(quote!(::berth_guest::PromptArgumentDef::new(#name, #description, #required)));
        call_args.push(value);
    }
    let name = options.string("name").unwrap_or_else(|| plain_name(&fn_ident));
    let title = option_str(options.string("title").as_deref());
    let description = option_str(description(&options, &function).as_deref());
    let marker = marker(&function);

    Ok(quote! {
        #function
        #marker
        const _: () = {
            #[allow(unused_variables)]
            fn __berth_get(
                __ctx: &::berth_guest::Context,
                __arguments: &::berth_guest::__private::Map<::std::string::String, ::berth_guest::__private::Value>,
            ) -> ::core::result::Result<::berth_guest::GetPromptResult, ::berth_guest::Error> {
                ::berth_guest::IntoPromptResult::into_prompt_result(#fn_ident(#(#call_args),*))
            }

            impl ::berth_guest::PromptSpec for #fn_ident {
                const DEF: ::berth_guest::PromptDef = ::berth_guest::PromptDef::new(#name, __berth_get)
                    .with_title(#title)
                    .with_description(#description)
                    .with_arguments(&[#(#arguments),*]);
            }
        };
    })
}

// ---------------------------------------------------------------------------------------------
// #[completion]

pub(crate) fn completion(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let options = Options::parse(attr, "completion", &["prompt", "resource", "argument"], &[], &[])?;
    let mut function: ItemFn = syn::parse2(item)?;
    let params = take_params(&mut function, "completion")?;
    let fn_ident = function.sig.ident.clone();
    let Some(argument) = options.strings.get("argument") else {
        return Err(syn::Error::new(Span::call_site(), "#[completion] needs `argument = \"…\"`"));
    };
    let target = match (options.strings.get("prompt"), options.strings.get("resource")) {
        (Some(prompt), None) => quote!(::berth_guest::CompletionRef::Prompt(#prompt)),
        (None, Some(uri)) => quote!(::berth_guest::CompletionRef::Resource(#uri)),
        _ => {
            return Err(syn::Error::new(
                Span::call_site(),
                "#[completion] needs exactly one of `prompt = \"<prompt name>\"` or `resource = \"<URI template>\"`",
            ));
        }
    };
    let mut call_args = Vec::new();
    for param in &params {
        reject_whole(param, "completion")?;
        let ty = &param.ty;
        if is_context(ty) {
            call_args.push(quote!(__ctx));
        } else if is_str_ref(ty) {
            call_args.push(quote!(__request.value()));
        } else if last_segment(ty).is_some_and(|s| s.ident == "String") {
            call_args.push(quote!(::std::borrow::ToOwned::to_owned(__request.value())));
        } else if let Type::Reference(reference) = ty
            && last_segment(&reference.elem).is_some_and(|s| s.ident == "CompletionRequest")
        {
            call_args.push(quote!(__request));
        } else {
            return Err(syn::Error::new(
                ty.span(),
                "a completion takes `&Context`, the partial value (`&str` or `String`) and/or `&CompletionRequest`",
            ));
        }
    }
    let marker = marker(&function);

    Ok(quote! {
        #function
        #marker
        const _: () = {
            #[allow(unused_variables)]
            fn __berth_complete(
                __ctx: &::berth_guest::Context,
                __request: &::berth_guest::CompletionRequest,
            ) -> ::core::result::Result<::std::vec::Vec<::std::string::String>, ::berth_guest::Error> {
                ::berth_guest::IntoCompletion::into_completion(#fn_ident(#(#call_args),*))
            }

            impl ::berth_guest::CompletionSpec for #fn_ident {
                const DEF: ::berth_guest::CompletionDef =
                    ::berth_guest::CompletionDef::new(#target, #argument, __berth_complete);
            }
        };
    })
}
