//! The oslo message envelope and Python-compatible JSON encoding.
//!
//! RabbitMQ and Kafka bodies are JSON. RPC traffic and `messagingv2`
//! notifications use the **2.0 envelope**:
//! `{"oslo.version": "2.0", "oslo.message": "<inner JSON as a string>"}`;
//! the `messaging` notifier sends the bare object (format 1.0). Receivers
//! accept both ([`decode`]).
//!
//! [`to_python_json`] writes JSON the way Python's `json.dumps` does by
//! default, so om's bytes equal the Python library's for the same message
//! (checked against bodies captured from oslo.messaging 18.3.1 in
//! `tests/python_fixtures.rs`):
//!
//! * `", "` and `": "` separators, keys in the map's (insertion) order;
//! * everything outside printable ASCII escaped (`ensure_ascii`): `\n`,
//!   `\r`, `\t`, `\b`, `\f`, `\"`, `\\` in short form, other control
//!   characters, DEL and non-ASCII as `\uXXXX` (lower-case hex, UTF-16
//!   surrogate pairs beyond the BMP); `/` is not escaped;
//! * floats as Python's `repr`: shortest round-trip digits, `1.0`, `1e+16`,
//!   `1.5e-07`, `1000000000000000.0`, `-0.0`.
//!
//! Limits of the JSON data model om shares with serde_json: integers must
//! fit in 64 bits (larger ones are read as floats), non-finite floats are
//! written as `null` (Python writes the non-JSON `NaN`/`Infinity`, which
//! [`decode`] rejects, as it rejects strings with unpaired surrogates).

use crate::{Error, JsonObject, Result};
use serde::Serialize;
use serde_json::Value;
use std::io;

/// Key of the envelope version.
pub const VERSION_KEY: &str = "oslo.version";
/// Key of the enveloped message string.
pub const MESSAGE_KEY: &str = "oslo.message";
/// The envelope version om emits.
pub const ENVELOPE_VERSION: &str = "2.0";

/// Prefix of flattened context keys on RabbitMQ (`_context_<key>`).
pub const CONTEXT_PREFIX: &str = "_context_";

/// How a 2.0 body starts and ends as Python's `json.dumps` and om write it,
/// with the escaped message in between.
const ENVELOPE_HEAD: &[u8] = b"{\"oslo.version\": \"2.0\", \"oslo.message\": \"";
const ENVELOPE_TAIL: &[u8] = b"\"}";

/// Message format: 2.0 (enveloped) or 1.0 (bare object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Bare JSON object (`messaging` notification driver).
    V1,
    /// `{"oslo.version": "2.0", "oslo.message": "..."}` (everything else).
    #[default]
    V2,
}

/// A serde_json formatter that writes like Python's `json.dumps` defaults.
///
/// With `nested`, it writes the same JSON already escaped as the content of
/// a JSON string: the form the message takes inside the 2.0 envelope. Only
/// `"` and `\` need that second escape (Python-style output is printable
/// ASCII), and the formatter emits both itself (string delimiters and
/// escapes), so escaping them as they are written gives the envelope in one
/// pass, without encoding the message first and escaping it after.
#[derive(Debug, Default, Clone, Copy)]
struct PythonFormatter {
    nested: bool,
}

impl PythonFormatter {
    /// Writes `bytes`, which may contain `"` or `\`, escaping those when
    /// nested. Only escapes and raw fragments go through here; they are short.
    fn write_special<W: ?Sized + io::Write>(&self, writer: &mut W, bytes: &[u8]) -> io::Result<()> {
        if !self.nested {
            return writer.write_all(bytes);
        }
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'"' || b == b'\\' {
                writer.write_all(&bytes[start..i])?;
                writer.write_all(b"\\")?;
                start = i;
            }
        }
        writer.write_all(&bytes[start..])
    }
}

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_string<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(if self.nested { b"\\\"" } else { b"\"" })
    }

    fn end_string<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.begin_string(writer)
    }

    fn write_raw_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        self.write_special(writer, fragment.as_bytes())
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        let abs = value.abs();
        let sci = closest_shortest(
            format!("{abs:e}"),
            |digits| format!("{abs:.digits$e}"),
            |s| s.parse::<f64>().ok() == Some(abs),
        );
        write_python_float(writer, value.is_sign_negative(), &sci)
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        let abs = value.abs();
        let sci = closest_shortest(
            format!("{abs:e}"),
            |digits| format!("{abs:.digits$e}"),
            |s| s.parse::<f32>().ok() == Some(abs),
        );
        write_python_float(writer, value.is_sign_negative(), &sci)
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // serde_json has already split out the characters JSON itself must
        // escape; here non-ASCII and DEL must become \uXXXX, as Python's
        // `ensure_ascii` escapes everything outside ' '..='~'. Most strings
        // are plain ASCII: find the first byte that needs work in one pass.
        let bytes = fragment.as_bytes();
        let Some(first) = bytes.iter().position(|&b| b >= 0x7f) else {
            return writer.write_all(bytes);
        };
        writer.write_all(&bytes[..first])?;
        let rest = &fragment[first..];
        let mut start = 0;
        for (i, c) in rest.char_indices() {
            if c.is_ascii() && c != '\x7f' {
                continue;
            }
            writer.write_all(&rest.as_bytes()[start..i])?;
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                self.write_special(writer, &u_escape(*unit))?;
            }
            start = i + c.len_utf8();
        }
        writer.write_all(&rest.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        use serde_json::ser::CharEscape::*;
        let s: &[u8] = match char_escape {
            Quote => b"\\\"",
            ReverseSolidus => b"\\\\",
            Solidus => b"/",
            Backspace => b"\\b",
            FormFeed => b"\\f",
            LineFeed => b"\\n",
            CarriageReturn => b"\\r",
            Tab => b"\\t",
            AsciiControl(byte) => return self.write_special(writer, &u_escape(u16::from(byte))),
        };
        self.write_special(writer, s)
    }
}

/// `\uXXXX` with lower-case hex digits, as Python writes it.
fn u_escape(unit: u16) -> [u8; 6] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let nibble = |shift: u16| HEX[usize::from((unit >> shift) & 0xf)];
    [b'\\', b'u', nibble(12), nibble(8), nibble(4), nibble(0)]
}

/// Python's `repr` uses the fewest digits that read back as the same float
/// and, when several strings of that length do, the one *closest* to the
/// float's exact value (ties to even). Rust's `{:e}` finds the same length
/// but not always the closest string (`1845343564543737.25` gives `…7.3`
/// where Python writes `…7.2`). So: take the length from `shortest`, format
/// correctly rounded to that many digits with `exact`, and keep that when it
/// still reads back (`round_trips`); else keep `shortest`.
fn closest_shortest(
    shortest: String,
    exact: impl Fn(usize) -> String,
    round_trips: impl Fn(&str) -> bool,
) -> String {
    let mantissa = shortest.split('e').next().unwrap_or("");
    let n = mantissa.bytes().filter(u8::is_ascii_digit).count();
    if n > 1 {
        let closest = exact(n - 1);
        if closest != shortest && round_trips(&closest) {
            return closest;
        }
    }
    shortest
}

/// Writes a finite float the way Python's `repr(float)` does (which is what
/// `json.dumps` uses): the shortest digits that round-trip, in positional
/// notation with at least one decimal (`1.0`, `0.0001`,
/// `1000000000000000.0`) while the decimal exponent is in -4..16, else in
/// scientific notation with a signed, at least two-digit exponent (`1e+16`,
/// `1.5e-07`).
///
/// `sci` is Rust's `{:e}` rendering of the absolute value (shortest
/// round-trip digits, e.g. `1.5e-7`).
fn write_python_float<W: ?Sized + io::Write>(
    writer: &mut W,
    negative: bool,
    sci: &str,
) -> io::Result<()> {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let n = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    // Position of the decimal point relative to the start of `digits`.
    let decpt = exp + 1;
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if decpt <= -4 || decpt > 16 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exp < 0 { '-' } else { '+' };
        out.push_str(&format!("e{sign}{:02}", exp.unsigned_abs()));
    } else if decpt <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', decpt.unsigned_abs() as usize));
        out.push_str(&digits);
    } else if decpt >= n {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (decpt - n) as usize));
        out.push_str(".0");
    } else {
        let (int, frac) = digits.split_at(decpt as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
    writer.write_all(out.as_bytes())
}

/// Encodes `value` as JSON bytes exactly as Python's `json.dumps(value)`
/// would (for the JSON data model; key order is the map's order).
pub fn to_python_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter::default());
    value.serialize(&mut ser)?;
    Ok(out)
}

/// `{"oslo.version": "2.0", "oslo.message": "<value as JSON>"}`, the bytes
/// `to_python_json` gives for the envelope object, written in one pass (this
/// runs for every message sent).
fn to_envelope<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(ENVELOPE_HEAD);
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, PythonFormatter { nested: true });
    value.serialize(&mut ser)?;
    out.extend_from_slice(ENVELOPE_TAIL);
    Ok(out)
}

/// Same as [`to_python_json`], as a `String`.
pub fn to_python_json_string<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    // Python-style JSON output is pure ASCII, hence valid UTF-8.
    String::from_utf8(to_python_json(value)?).map_err(|e| Error::Serialization(e.to_string()))
}

/// Encodes a message in the given format.
pub fn encode(message: &JsonObject, format: Format) -> Result<Vec<u8>> {
    match format {
        Format::V1 => to_python_json(message),
        Format::V2 => to_envelope(message),
    }
}

/// Like [`encode`] for any serializable message (a struct with the
/// message's keys in order), without building a [`JsonObject`] first.
pub fn encode_as<T: Serialize + ?Sized>(message: &T, format: Format) -> Result<Vec<u8>> {
    match format {
        Format::V1 => to_python_json(message),
        Format::V2 => to_envelope(message),
    }
}

/// Decodes a body of either format into `T` (a struct naming the keys it
/// needs). Bodies that [`decode`] accepts and that fit `T` decode the same
/// way through both; a body that does not fit `T` (a missing or mistyped
/// key) is an error, so that callers can fall back to
/// [`decode`] and look at the message themselves.
pub fn decode_as<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    if let Some(inner) = unwrap_common_envelope(body) {
        if let Ok(inner) = serde_json::from_slice::<T>(&inner) {
            return Ok(inner);
        }
    }
    if let Ok(env) = serde_json::from_slice::<EnvelopeRef<'_>>(body) {
        if env.version == ENVELOPE_VERSION
            || crate::version::is_compatible(Some(ENVELOPE_VERSION), Some(&env.version))
        {
            if let Ok(inner) = serde_json::from_str::<T>(&env.message) {
                return Ok(inner);
            }
        }
    }
    let obj = decode(body)?;
    serde_json::from_value(Value::Object(obj))
        .map_err(|e| Error::MalformedMessage(format!("unexpected message layout: {e}")))
}

/// Decodes a body of either format (`wire-rabbit.md` §4.3):
/// an object with both envelope keys is unwrapped after checking the version
/// is compatible with 2.0; anything else must be a bare JSON object.
pub fn decode(body: &[u8]) -> Result<JsonObject> {
    decode_with_format(body).map(|(message, _)| message)
}

/// [`decode`], also telling whether the body was a 2.0 envelope.
fn decode_with_format(body: &[u8]) -> Result<(JsonObject, Format)> {
    if let Some(inner) = unwrap_common_envelope(body) {
        if let Ok(inner) = serde_json::from_slice::<JsonObject>(&inner) {
            return Ok((inner, Format::V2));
        }
    }
    // Next fastest: exactly the two envelope keys, a string version, a string
    // message, an object inside. Anything else (bare 1.0 bodies, extra keys,
    // odd types, errors) takes the general path below, which gives the
    // precise error.
    if let Ok(env) = serde_json::from_slice::<EnvelopeRef<'_>>(body) {
        if env.version == ENVELOPE_VERSION
            || crate::version::is_compatible(Some(ENVELOPE_VERSION), Some(&env.version))
        {
            if let Ok(inner) = serde_json::from_str::<JsonObject>(&env.message) {
                return Ok((inner, Format::V2));
            }
        }
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::MalformedMessage(format!("body is not valid JSON: {e}")))?;
    decode_value_with_format(value)
}

/// The message of a 2.0 body laid out exactly as Python's `json.dumps` and
/// om write it (the version key first, `2.0`, no extra keys or spaces),
/// unescaped: such a message is Python-style JSON, printable ASCII, so its
/// only escapes in the envelope are `\"` and `\\`, and one scan for those
/// undoes them. `None` for any other layout or escape, which the JSON
/// parser then handles (with its precise errors).
fn unwrap_common_envelope(body: &[u8]) -> Option<Vec<u8>> {
    let inner = body
        .strip_prefix(ENVELOPE_HEAD)?
        .strip_suffix(ENVELOPE_TAIL)?;
    let mut out = Vec::with_capacity(inner.len());
    // Eight bytes at a time: a word-wide test finds the first quote or
    // backslash of a word, or shows there is none. JSON inside a string has
    // a quote every few bytes, where a search call per quote costs more
    // than this scan; after 32 clean bytes (a long string value) a
    // vectorised search skips ahead.
    let (mut i, mut start, mut clean) = (0, 0, 0);
    while i < inner.len() {
        if let Some(word) = inner.get(i..i + 8) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            let found = quotes_and_backslashes(u64::from_le_bytes(bytes));
            if found == 0 {
                i += 8;
                clean += 1;
                if clean == 4 {
                    clean = 0;
                    i = memchr::memchr2(b'\\', b'"', &inner[i..]).map_or(inner.len(), |at| i + at);
                }
                continue;
            }
            // The lowest marked byte is the first match (little-endian).
            i += found.trailing_zeros() as usize / 8;
        }
        clean = 0;
        match inner[i] {
            // An unescaped quote: not one string.
            b'"' => return None,
            b'\\' => {
                let escaped = *inner.get(i + 1)?;
                if escaped != b'"' && escaped != b'\\' {
                    return None;
                }
                out.extend_from_slice(&inner[start..i]);
                out.push(escaped);
                i += 2;
                start = i;
            }
            _ => i += 1,
        }
    }
    out.extend_from_slice(&inner[start..]);
    Some(out)
}

/// A mask with the high bit set in the bytes of `word` that are `"` or
/// `\`; zero when there is none. Bytes above the first match may be
/// marked wrongly (a borrow carries upwards), the lowest marked byte never.
fn quotes_and_backslashes(word: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    zero_bytes(word ^ (ONES * u64::from(b'"'))) | zero_bytes(word ^ (ONES * u64::from(b'\\')))
}

/// The 2.0 envelope as it normally arrives, borrowed where JSON allows.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeRef<'a> {
    #[serde(rename = "oslo.version", borrow)]
    version: std::borrow::Cow<'a, str>,
    #[serde(rename = "oslo.message", borrow)]
    message: std::borrow::Cow<'a, str>,
}

/// Like [`decode`], from an already parsed JSON value.
pub fn decode_value(value: Value) -> Result<JsonObject> {
    decode_value_with_format(value).map(|(message, _)| message)
}

fn decode_value_with_format(value: Value) -> Result<(JsonObject, Format)> {
    let Value::Object(mut obj) = value else {
        return Err(Error::MalformedMessage(format!(
            "body must be a JSON object, got {}",
            crate::context::json_kind(&value)
        )));
    };
    if obj.contains_key(VERSION_KEY) && obj.contains_key(MESSAGE_KEY) {
        let version = match obj.get(VERSION_KEY) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        if version != ENVELOPE_VERSION
            && !crate::version::is_compatible(Some(ENVELOPE_VERSION), Some(&version))
        {
            return Err(Error::UnsupportedEnvelopeVersion(version));
        }
        let inner = match obj.remove(MESSAGE_KEY) {
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(Error::MalformedMessage(format!(
                    "oslo.message must be a JSON string, got {}",
                    crate::context::json_kind(&other)
                )))
            }
            None => String::new(),
        };
        let inner: Value = serde_json::from_str(&inner)
            .map_err(|e| Error::MalformedMessage(format!("oslo.message is not valid JSON: {e}")))?;
        match inner {
            Value::Object(m) => Ok((m, Format::V2)),
            other => Err(Error::MalformedMessage(format!(
                "oslo.message must hold a JSON object, got {}",
                crate::context::json_kind(&other)
            ))),
        }
    } else {
        Ok((obj, Format::V1))
    }
}

/// Adds `_context_<key>` entries for every context key (RabbitMQ packing).
pub fn pack_context_flat(message: &mut JsonObject, ctxt: &JsonObject) {
    for (k, v) in ctxt {
        message.insert(format!("{CONTEXT_PREFIX}{k}"), v.clone());
    }
}

/// Encodes what [`pack_context_flat`] and [`encode`] give for `message`
/// with `extra` entries inserted (in order) and `ctxt` packed, without
/// building that map: `message`'s entries, then `extra`, then
/// `_context_<key>` for each context entry. When `message` already holds one
/// of those keys (so inserting would replace a value in place), it builds
/// the map after all, so the bytes are always the same.
pub fn encode_flat(
    message: &JsonObject,
    extra: &[(&str, &Value)],
    ctxt: &JsonObject,
    format: Format,
) -> Result<Vec<u8>> {
    let collides = message.keys().any(|k| {
        k.starts_with('_')
            && (k.starts_with(CONTEXT_PREFIX) || extra.iter().any(|(e, _)| *e == k.as_str()))
    }) || (extra.iter().any(|(e, _)| e.starts_with(CONTEXT_PREFIX)));
    if collides {
        let mut full = message.clone();
        for (k, v) in extra {
            full.insert((*k).to_owned(), (*v).clone());
        }
        pack_context_flat(&mut full, ctxt);
        return encode(&full, format);
    }
    encode_as(
        &FlatOut {
            message,
            extra,
            ctxt,
        },
        format,
    )
}

/// The entries of [`encode_flat`], serialized in order.
struct FlatOut<'a> {
    message: &'a JsonObject,
    extra: &'a [(&'a str, &'a Value)],
    ctxt: &'a JsonObject,
}

impl Serialize for FlatOut<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let len = self.message.len() + self.extra.len() + self.ctxt.len();
        let mut map = serializer.serialize_map(Some(len))?;
        for (k, v) in self.message {
            map.serialize_entry(k, v)?;
        }
        for (k, v) in self.extra {
            map.serialize_entry(k, v)?;
        }
        for (k, v) in self.ctxt {
            map.serialize_entry(&ContextKey(k), v)?;
        }
        map.end()
    }
}

/// `_context_<key>`, written without building the string.
struct ContextKey<'a>(&'a str);

impl Serialize for ContextKey<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{CONTEXT_PREFIX}{}", self.0))
    }
}

/// Removes every `_context_<key>` entry from `message` and returns them as a
/// context (RabbitMQ unpacking).
pub fn unpack_context_flat(message: &mut JsonObject) -> JsonObject {
    let keys: Vec<String> = message
        .keys()
        .filter(|k| k.starts_with(CONTEXT_PREFIX))
        .cloned()
        .collect();
    let mut ctxt = JsonObject::with_capacity(keys.len() + 1);
    for k in keys {
        if let Some(v) = message.shift_remove(&k) {
            ctxt.insert(k[CONTEXT_PREFIX.len()..].to_owned(), v);
        }
    }
    ctxt
}

/// A flat (RabbitMQ-style) message taken apart while it is decoded: see
/// [`decode_split`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SplitMessage<const N: usize> {
    /// The `_context_<key>` entries, as `<key>`, in arrival order.
    pub ctxt: JsonObject,
    /// The entries named in `reserved`, by their position there.
    pub reserved: [Option<Value>; N],
    /// Everything else, in arrival order.
    pub message: JsonObject,
    /// How the body was laid out: a 2.0 envelope, or a bare object.
    pub format: Format,
}

/// Decodes like [`decode`] and takes the message apart in the same pass:
/// `_context_<key>` entries into [`SplitMessage::ctxt`] (what
/// [`unpack_context_flat`] does after decoding), the keys named in
/// `reserved` (a driver's own, such as `_msg_id`) into
/// [`SplitMessage::reserved`], the rest into [`SplitMessage::message`].
/// The result is the same as decoding, unpacking the context and removing
/// the reserved keys one by one; it just does not build the whole map first.
pub fn decode_split<const N: usize>(body: &[u8], reserved: &[&str; N]) -> Result<SplitMessage<N>> {
    if let Some(inner) = unwrap_common_envelope(body) {
        let mut de = serde_json::Deserializer::from_slice(&inner);
        let seed = SplitSeed { reserved };
        if let Ok(split) = serde::de::DeserializeSeed::deserialize(seed, &mut de) {
            if de.end().is_ok() {
                return Ok(split);
            }
        }
    }
    let (mut message, format) = decode_with_format(body)?;
    let ctxt = unpack_context_flat(&mut message);
    let reserved = reserved.map(|key| message.shift_remove(key));
    Ok(SplitMessage {
        ctxt,
        reserved,
        message,
        format,
    })
}

/// Deserializes a JSON object straight into a [`SplitMessage`].
struct SplitSeed<'r, const N: usize> {
    reserved: &'r [&'r str; N],
}

impl<'de, const N: usize> serde::de::DeserializeSeed<'de> for SplitSeed<'_, N> {
    type Value = SplitMessage<N>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, const N: usize> serde::de::Visitor<'de> for SplitSeed<'_, N> {
    type Value = SplitMessage<N>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut out = SplitMessage {
            ctxt: JsonObject::new(),
            reserved: std::array::from_fn(|_| None),
            message: JsonObject::with_capacity(map.size_hint().unwrap_or(8)),
            // Only the envelope fast path deserializes with this seed.
            format: Format::V2,
        };
        while let Some(mut key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            if key.starts_with(CONTEXT_PREFIX) {
                key.replace_range(..CONTEXT_PREFIX.len(), "");
                out.ctxt.insert(key, value);
            } else if let Some(i) = self.reserved.iter().position(|r| *r == key) {
                out.reserved[i] = Some(value);
            } else {
                out.message.insert(key, value);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> JsonObject {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn python_separators_and_ascii() {
        let v = json!({"a": [1, 2], "b": "é☃😀", "c": null, "d": "q\"\\/\n\u{1}"});
        let s = to_python_json_string(&v).unwrap();
        assert_eq!(
            s,
            r#"{"a": [1, 2], "b": "\u00e9\u2603\ud83d\ude00", "c": null, "d": "q\"\\/\n\u0001"}"#
        );
    }

    #[test]
    fn envelope_round_trip() {
        let m = obj(json!({"method": "echo", "args": {"x": "ü"}}));
        let body = encode(&m, Format::V2).unwrap();
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"echo\""#)
        );
        assert_eq!(decode(&body).unwrap(), m);
        let v1 = encode(&m, Format::V1).unwrap();
        assert_eq!(decode(&v1).unwrap(), m);
    }

    #[test]
    fn direct_envelope_matches_the_generic_encoding() {
        let m = obj(json!({
            "method": "echo",
            "args": {"s": "q\"uo\\te/\n\u{1}é☃😀\u{7f}", "n": [1, 2.5, null, true], "e": {}},
            "_context_user": "bob",
        }));
        let inner = to_python_json_string(&m).unwrap();
        let mut env = JsonObject::new();
        env.insert(VERSION_KEY.into(), json!(ENVELOPE_VERSION));
        env.insert(MESSAGE_KEY.into(), Value::String(inner));
        let generic = to_python_json(&env).unwrap();
        let direct = encode(&m, Format::V2).unwrap();
        assert_eq!(
            String::from_utf8(direct.clone()).unwrap(),
            String::from_utf8(generic).unwrap()
        );
        assert_eq!(decode(&direct).unwrap(), m);
    }

    #[test]
    fn envelopes_off_the_fast_path_still_decode() {
        // Keys in the other order, an extra key, a numeric version.
        let m = obj(json!({"a": 1}));
        let swapped = br#"{"oslo.message": "{\"a\": 1}", "oslo.version": "2.0"}"#;
        assert_eq!(decode(swapped).unwrap(), m);
        let extra = br#"{"oslo.version": "2.0", "oslo.message": "{\"a\": 1}", "x": 2}"#;
        assert_eq!(decode(extra).unwrap(), m);
        let e = decode(br#"{"oslo.version": 3, "oslo.message": "{}"}"#).unwrap_err();
        assert_eq!(e.oslo_name(), "UnsupportedRpcEnvelopeVersion");
        // A bare (1.0) object that happens to have one envelope key.
        let bare = br#"{"oslo.version": "2.0", "b": 1}"#;
        assert_eq!(decode(bare).unwrap().get("b"), Some(&json!(1)));
    }

    #[test]
    fn bad_envelopes_are_typed_errors() {
        let e = decode(br#"{"oslo.version": "2.1", "oslo.message": "{}"}"#).unwrap_err();
        assert_eq!(e.oslo_name(), "UnsupportedRpcEnvelopeVersion");
        assert!(decode(br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#).is_err());
        assert!(decode(br#"{"oslo.version": "2.0", "oslo.message": 5}"#).is_err());
        assert!(decode(br#"{"oslo.version": "2.0", "oslo.message": "[1]"}"#).is_err());
        assert!(decode(b"[1, 2]").is_err());
        assert!(decode(b"\xff\xfe").is_err());
        assert!(decode(br#"{"oslo.version": "2.0.0", "oslo.message": "{}"}"#).is_ok());
    }

    #[test]
    fn unescaping_finds_escapes_at_every_offset_and_rejects_bare_quotes() {
        // Escaped quotes and backslashes at each position of an 8-byte
        // word, after short and long clean runs.
        for lead in 0..40 {
            let text = format!("{}\"q\\b\\\"{}", "x".repeat(lead), "y".repeat(lead % 9));
            let m = obj(json!({ "s": text }));
            let body = encode(&m, Format::V2).unwrap();
            assert!(unwrap_common_envelope(&body).is_some(), "lead {lead}");
            assert_eq!(decode(&body).unwrap(), m, "lead {lead}");
        }
        // A bare quote in the middle: not one string, so not the fast path;
        // the general path then rejects the body (it is not JSON).
        let bare = br#"{"oslo.version": "2.0", "oslo.message": "{"a": 1}"}"#;
        assert!(unwrap_common_envelope(bare).is_none());
        assert!(decode(bare).is_err());
        // An escape other than \" or \\ leaves the fast path too (here a
        // newline, which the message's JSON reads as white space).
        let newline = br#"{"oslo.version": "2.0", "oslo.message": "{\"a\":\n1}"}"#;
        assert!(unwrap_common_envelope(newline).is_none());
        assert_eq!(decode(newline).unwrap(), obj(json!({"a": 1})));
        // A trailing lone backslash.
        assert!(
            unwrap_common_envelope(br#"{"oslo.version": "2.0", "oslo.message": "ab\"}"#).is_none()
        );
    }

    #[test]
    fn context_flattening() {
        let mut m = obj(json!({"method": "m"}));
        pack_context_flat(&mut m, &obj(json!({"user": "bob", "nested": {"a": 1}})));
        assert_eq!(m.get("_context_user"), Some(&json!("bob")));
        let ctx = unpack_context_flat(&mut m);
        assert_eq!(ctx, obj(json!({"user": "bob", "nested": {"a": 1}})));
        assert_eq!(m, obj(json!({"method": "m"})));
    }
}
