//! Field types that accept what agents actually log.
//!
//! Agents write numbers as strings, booleans as 0/1, objects where we expect a number. One bad field
//! must cost that field only, never the event: every type here deserializes from any JSON value, and
//! what it could not use is kept as [`Bad`] so normalization can count it and say why.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Why a field's value could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// A string that does not parse as a number, e.g. `"fast"`.
    NotANumber,
    /// An object or array where a scalar belongs.
    WrongShape,
    /// A boolean where a number or text belongs.
    Boolean,
    /// A scalar or array where an object (or a list) belongs.
    NotAnObject,
}

impl Bad {
    pub fn describe(self) -> &'static str {
        match self {
            Bad::NotANumber => "text that is not a number",
            Bad::WrongShape => "an object or array where a scalar belongs",
            Bad::Boolean => "a boolean where a number belongs",
            Bad::NotAnObject => "not an object (or list) as the contract expects",
        }
    }
}

/// A number as logged: JSON number, numeric string, or something unusable.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Num {
    #[default]
    Missing,
    Value(f64),
    Bad(Bad),
}

impl Num {
    pub fn is_missing(&self) -> bool {
        matches!(self, Num::Missing)
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Num, E> {
                Ok(Num::Value(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Num, E> {
                Ok(Num::Value(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Num, E> {
                Ok(Num::Value(v as f64))
            }
            fn visit_str<E>(self, v: &str) -> Result<Num, E> {
                Ok(match v.trim().parse::<f64>() {
                    Ok(n) => Num::Value(n),
                    Err(_) => Num::Bad(Bad::NotANumber),
                })
            }
            fn visit_bool<E>(self, _: bool) -> Result<Num, E> {
                Ok(Num::Bad(Bad::Boolean))
            }
            fn visit_unit<E>(self) -> Result<Num, E> {
                Ok(Num::Missing)
            }
            fn visit_none<E>(self) -> Result<Num, E> {
                Ok(Num::Missing)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Num, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Num::Bad(Bad::WrongShape))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Num, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Num::Bad(Bad::WrongShape))
            }
        }
        d.deserialize_any(V)
    }
}

/// Text as logged: strings borrowed from the message where possible; numbers and booleans are
/// written as text (ids are sometimes logged as numbers); objects and arrays are unusable.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Text<'a> {
    #[default]
    Missing,
    Value(Cow<'a, str>),
    Bad(Bad),
}

impl<'a> Text<'a> {
    /// The text, if present, non-blank and usable.
    pub fn get(&self) -> Option<&str> {
        match self {
            Text::Value(s) if !s.trim().is_empty() => Some(s.as_ref()),
            _ => None,
        }
    }

    pub fn to_owned_string(&self) -> Option<String> {
        self.get().map(str::to_owned)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text::Value(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text::Value(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text::Value(Cow::Owned(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Text<'a>, E> {
                Ok(Text::Value(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Text<'a>, E> {
                Ok(Text::Value(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Text<'a>, E> {
                Ok(Text::Value(Cow::Owned(v.to_string())))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Text<'a>, E> {
                Ok(Text::Value(Cow::Borrowed(if v { "true" } else { "false" })))
            }
            fn visit_unit<E>(self) -> Result<Text<'a>, E> {
                Ok(Text::Missing)
            }
            fn visit_none<E>(self) -> Result<Text<'a>, E> {
                Ok(Text::Missing)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Text<'a>, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text::Bad(Bad::WrongShape))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Text<'a>, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text::Bad(Bad::WrongShape))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// An event time as logged: epoch seconds as a number, or text (ISO-8601, or a number as text).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Stamp<'a> {
    #[default]
    Missing,
    Epoch(f64),
    Text(Cow<'a, str>),
    Bad(Bad),
}

impl<'de: 'a, 'a> Deserialize<'de> for Stamp<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Stamp<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Stamp<'a>, E> {
                Ok(Stamp::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Stamp<'a>, E> {
                Ok(Stamp::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Stamp<'a>, E> {
                Ok(Stamp::Epoch(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Stamp<'a>, E> {
                Ok(Stamp::Epoch(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Stamp<'a>, E> {
                Ok(Stamp::Epoch(v as f64))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Stamp<'a>, E> {
                Ok(Stamp::Bad(Bad::Boolean))
            }
            fn visit_unit<E>(self) -> Result<Stamp<'a>, E> {
                Ok(Stamp::Missing)
            }
            fn visit_none<E>(self) -> Result<Stamp<'a>, E> {
                Ok(Stamp::Missing)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Stamp<'a>, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Stamp::Bad(Bad::WrongShape))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Stamp<'a>, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Stamp::Bad(Bad::WrongShape))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl Stamp<'_> {
    /// Epoch milliseconds within 2000..2100, if the value is a time.
    pub fn millis(&self) -> Option<i64> {
        match self {
            Stamp::Epoch(n) => crate::timefmt::from_epoch(*n),
            Stamp::Text(t) => crate::timefmt::parse_event_time(t),
            Stamp::Missing | Stamp::Bad(_) => None,
        }
    }
}

/// A value that is skipped, whatever it is.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Skipped;

impl<'de> Deserialize<'de> for Skipped {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Skipped)
    }
}

/// A boolean as logged: `true`, `"true"`, `1`, `"yes"`…
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Flag {
    #[default]
    Missing,
    Value(bool),
    Bad(Bad),
}

impl Flag {
    pub fn get(self) -> Option<bool> {
        match self {
            Flag::Value(b) => Some(b),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag::Value(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Flag, E> {
                Ok(match v {
                    0 => Flag::Value(false),
                    1 => Flag::Value(true),
                    _ => Flag::Bad(Bad::NotANumber),
                })
            }
            fn visit_u64<E>(self, v: u64) -> Result<Flag, E> {
                Ok(match v {
                    0 => Flag::Value(false),
                    1 => Flag::Value(true),
                    _ => Flag::Bad(Bad::NotANumber),
                })
            }
            fn visit_f64<E>(self, v: f64) -> Result<Flag, E> {
                Ok(if v == 0.0 {
                    Flag::Value(false)
                } else if v == 1.0 {
                    Flag::Value(true)
                } else {
                    Flag::Bad(Bad::NotANumber)
                })
            }
            fn visit_str<E>(self, v: &str) -> Result<Flag, E> {
                Ok(match v.trim().to_ascii_lowercase().as_str() {
                    "true" | "yes" | "1" | "success" | "ok" => Flag::Value(true),
                    "false" | "no" | "0" | "failure" | "failed" | "error" => Flag::Value(false),
                    _ => Flag::Bad(Bad::NotANumber),
                })
            }
            fn visit_unit<E>(self) -> Result<Flag, E> {
                Ok(Flag::Missing)
            }
            fn visit_none<E>(self) -> Result<Flag, E> {
                Ok(Flag::Missing)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Flag, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Flag::Bad(Bad::WrongShape))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Flag, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Flag::Bad(Bad::WrongShape))
            }
        }
        d.deserialize_any(V)
    }
}

/// A nested object that deserializes into `T` when it is an object and is otherwise kept as
/// unusable, so that `"llm": "n/a"` costs the `llm` block only.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Obj<T> {
    #[default]
    Missing,
    Value(T),
    Bad(Bad),
}

impl<T> Obj<T> {
    pub fn get(&self) -> Option<&T> {
        match self {
            Obj::Value(v) => Some(v),
            _ => None,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(m)).map(Obj::Value)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Obj<T>, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Obj::Bad(Bad::NotAnObject))
            }
            fn visit_unit<E>(self) -> Result<Obj<T>, E> {
                Ok(Obj::Missing)
            }
            fn visit_none<E>(self) -> Result<Obj<T>, E> {
                Ok(Obj::Missing)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Obj<T>, E> {
                Ok(Obj::Bad(Bad::NotAnObject))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Obj<T>, E> {
                Ok(Obj::Bad(Bad::NotAnObject))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Obj<T>, E> {
                Ok(Obj::Bad(Bad::NotAnObject))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Obj<T>, E> {
                Ok(Obj::Bad(Bad::NotAnObject))
            }
            fn visit_str<E>(self, _: &str) -> Result<Obj<T>, E> {
                Ok(Obj::Bad(Bad::NotAnObject))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A key that holds an object in one family and a name in another: `"llm": {"ttft": …}` in a
/// `voice_metrics` event, `"llm": "livekit.plugins.openai.llm.LLM"` (the provider's label) in
/// LiveKit's retry lines.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Block<'a, T> {
    #[default]
    Missing,
    Value(T),
    Label(Cow<'a, str>),
    Bad(Bad),
}

impl<T> Block<'_, T> {
    pub fn get(&self) -> Option<&T> {
        match self {
            Block::Value(v) => Some(v),
            _ => None,
        }
    }

    /// The name, when the key holds one.
    pub fn label(&self) -> Option<&str> {
        match self {
            Block::Label(s) if !s.trim().is_empty() => Some(s.as_ref()),
            _ => None,
        }
    }

    /// Why the key is unusable where an object belongs.
    pub fn not_an_object(&self) -> Option<Bad> {
        match self {
            Block::Label(_) => Some(Bad::NotAnObject),
            Block::Bad(b) => Some(*b),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for Block<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a, T>(std::marker::PhantomData<(&'a (), T)>);
        impl<'de: 'a, 'a, T: Deserialize<'de>> Visitor<'de> for V<'a, T> {
            type Value = Block<'a, T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Block<'a, T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(m)).map(Block::Value)
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Block<'a, T>, E> {
                Ok(Block::Label(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Block<'a, T>, E> {
                Ok(Block::Label(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Block<'a, T>, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Block::Bad(Bad::NotAnObject))
            }
            fn visit_unit<E>(self) -> Result<Block<'a, T>, E> {
                Ok(Block::Missing)
            }
            fn visit_none<E>(self) -> Result<Block<'a, T>, E> {
                Ok(Block::Missing)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Block<'a, T>, E> {
                Ok(Block::Bad(Bad::NotAnObject))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Block<'a, T>, E> {
                Ok(Block::Bad(Bad::NotAnObject))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Block<'a, T>, E> {
                Ok(Block::Bad(Bad::NotAnObject))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Block<'a, T>, E> {
                Ok(Block::Bad(Bad::NotAnObject))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A list whose elements are objects of `T`; elements that are not objects are counted, not fatal.
#[derive(Debug, Clone, PartialEq)]
pub struct List<T> {
    pub items: Vec<T>,
    /// Elements that were not objects, plus 1 if the value itself was not an array.
    pub unusable: usize,
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List { items: Vec::new(), unusable: 0 }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<List<T>, A::Error> {
                let mut out = List::default();
                while let Some(item) = s.next_element::<Obj<T>>()? {
                    match item {
                        Obj::Value(v) => out.items.push(v),
                        Obj::Missing | Obj::Bad(_) => out.unusable += 1,
                    }
                }
                Ok(out)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<List<T>, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(List { items: Vec::new(), unusable: 1 })
            }
            fn visit_unit<E>(self) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_none<E>(self) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<List<T>, E> {
                Ok(List { items: Vec::new(), unusable: 1 })
            }
            fn visit_f64<E>(self, _: f64) -> Result<List<T>, E> {
                Ok(List { items: Vec::new(), unusable: 1 })
            }
            fn visit_i64<E>(self, _: i64) -> Result<List<T>, E> {
                Ok(List { items: Vec::new(), unusable: 1 })
            }
            fn visit_u64<E>(self, _: u64) -> Result<List<T>, E> {
                Ok(List { items: Vec::new(), unusable: 1 })
            }
            fn visit_str<E>(self, _: &str) -> Result<List<T>, E> {
                Ok(List { items: Vec::new(), unusable: 1 })
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Probe<'a> {
        n: Num,
        #[serde(borrow)]
        t: Text<'a>,
        f: Flag,
        o: Obj<Inner>,
        l: List<Inner>,
    }

    #[derive(Deserialize, Default, Debug, PartialEq)]
    #[serde(default)]
    struct Inner {
        x: Num,
    }

    fn probe(s: &str) -> Probe<'_> {
        serde_json::from_str(s).expect("lenient types accept any value")
    }

    #[test]
    fn numbers_accept_numeric_strings_and_flag_the_rest() {
        assert_eq!(probe(r#"{"n": 0.35}"#).n, Num::Value(0.35));
        assert_eq!(probe(r#"{"n": 12}"#).n, Num::Value(12.0));
        assert_eq!(probe(r#"{"n": " 0.5 "}"#).n, Num::Value(0.5));
        assert_eq!(probe(r#"{"n": "fast"}"#).n, Num::Bad(Bad::NotANumber));
        assert_eq!(probe(r#"{"n": true}"#).n, Num::Bad(Bad::Boolean));
        assert_eq!(probe(r#"{"n": {"a": [1, 2]}}"#).n, Num::Bad(Bad::WrongShape));
        assert_eq!(probe(r#"{"n": [1]}"#).n, Num::Bad(Bad::WrongShape));
        assert_eq!(probe(r#"{"n": null}"#).n, Num::Missing);
        assert!(matches!(probe(r#"{"n": "NaN"}"#).n, Num::Value(v) if v.is_nan()));
    }

    #[test]
    fn text_borrows_plain_strings_and_stringifies_scalars() {
        let p = probe(r#"{"t": "room-1"}"#);
        assert!(matches!(p.t, Text::Value(Cow::Borrowed("room-1"))));
        assert_eq!(probe(r#"{"t": 42}"#).t.get(), Some("42"));
        assert_eq!(probe(r#"{"t": "a\"b"}"#).t.get(), Some("a\"b"));
        assert_eq!(probe(r#"{"t": "   "}"#).t.get(), None);
        assert_eq!(probe(r#"{"t": {"x": 1}}"#).t, Text::Bad(Bad::WrongShape));
    }

    #[test]
    fn flags_accept_common_spellings() {
        assert_eq!(probe(r#"{"f": "yes"}"#).f, Flag::Value(true));
        assert_eq!(probe(r#"{"f": 0}"#).f, Flag::Value(false));
        assert_eq!(probe(r#"{"f": "maybe"}"#).f, Flag::Bad(Bad::NotANumber));
    }

    #[test]
    fn objects_and_lists_of_the_wrong_shape_cost_only_themselves() {
        let p = probe(r#"{"o": "n/a", "l": [{"x": 1}, 7, {"x": "2"}], "n": 3}"#);
        assert_eq!(p.o, Obj::Bad(Bad::NotAnObject));
        assert_eq!(p.l.items, vec![Inner { x: Num::Value(1.0) }, Inner { x: Num::Value(2.0) }]);
        assert_eq!(p.l.unusable, 1);
        assert_eq!(p.n, Num::Value(3.0));
        assert_eq!(probe(r#"{"l": "none"}"#).l.unusable, 1);
    }
}
