//! Upload validation: is this a component that exports `berth:mcp/server@0.1.0` and imports
//! nothing Berth does not provide? Every rejection names what is missing or wrong.

use wasmtime::Engine;
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Component, Linker};

use crate::bindings::{McpServerPre, SERVER_INTERFACE};
use crate::error::{Error, Result};
use crate::store::CallState;

/// `\0asm` followed by the component-model layer and version.
const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
/// `\0asm` followed by core module version 1.
const CORE_MODULE_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/// Import namespaces a Berth server may use, besides `berth:mcp`.
const ALLOWED_IMPORTS: [&str; 8] = [
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:http/types@",
    "wasi:http/outgoing-handler@",
    "berth:mcp/",
];

/// `types.error` of the world, as [`render`] writes it.
const ERROR: &str = "variant { invalid-params(string), resource-not-found(string), input-required, unsupported(string), internal(string) }";

/// Every function of `berth:mcp/server@0.1.0` with its signature, as [`render_func`] writes it.
fn expected_functions() -> [(&'static str, String); 9] {
    let optional = |name: &str| format!("{name}: option<string>");
    let described = format!("{}, {}", optional("title"), optional("description"));
    [
        ("info", "func() -> record { name: string, version: string, instructions: option<string> }".to_owned()),
        (
            "list-tools",
            format!(
                "func() -> list<record {{ name: string, {described}, input-schema: string, {}, {} }}>",
                optional("output-schema"),
                optional("annotations")
            ),
        ),
        ("call-tool", format!("func(string, string) -> result<string, {ERROR}>")),
        (
            "list-resources",
            format!("func() -> list<record {{ uri: string, name: string, {described}, {} }}>", optional("mime-type")),
        ),
        (
            "list-resource-templates",
            format!(
                "func() -> list<record {{ uri-template: string, name: string, {described}, {} }}>",
                optional("mime-type")
            ),
        ),
        ("read-resource", format!("func(string) -> result<string, {ERROR}>")),
        (
            "list-prompts",
            format!(
                "func() -> list<record {{ name: string, {described}, arguments: list<record {{ name: string, {}, \
                 required: bool }}> }}>",
                optional("description")
            ),
        ),
        ("get-prompt", format!("func(string, string) -> result<string, {ERROR}>")),
        ("complete", format!("func(string) -> result<string, {ERROR}>")),
    ]
}

/// A component-model type in WIT-like syntax (type names are structural, so they do not
/// appear).
fn render(ty: &Type) -> String {
    let join = |items: Vec<String>| items.join(", ");
    match ty {
        Type::Bool => "bool".to_owned(),
        Type::S8 => "s8".to_owned(),
        Type::U8 => "u8".to_owned(),
        Type::S16 => "s16".to_owned(),
        Type::U16 => "u16".to_owned(),
        Type::S32 => "s32".to_owned(),
        Type::U32 => "u32".to_owned(),
        Type::S64 => "s64".to_owned(),
        Type::U64 => "u64".to_owned(),
        Type::Float32 => "f32".to_owned(),
        Type::Float64 => "f64".to_owned(),
        Type::Char => "char".to_owned(),
        Type::String => "string".to_owned(),
        Type::List(list) => format!("list<{}>", render(&list.ty())),
        Type::Option(option) => format!("option<{}>", render(&option.ty())),
        Type::Result(result) => match (result.ok(), result.err()) {
            (Some(ok), Some(err)) => format!("result<{}, {}>", render(&ok), render(&err)),
            (Some(ok), None) => format!("result<{}>", render(&ok)),
            (None, Some(err)) => format!("result<_, {}>", render(&err)),
            (None, None) => "result".to_owned(),
        },
        Type::Record(record) => {
            format!(
                "record {{ {} }}",
                join(record.fields().map(|f| format!("{}: {}", f.name, render(&f.ty))).collect())
            )
        }
        Type::Tuple(tuple) => format!("tuple<{}>", join(tuple.types().map(|t| render(&t)).collect())),
        Type::Variant(variant) => format!(
            "variant {{ {} }}",
            join(
                variant
                    .cases()
                    .map(|case| match &case.ty {
                        Some(ty) => format!("{}({})", case.name, render(ty)),
                        None => case.name.to_owned(),
                    })
                    .collect()
            )
        ),
        Type::Enum(e) => format!("enum {{ {} }}", join(e.names().map(str::to_owned).collect())),
        Type::Flags(flags) => format!("flags {{ {} }}", join(flags.names().map(str::to_owned).collect())),
        _ => "<resource, map, future or stream>".to_owned(),
    }
}

/// A function type in WIT-like syntax, without parameter names.
fn render_func(func: &ComponentFunc) -> String {
    let params: Vec<String> = func.params().map(|(_, ty)| render(&ty)).collect();
    let results: Vec<String> = func.results().map(|ty| render(&ty)).collect();
    match results.as_slice() {
        [] => format!("func({})", params.join(", ")),
        [one] => format!("func({}) -> {one}", params.join(", ")),
        _ => format!("func({}) -> ({})", params.join(", "), results.join(", ")),
    }
}

/// Rejects anything that is not a WebAssembly component by its header.
pub(crate) fn check_header(bytes: &[u8]) -> Result<()> {
    match bytes.get(..8) {
        Some(header) if header == COMPONENT_HEADER => Ok(()),
        Some(header) if header == CORE_MODULE_HEADER => Err(Error::Invalid(
            "this is a core WebAssembly module, not a component: build for wasm32-wasip2 (or wrap it with \
             `wasm-tools component new`)"
                .to_owned(),
        )),
        Some(header) if header.starts_with(b"\0asm") => {
            Err(Error::Invalid("this WebAssembly binary has an unsupported version or layer".to_owned()))
        }
        _ => Err(Error::Invalid("this is not a WebAssembly component (the header is not `\\0asm`)".to_owned())),
    }
}

/// Checks the component's imports and exports against the world, then type-checks it against
/// the linker and the generated export bindings.
pub(crate) fn check_world(
    engine: &Engine,
    linker: &Linker<CallState>,
    component: &Component,
) -> Result<McpServerPre<CallState>> {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        if name.starts_with("wasi:sockets/") {
            return Err(Error::Invalid(format!(
                "import `{name}` is not available to Berth servers: make outbound requests with wasi:http"
            )));
        }
        if !ALLOWED_IMPORTS.iter().any(|prefix| name.starts_with(prefix)) {
            return Err(Error::Invalid(format!("import `{name}` is not available to Berth servers")));
        }
    }

    let Some(export) = ty.get_export(engine, SERVER_INTERFACE) else {
        let other = ty.exports(engine).map(|(name, _)| name).find(|name| name.starts_with("berth:mcp/server@"));
        return Err(Error::Invalid(match other {
            Some(other) => format!("the component exports {other}, but Berth supports {SERVER_INTERFACE}"),
            None => format!("the component does not export {SERVER_INTERFACE}"),
        }));
    };
    let ComponentItem::ComponentInstance(instance) = export.ty else {
        return Err(Error::Invalid(format!("the export {SERVER_INTERFACE} is not an interface instance")));
    };
    let expected = expected_functions();
    let missing: Vec<String> = expected
        .iter()
        .filter(|(function, _)| instance.get_export(engine, function).is_none())
        .map(|(function, _)| format!("`{function}`"))
        .collect();
    match missing.len() {
        0 => {}
        1 => return Err(Error::Invalid(format!("missing export {} in {SERVER_INTERFACE}", missing.join("")))),
        _ => return Err(Error::Invalid(format!("missing exports {} in {SERVER_INTERFACE}", missing.join(", ")))),
    }
    for (function, signature) in &expected {
        let found = match instance.get_export(engine, function).map(|export| export.ty) {
            Some(ComponentItem::ComponentFunc(func)) => render_func(&func),
            _ => "not a function".to_owned(),
        };
        if found != *signature {
            return Err(Error::Invalid(format!(
                "`{function}` in {SERVER_INTERFACE} has the wrong type: expected {signature}, found {found}"
            )));
        }
    }

    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| Error::Invalid(format!("the component's imports do not match what Berth provides: {e:#}")))?;
    McpServerPre::new(pre).map_err(|e| Error::Invalid(format!("{SERVER_INTERFACE} does not match the world: {e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_components_from_modules_and_garbage() {
        assert!(check_header(&COMPONENT_HEADER).is_ok());
        let Err(Error::Invalid(module)) = check_header(&CORE_MODULE_HEADER) else { panic!("a module passed") };
        assert!(module.contains("core WebAssembly module"), "{module}");
        let Err(Error::Invalid(garbage)) = check_header(b"#!/bin/sh\necho hi") else { panic!("garbage passed") };
        assert!(garbage.contains("not a WebAssembly component"), "{garbage}");
        assert!(check_header(b"\0as").is_err());
    }
}
