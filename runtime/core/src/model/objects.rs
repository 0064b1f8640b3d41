//! Struct-typed fields read from JSON objects only.
//!
//! serde's derived `Deserialize` also reads a struct from an array of its
//! fields in order (`"limits": [null, 5]`), which no client means and the
//! OpenAPI document does not allow. A field whose type is a struct takes one
//! of these with `#[serde(deserialize_with = "…")]` (request bodies refuse a
//! top-level array in the server's JSON extractor).

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error};
use serde_json::{Map, Value};

/// `object` as a `T`; an error names the field inside it (`weight: …`).
fn from_object<T: DeserializeOwned, E: Error>(object: Map<String, Value>) -> Result<T, E> {
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| {
        let path = e.path().to_string();
        match path.as_str() {
            "." => E::custom(e.into_inner()),
            _ => E::custom(format!("{path}: {}", e.into_inner())),
        }
    })
}

/// A struct, from an object.
pub fn one<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    from_object(Map::deserialize(d)?)
}

/// An optional struct, from an object or `null` (use with `#[serde(default)]`
/// for an absent field).
pub fn optional<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<Map<String, Value>>::deserialize(d)?
        .map(from_object)
        .transpose()
}

/// A list of structs, from an array of objects.
pub fn many<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    Vec::<Map<String, Value>>::deserialize(d)?
        .into_iter()
        .enumerate()
        .map(|(i, object)| {
            from_object(object).map_err(|e: D::Error| D::Error::custom(format!("[{i}].{e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        a: Option<u32>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer {
        #[serde(deserialize_with = "super::one")]
        one: Inner,
        #[serde(default, deserialize_with = "super::optional")]
        optional: Option<Inner>,
        #[serde(default, deserialize_with = "super::many")]
        many: Vec<Inner>,
    }

    fn read(value: serde_json::Value) -> Result<Outer, serde_json::Error> {
        serde_json::from_value(value)
    }

    #[test]
    fn objects_are_read_and_arrays_refused() {
        let outer = read(json!({"one": {"a": 1}, "optional": null, "many": [{"a": 2}]})).unwrap();
        assert_eq!(outer.one, Inner { a: Some(1) });
        assert_eq!(outer.optional, None);
        assert_eq!(outer.many, [Inner { a: Some(2) }]);
        assert!(read(json!({"one": {"a": 1}})).unwrap().many.is_empty());
        // What serde alone would take as the fields in order:
        assert!(read(json!({"one": [1]})).is_err());
        assert!(read(json!({"one": {}, "optional": [1]})).is_err());
        let error = read(json!({"one": {}, "many": [{}, [1]]})).unwrap_err();
        assert!(
            error.to_string().contains("invalid type: sequence"),
            "{error}"
        );
        // An error inside a struct names its field.
        let error = read(json!({"one": {}, "many": [{}, {"a": "x"}]})).unwrap_err();
        assert!(
            error.to_string().starts_with("[1].a: invalid type"),
            "{error}"
        );
    }
}
