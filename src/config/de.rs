//! A serde `Deserializer` over a parsed TOML table that reports where it
//! failed.
//!
//! The config sections derive `Deserialize`; this deserializer feeds them a
//! `toml::Table` (a file's table with the ENV overlay applied) and, on
//! failure, returns the key path and what was expected, without the
//! decorations of toml's own errors. The loader then names the file or ENV
//! variable and shows the value, which it looks up itself (so that it can
//! redact secrets).
//!
//! Contract for the types deserialized: every field takes its value through
//! a `config::syntax` helper, whose custom error text is the "expected ..."
//! half of the message; `deny_unknown_fields` errors come back as
//! [`DeErrorKind::UnknownKey`]. Imports nothing of the config folder.

use std::fmt;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

/// Why deserializing failed, and at which key path (outermost first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeError {
    pub path: Vec<String>,
    pub kind: DeErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeErrorKind {
    /// The value at `path` is not what its key takes: "expected ...".
    Expected(String),
    /// The last key of `path` is not one of these.
    UnknownKey(&'static [&'static str]),
}

impl DeError {
    fn within(mut self, key: &str) -> Self {
        self.path.insert(0, key.to_string());
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.join(".");
        match &self.kind {
            DeErrorKind::Expected(e) => write!(f, "{path}: {e}"),
            DeErrorKind::UnknownKey(known) => {
                write!(
                    f,
                    "unknown key {path}: expected one of {}",
                    known.join(", ")
                )
            }
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            path: Vec::new(),
            kind: DeErrorKind::Expected(msg.to_string()),
        }
    }

    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        // The key itself is added to the path by the map that read it.
        DeError {
            path: Vec::new(),
            kind: DeErrorKind::UnknownKey(expected),
        }
    }
}

/// Deserializes `T` from a table.
pub(crate) fn from_table<T: DeserializeOwned>(table: &toml::Table) -> Result<T, DeError> {
    T::deserialize(TableDe(table))
}

/// The keys a derived `Deserialize` struct takes, in declaration order
/// (what `deny_unknown_fields` accepts), for the tests that keep the docs
/// in step with the structs.
#[cfg(test)]
pub(crate) fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe;
    #[derive(Debug)]
    struct Fields(&'static [&'static str]);
    impl fmt::Display for Fields {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }
    impl std::error::Error for Fields {}
    impl de::Error for Fields {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Fields(&[])
        }
    }
    impl<'de> de::Deserializer<'de> for Probe {
        type Error = Fields;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Fields(fields)) => fields,
        Ok(_) => &[],
    }
}

/// The root: a table.
struct TableDe<'a>(&'a toml::Table);

impl<'de, 'a> de::Deserializer<'de> for TableDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_map(MapDe {
            entries: Box::new(self.0.iter()),
            value: None,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// Any value; self-describing, like TOML itself.
pub(crate) struct ValueDe<'a>(&'a toml::Value);

/// A deserializer for one value, for the tests of the syntax helpers.
#[cfg(test)]
pub(crate) fn value_de(v: &toml::Value) -> ValueDe<'_> {
    ValueDe(v)
}

impl<'de, 'a> de::Deserializer<'de> for ValueDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            toml::Value::String(s) => visitor.visit_str(s),
            toml::Value::Integer(n) => visitor.visit_i64(*n),
            toml::Value::Float(x) => visitor.visit_f64(*x),
            toml::Value::Boolean(b) => visitor.visit_bool(*b),
            toml::Value::Datetime(d) => visitor.visit_string(d.to_string()),
            toml::Value::Array(items) => visitor.visit_seq(SeqDe {
                items: items.iter().enumerate(),
            }),
            toml::Value::Table(t) => TableDe(t).deserialize_any(visitor),
        }
    }

    /// A key that is present has a value: absent keys never get here.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct MapDe<'a> {
    entries: Box<dyn Iterator<Item = (&'a String, &'a toml::Value)> + 'a>,
    /// The entry whose key was just read.
    value: Option<(&'a String, &'a toml::Value)>,
}

impl<'de, 'a> de::MapAccess<'de> for MapDe<'a> {
    type Error = DeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some((key, value));
        let key_de: de::value::StrDeserializer<'_, DeError> = key.as_str().into_deserializer();
        seed.deserialize(key_de)
            .map(Some)
            .map_err(|e| e.within(key))
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DeError> {
        let (key, value) = self
            .value
            .take()
            .expect("serde reads a value after its key");
        seed.deserialize(ValueDe(value)).map_err(|e| e.within(key))
    }
}

struct SeqDe<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, toml::Value>>,
}

impl<'de, 'a> de::SeqAccess<'de> for SeqDe<'a> {
    type Error = DeError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some((index, item)) = self.items.next() else {
            return Ok(None);
        };
        seed.deserialize(ValueDe(item))
            .map(Some)
            .map_err(|e| e.within(&format!("[{index}]")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        n: i64,
        list: Vec<String>,
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Outer {
        name: Option<String>,
        inner: Inner,
    }

    fn parse<T: DeserializeOwned>(text: &str) -> Result<T, DeError> {
        from_table(&text.parse::<toml::Table>().unwrap())
    }

    #[test]
    fn values_land_in_fields() {
        let o: Outer = parse("name = \"x\"\n[inner]\nn = 3\nlist = [\"a\"]\n").unwrap();
        assert_eq!(o.name.as_deref(), Some("x"));
        assert_eq!(
            o.inner,
            Inner {
                n: 3,
                list: vec!["a".into()]
            }
        );
        assert_eq!(parse::<Outer>("").unwrap(), Outer::default());
    }

    #[test]
    fn errors_carry_the_key_path() {
        let e = parse::<Outer>("[inner]\nm = 1\n").unwrap_err();
        assert_eq!(e.path, ["inner", "m"]);
        assert_eq!(e.kind, DeErrorKind::UnknownKey(&["n", "list"]));
        let e = parse::<Outer>("[inner]\nlist = [\"a\", 2]\n").unwrap_err();
        assert_eq!(e.path, ["inner", "list", "[1]"]);
        assert!(matches!(e.kind, DeErrorKind::Expected(_)));
    }

    #[test]
    fn field_names_in_declaration_order() {
        assert_eq!(field_names::<Inner>(), ["n", "list"]);
        assert_eq!(field_names::<Outer>(), ["name", "inner"]);
    }
}
