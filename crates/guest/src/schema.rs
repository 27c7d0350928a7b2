//! JSON Schemas (draft 2020-12, MCP's default dialect) for tool inputs and outputs, from
//! `schemars`.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

fn root_schema<T: JsonSchema>() -> Map<String, Value> {
    let schema = SchemaSettings::draft2020_12().into_generator().into_root_schema_for::<T>();
    let mut map = match schema.to_value() {
        Value::Object(map) => map,
        // `true` (anything goes) or `false`: as an object schema, that is `{}` / `{"not": {}}`.
        Value::Bool(true) => Map::new(),
        _ => Map::from_iter([("not".to_owned(), json!({}))]),
    };
    map.remove("$schema");
    map
}

/// The input schema for arguments of type `T`: a JSON Schema object with `"type": "object"`
/// and `properties` (added when `T`'s schema lacks them), without `$schema` and the generated
/// `title`.
pub fn input_schema<T: JsonSchema>() -> Value {
    let mut map = root_schema::<T>();
    map.remove("title");
    map.entry("type").or_insert_with(|| json!("object"));
    if map.get("type") == Some(&json!("object")) {
        map.entry("properties").or_insert_with(|| json!({}));
    }
    Value::Object(map)
}

/// The output schema for a structured result of type `T` (without `$schema` and the type's
/// `title`), and whether values are wrapped as
/// `{"result": value}` (when `T`'s schema is not an object schema: numbers, strings, arrays,
/// enums, options).
pub(crate) fn output_schema<T: JsonSchema>() -> (Value, bool) {
    let mut map = root_schema::<T>();
    map.remove("title");
    if map.get("type") == Some(&json!("object")) {
        return (Value::Object(map), false);
    }
    let defs = map.remove("$defs");
    let mut wrapper = Map::new();
    wrapper.insert("type".to_owned(), json!("object"));
    wrapper.insert("properties".to_owned(), json!({ "result": Value::Object(map) }));
    wrapper.insert("required".to_owned(), json!(["result"]));
    if let Some(defs) = defs {
        wrapper.insert("$defs".to_owned(), defs);
    }
    (Value::Object(wrapper), true)
}

/// Whether structured values of type `T` are wrapped as `{"result": value}`.
pub(crate) fn is_wrapped<T: JsonSchema>() -> bool {
    root_schema::<T>().get("type") != Some(&json!("object"))
}

#[cfg(test)]
mod tests {
    use schemars::JsonSchema;

    use super::*;

    #[derive(JsonSchema)]
    #[allow(dead_code)]
    struct Point {
        /// Across.
        x: f64,
        y: Option<f64>,
    }

    #[test]
    fn input_schemas_are_objects_without_title() {
        let schema = input_schema::<Point>();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["properties"]["x"]["description"], "Across.");
        assert_eq!(schema["required"], json!(["x"]));
        assert!(schema.get("title").is_none() && schema.get("$schema").is_none(), "{schema}");
    }

    #[test]
    fn map_arguments_get_an_object_schema() {
        let schema = input_schema::<Map<String, Value>>();
        assert_eq!(schema["type"], "object");
        let schema = input_schema::<Value>();
        assert_eq!(schema, json!({"type": "object", "properties": {}}));
    }

    #[test]
    fn scalar_outputs_are_wrapped_in_result() {
        let (schema, wrapped) = output_schema::<f64>();
        assert!(wrapped);
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["properties"]["result"]["type"], "number");
        assert_eq!(schema["required"], json!(["result"]));
        let (schema, wrapped) = output_schema::<Point>();
        assert!(!wrapped);
        assert_eq!(schema["properties"]["x"]["type"], "number");
    }

    #[test]
    fn wrapped_outputs_keep_their_definitions_at_the_root() {
        let (schema, wrapped) = output_schema::<Vec<Point>>();
        assert!(wrapped);
        assert!(schema["$defs"]["Point"].is_object(), "{schema}");
        assert_eq!(schema["properties"]["result"]["items"]["$ref"], "#/$defs/Point");
    }
}
