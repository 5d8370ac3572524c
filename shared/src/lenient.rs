//! Field types that accept what agents actually log.
//!
//! Agents write numbers as strings, booleans as 0/1, objects where we expect a number. One bad field
//! must cost that field only, never the event: every type here deserializes from any JSON value, and
//! what it could not use is kept as [`Bad`] so normalization can count it and say why.

use std::borrow::Cow;
use std::fmt;

use std::marker::PhantomData;

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
pub enum Number {
    #[default]
    Missing,
    Value(f64),
    Bad(Bad),
}

impl Number {
    pub fn is_missing(&self) -> bool {
        matches!(self, Number::Missing)
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

/// An event time as logged: epoch seconds as a number, or text (ISO-8601, or a number as text).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Stamp<'a> {
    #[default]
    Missing,
    Epoch(f64),
    Text(Cow<'a, str>),
    Bad(Bad),
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

/// A nested object that deserializes into `T` when it is an object and is otherwise kept as
/// unusable, so that `"llm": "n/a"` costs the `llm` block only.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Object<T> {
    #[default]
    Missing,
    Value(T),
    Bad(Bad),
}

impl<T> Object<T> {
    pub fn get(&self) -> Option<&T> {
        match self {
            Object::Value(v) => Some(v),
            _ => None,
        }
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

/// A JSON number as the deserializer gives it.
#[derive(Debug, Clone, Copy)]
enum JsonNumber {
    Float(f64),
    Int(i64),
    UInt(u64),
}

impl JsonNumber {
    fn as_f64(self) -> f64 {
        match self {
            JsonNumber::Float(v) => v,
            JsonNumber::Int(v) => v as f64,
            JsonNumber::UInt(v) => v as f64,
        }
    }

    /// As text, integers whole: ids are sometimes logged as numbers beyond f64's precision.
    fn to_text(self) -> String {
        match self {
            JsonNumber::Float(v) => v.to_string(),
            JsonNumber::Int(v) => v.to_string(),
            JsonNumber::UInt(v) => v.to_string(),
        }
    }
}

/// How a lenient type takes each kind of JSON value. A kind it does not take is skipped and
/// becomes [`Lenient::unusable`]; null is [`Lenient::missing`]. One visitor ([`LenientVisitor`])
/// serves every type, so that they differ only in what they take.
trait Lenient<'de>: Sized {
    fn missing() -> Self;
    fn unusable() -> Self;
    fn number(_: JsonNumber) -> Self {
        Self::unusable()
    }
    fn text(_: Cow<'de, str>) -> Self {
        Self::unusable()
    }
    fn flag(_: bool) -> Self {
        Self::unusable()
    }
    fn object<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Self::unusable())
    }
    fn list<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Self::unusable())
    }
}

struct LenientVisitor<T>(PhantomData<T>);

impl<'de, T: Lenient<'de>> Visitor<'de> for LenientVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_f64<E>(self, v: f64) -> Result<T, E> {
        Ok(T::number(JsonNumber::Float(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<T, E> {
        Ok(T::number(JsonNumber::Int(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<T, E> {
        Ok(T::number(JsonNumber::UInt(v)))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<T, E> {
        Ok(T::text(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<T, E> {
        Ok(T::text(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<T, E> {
        Ok(T::text(Cow::Owned(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<T, E> {
        Ok(T::flag(v))
    }
    fn visit_unit<E>(self) -> Result<T, E> {
        Ok(T::missing())
    }
    fn visit_none<E>(self) -> Result<T, E> {
        Ok(T::missing())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::object(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::list(seq)
    }
}

// Every lenient type deserializes through the one visitor.
impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor(PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor(PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Stamp<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor(PhantomData))
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor(PhantomData))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor(PhantomData))
    }
}

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for Block<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor(PhantomData))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor(PhantomData))
    }
}

impl<'de> Lenient<'de> for Number {
    fn missing() -> Number {
        Number::Missing
    }
    fn unusable() -> Number {
        Number::Bad(Bad::WrongShape)
    }
    fn number(n: JsonNumber) -> Number {
        Number::Value(n.as_f64())
    }
    fn text(s: Cow<'de, str>) -> Number {
        match s.trim().parse::<f64>() {
            Ok(n) => Number::Value(n),
            Err(_) => Number::Bad(Bad::NotANumber),
        }
    }
    fn flag(_: bool) -> Number {
        Number::Bad(Bad::Boolean)
    }
}

impl<'de: 'a, 'a> Lenient<'de> for Text<'a> {
    fn missing() -> Self {
        Text::Missing
    }
    fn unusable() -> Self {
        Text::Bad(Bad::WrongShape)
    }
    fn number(n: JsonNumber) -> Self {
        Text::Value(Cow::Owned(n.to_text()))
    }
    fn text(s: Cow<'de, str>) -> Self {
        Text::Value(s)
    }
    fn flag(b: bool) -> Self {
        Text::Value(Cow::Borrowed(if b { "true" } else { "false" }))
    }
}

impl<'de: 'a, 'a> Lenient<'de> for Stamp<'a> {
    fn missing() -> Self {
        Stamp::Missing
    }
    fn unusable() -> Self {
        Stamp::Bad(Bad::WrongShape)
    }
    fn number(n: JsonNumber) -> Self {
        Stamp::Epoch(n.as_f64())
    }
    fn text(s: Cow<'de, str>) -> Self {
        Stamp::Text(s)
    }
    fn flag(_: bool) -> Self {
        Stamp::Bad(Bad::Boolean)
    }
}

impl<'de> Lenient<'de> for Flag {
    fn missing() -> Flag {
        Flag::Missing
    }
    fn unusable() -> Flag {
        Flag::Bad(Bad::WrongShape)
    }
    fn number(n: JsonNumber) -> Flag {
        let v = n.as_f64();
        if v == 0.0 {
            Flag::Value(false)
        } else if v == 1.0 {
            Flag::Value(true)
        } else {
            Flag::Bad(Bad::NotANumber)
        }
    }
    fn text(s: Cow<'de, str>) -> Flag {
        match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "success" | "ok" => Flag::Value(true),
            "false" | "no" | "0" | "failure" | "failed" | "error" => Flag::Value(false),
            _ => Flag::Bad(Bad::NotANumber),
        }
    }
    fn flag(b: bool) -> Flag {
        Flag::Value(b)
    }
}

impl<'de, T: Deserialize<'de>> Lenient<'de> for Object<T> {
    fn missing() -> Self {
        Object::Missing
    }
    fn unusable() -> Self {
        Object::Bad(Bad::NotAnObject)
    }
    fn object<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Object::Value)
    }
}

impl<'de: 'a, 'a, T: Deserialize<'de>> Lenient<'de> for Block<'a, T> {
    fn missing() -> Self {
        Block::Missing
    }
    fn unusable() -> Self {
        Block::Bad(Bad::NotAnObject)
    }
    fn text(s: Cow<'de, str>) -> Self {
        Block::Label(s)
    }
    fn object<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Block::Value)
    }
}

impl<'de, T: Deserialize<'de>> Lenient<'de> for List<T> {
    fn missing() -> Self {
        List::default()
    }
    /// Not an array: counted as one unusable element.
    fn unusable() -> Self {
        List { items: Vec::new(), unusable: 1 }
    }
    fn list<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut out = List::default();
        while let Some(item) = seq.next_element::<Object<T>>()? {
            match item {
                Object::Value(v) => out.items.push(v),
                Object::Missing | Object::Bad(_) => out.unusable += 1,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Probe<'a> {
        n: Number,
        #[serde(borrow)]
        t: Text<'a>,
        f: Flag,
        o: Object<Inner>,
        l: List<Inner>,
    }

    #[derive(Deserialize, Default, Debug, PartialEq)]
    #[serde(default)]
    struct Inner {
        x: Number,
    }

    fn probe(s: &str) -> Probe<'_> {
        serde_json::from_str(s).expect("lenient types accept any value")
    }

    #[test]
    fn numbers_accept_numeric_strings_and_flag_the_rest() {
        assert_eq!(probe(r#"{"n": 0.35}"#).n, Number::Value(0.35));
        assert_eq!(probe(r#"{"n": 12}"#).n, Number::Value(12.0));
        assert_eq!(probe(r#"{"n": " 0.5 "}"#).n, Number::Value(0.5));
        assert_eq!(probe(r#"{"n": "fast"}"#).n, Number::Bad(Bad::NotANumber));
        assert_eq!(probe(r#"{"n": true}"#).n, Number::Bad(Bad::Boolean));
        assert_eq!(probe(r#"{"n": {"a": [1, 2]}}"#).n, Number::Bad(Bad::WrongShape));
        assert_eq!(probe(r#"{"n": [1]}"#).n, Number::Bad(Bad::WrongShape));
        assert_eq!(probe(r#"{"n": null}"#).n, Number::Missing);
        assert!(matches!(probe(r#"{"n": "NaN"}"#).n, Number::Value(v) if v.is_nan()));
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
        assert_eq!(p.o, Object::Bad(Bad::NotAnObject));
        assert_eq!(p.l.items, vec![Inner { x: Number::Value(1.0) }, Inner { x: Number::Value(2.0) }]);
        assert_eq!(p.l.unusable, 1);
        assert_eq!(p.n, Number::Value(3.0));
        assert_eq!(probe(r#"{"l": "none"}"#).l.unusable, 1);
    }
}
