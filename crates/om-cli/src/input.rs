//! JSON arguments given inline, as `@FILE`, or as `-` (standard input),
//! with errors that say which argument failed and where.

use crate::error::CliError;
use om::core::JsonObject;
use serde_json::Value;
use std::io::Read;

/// Where a JSON text came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Inline,
    File(String),
    Stdin,
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Inline => "given on the command line".to_owned(),
            Source::File(p) => format!("read from file {p}"),
            Source::Stdin => "read from standard input".to_owned(),
        }
    }
}

/// Reads the text of a JSON argument: `-` is standard input, `@path` a
/// file, anything else the JSON itself.
pub(crate) fn read_text(name: &str, spec: &str) -> Result<(String, Source), CliError> {
    if spec == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::usage(format!("cannot read {name} from standard input: {e}")))?;
        return Ok((s, Source::Stdin));
    }
    if let Some(path) = spec.strip_prefix('@') {
        let s = std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("cannot read {name} from file {path}: {e}")))?;
        return Ok((s, Source::File(path.to_owned())));
    }
    Ok((spec.to_owned(), Source::Inline))
}

/// Parses `text` as JSON; the error names the argument, its source, the
/// line and column, and shows the line with a caret under the position.
pub(crate) fn parse(name: &str, text: &str, source: &Source) -> Result<Value, CliError> {
    serde_json::from_str::<Value>(text).map_err(|e| {
        let (line, column) = (e.line(), e.column());
        let mut msg = format!(
            "invalid JSON in {name} ({}), line {line}, column {column}: {}",
            source.describe(),
            describe_json_error(&e)
        );
        if let Some(l) = text.lines().nth(line.saturating_sub(1)) {
            if !l.is_empty() {
                let (shown, caret) = excerpt(l, column);
                msg.push_str(&format!("\n    {shown}\n    {}^", " ".repeat(caret)));
            }
        }
        CliError::usage(msg)
    })
}

/// serde_json's message without its trailing " at line L column C".
fn describe_json_error(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// At most ~70 characters of `line` around `column` (1-based, in
/// characters... serde counts bytes; close enough for an excerpt), and the
/// caret offset within the excerpt.
fn excerpt(line: &str, column: usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    let col = column.saturating_sub(1).min(chars.len());
    let start = col.saturating_sub(50);
    let end = (col + 20).min(chars.len());
    let mut shown: String = chars[start..end].iter().collect();
    let mut caret = col - start;
    if start > 0 {
        shown.insert_str(0, "...");
        caret += 3;
    }
    if end < chars.len() {
        shown.push_str("...");
    }
    (shown, caret)
}

/// Reads and parses an optional JSON argument; `None` when not given.
pub(crate) fn json_arg(name: &str, spec: Option<&str>) -> Result<Option<Value>, CliError> {
    match spec {
        None => Ok(None),
        Some(spec) => {
            let (text, source) = read_text(name, spec)?;
            if text.trim().is_empty() {
                return Err(CliError::usage(format!(
                    "{name} is empty ({})",
                    source.describe()
                )));
            }
            parse(name, &text, &source).map(Some)
        }
    }
}

/// A JSON argument that must be an object (keyword arguments, context);
/// absent means `{}`.
pub(crate) fn object_arg(name: &str, spec: Option<&str>) -> Result<JsonObject, CliError> {
    match json_arg(name, spec)? {
        None => Ok(JsonObject::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(CliError::usage(format!(
            "{name} must be a JSON object ({{\"key\": value, ...}}), got {}",
            kind(&other)
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_argument_and_position() {
        let e = object_arg("ARGS", Some("{\"a\": 1,, \"b\": 2}")).unwrap_err();
        assert_eq!(e.code, crate::error::ExitCode::Usage);
        assert!(e.message.starts_with("invalid JSON in ARGS (given on the command line), line 1, column 9: key must be a string"), "{}", e.message);
        assert!(
            e.message
                .ends_with("\n    {\"a\": 1,, \"b\": 2}\n            ^"),
            "{}",
            e.message
        );
        let e = object_arg("--context", Some("[1, 2]")).unwrap_err();
        assert_eq!(
            e.message,
            "--context must be a JSON object ({\"key\": value, ...}), got an array"
        );
        assert!(object_arg("ARGS", None).unwrap().is_empty());
    }

    #[test]
    fn files() {
        let path = std::env::temp_dir().join(format!("om-cli-input-{}.json", std::process::id()));
        std::fs::write(&path, "{\n  \"a\": 1\n  \"b\": 2\n}\n").unwrap();
        let spec = format!("@{}", path.display());
        let e = object_arg("ARGS", Some(&spec)).unwrap_err();
        assert!(
            e.message.contains(&format!(
                "read from file {}), line 3, column 3",
                path.display()
            )),
            "{}",
            e.message
        );
        std::fs::write(&path, "{\"a\": [1, 2]}").unwrap();
        let v = object_arg("ARGS", Some(&spec)).unwrap();
        assert_eq!(v["a"], serde_json::json!([1, 2]));
        let _ = std::fs::remove_file(&path);
        let e = object_arg("ARGS", Some("@/nonexistent/om-cli.json")).unwrap_err();
        assert!(e
            .message
            .starts_with("cannot read ARGS from file /nonexistent/om-cli.json"));
    }

    #[test]
    fn long_lines_are_cut_around_the_error() {
        let text = format!("{{\"k\": \"{}\" oops}}", "x".repeat(200));
        let e = json_arg("PAYLOAD", Some(&text)).unwrap_err();
        let shown = e.message.lines().nth(1).unwrap();
        assert!(
            shown.starts_with("    ...") && shown.ends_with("oops}"),
            "{shown}"
        );
        let caret = e.message.lines().nth(2).unwrap();
        assert_eq!(caret.len(), shown.find("oops").unwrap() + 1);
    }
}
