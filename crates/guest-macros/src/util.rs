//! Helpers shared by the attribute macros: doc comments, parameter attributes and type shapes.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, FnArg, GenericArgument, ItemFn, Lit, LitStr, Meta, Pat, PathArguments, Type};

/// The text of the `///` comments (`#[doc = "…"]` attributes) in `attrs`, one line each, with the
/// one space after `///` removed and blank lines at either end dropped; `None` when there is none.
pub(crate) fn doc_string(attrs: &[Attribute]) -> Option<String> {
    let mut lines = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident("doc") {
            continue;
        }
        if let Meta::NameValue(nv) = &attr.meta
            && let Expr::Lit(expr) = &nv.value
            && let Lit::Str(text) = &expr.lit
        {
            let value = text.value();
            for line in value.lines() {
                lines.push(line.strip_prefix(' ').unwrap_or(line).trim_end().to_owned());
            }
        }
    }
    let text = lines.join("\n");
    let text = text.trim_matches('\n').to_owned();
    (!text.trim().is_empty()).then_some(text)
}

/// `Some("…")` or `None` as tokens.
pub(crate) fn option_str(value: Option<&str>) -> TokenStream {
    match value {
        Some(text) => quote!(::core::option::Option::Some(#text)),
        None => quote!(::core::option::Option::None),
    }
}

/// The name of a function or parameter identifier as MCP sees it (without `r#`).
pub(crate) fn plain_name(ident: &syn::Ident) -> String {
    let name = ident.to_string();
    name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
}

/// What the attributes on one parameter said (`#[arg(…)]`, `#[args]`, `///`).
#[derive(Default)]
pub(crate) struct ParamAttrs {
    /// `#[arg(name = "…")]`: the name on the wire.
    pub(crate) name: Option<String>,
    /// `#[arg(description = "…")]` or the doc comment.
    pub(crate) description: Option<String>,
    /// `#[args]`: the parameter receives the whole arguments object.
    pub(crate) whole: bool,
}

/// One function parameter, its attributes removed from the function.
pub(crate) struct Param {
    pub(crate) ident: syn::Ident,
    pub(crate) ty: Type,
    pub(crate) attrs: ParamAttrs,
}

/// Takes the SDK's attributes (`arg`, `args`, `doc`) off the parameters of `function` and returns
/// the parameters. Rejects what the SDK cannot call: methods, `async`, generics and patterns.
pub(crate) fn take_params(function: &mut ItemFn, what: &str) -> syn::Result<Vec<Param>> {
    let sig = &function.sig;
    if let Some(asyncness) = &sig.asyncness {
        return Err(syn::Error::new(
            asyncness.span(),
            format!("a {what} cannot be async: guest calls are synchronous (the host waits for client answers)"),
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(sig.generics.span(), format!("a {what} cannot be generic")));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new(variadic.span(), format!("a {what} cannot be variadic")));
    }
    let mut params = Vec::new();
    for input in function.sig.inputs.iter_mut() {
        let FnArg::Typed(typed) = input else {
            return Err(syn::Error::new(input.span(), format!("a {what} must be a free function, not a method")));
        };
        let attrs = take_param_attrs(&mut typed.attrs)?;
        let Pat::Ident(pat) = &*typed.pat else {
            return Err(syn::Error::new(typed.pat.span(), format!("{what} parameters must be plain names")));
        };
        if pat.by_ref.is_some() || pat.subpat.is_some() {
            return Err(syn::Error::new(typed.pat.span(), format!("{what} parameters must be plain names")));
        }
        params.push(Param { ident: pat.ident.clone(), ty: (*typed.ty).clone(), attrs });
    }
    Ok(params)
}

fn take_param_attrs(attrs: &mut Vec<Attribute>) -> syn::Result<ParamAttrs> {
    let mut out = ParamAttrs { description: doc_string(attrs), ..ParamAttrs::default() };
    let mut kept = Vec::new();
    for attr in attrs.drain(..) {
        if attr.path().is_ident("doc") {
            continue;
        }
        if attr.path().is_ident("args") {
            attr.meta.require_path_only()?;
            out.whole = true;
            continue;
        }
        if attr.path().is_ident("arg") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("name") {
                    out.name = Some(meta.value()?.parse::<LitStr>()?.value());
                    Ok(())
                } else if meta.path.is_ident("description") {
                    out.description = Some(meta.value()?.parse::<LitStr>()?.value());
                    Ok(())
                } else {
                    Err(meta.error("unsupported #[arg] option; expected `name` or `description`"))
                }
            })?;
            continue;
        }
        kept.push(attr);
    }
    *attrs = kept;
    Ok(out)
}

/// The last path segment of a path type (`Vec` in `std::vec::Vec<u8>`).
pub(crate) fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last(),
        Type::Group(group) => last_segment(&group.elem),
        Type::Paren(paren) => last_segment(&paren.elem),
        _ => None,
    }
}

/// The first type argument of a path type (`T` in `Option<T>`).
pub(crate) fn first_type_arg(ty: &Type) -> Option<&Type> {
    let PathArguments::AngleBracketed(args) = &last_segment(ty)?.arguments else { return None };
    args.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    })
}

/// `T` when `ty` is `Option<T>`.
pub(crate) fn option_inner(ty: &Type) -> Option<&Type> {
    if last_segment(ty)?.ident == "Option" { first_type_arg(ty) } else { None }
}

/// Whether `ty` is `&Context` (any path ending in `Context`): the injected request context.
pub(crate) fn is_context(ty: &Type) -> bool {
    match ty {
        Type::Reference(reference) => last_segment(&reference.elem).is_some_and(|s| s.ident == "Context"),
        _ => false,
    }
}

/// Whether `ty` is `&str` (any lifetime).
pub(crate) fn is_str_ref(ty: &Type) -> bool {
    match ty {
        Type::Reference(reference) => {
            reference.mutability.is_none() && last_segment(&reference.elem).is_some_and(|s| s.ident == "str")
        }
        _ => false,
    }
}

/// For a by-reference parameter, the owned type to deserialize (`&str` → `String`, `&[T]` →
/// `Vec<T>`, `&T` → `T`); `None` for a by-value parameter.
pub(crate) fn owned_of_reference(ty: &Type) -> syn::Result<Option<Type>> {
    let Type::Reference(reference) = ty else { return Ok(None) };
    if reference.mutability.is_some() {
        return Err(syn::Error::new(ty.span(), "parameters cannot be `&mut`"));
    }
    let owned: Type = match &*reference.elem {
        Type::Slice(slice) => {
            let elem = &slice.elem;
            syn::parse_quote!(::std::vec::Vec<#elem>)
        }
        elem if last_segment(elem).is_some_and(|s| s.ident == "str") => syn::parse_quote!(::std::string::String),
        elem => elem.clone(),
    };
    Ok(Some(owned))
}
