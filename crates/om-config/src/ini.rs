//! An INI reader with oslo.config's rules (`oslo_config/iniparser.py`).
//!
//! Why not the `config` crate's own INI format: it goes through `rust-ini`
//! with its default options and then keeps one value per key and one table
//! per section name, which loses what oslo files rely on:
//!
//! * a key given several times in a section (multi-valued options such as
//!   `[oslo_messaging_notifications] driver`) keeps only its last value,
//!   and a section written twice in one file keeps only its second half;
//! * backslashes are treated as escapes (`C:\x` becomes `C:x`) and indented
//!   continuation lines are rejected.
//!
//! So files are read here, then handed to the `config` crate as ready-made
//! tables (see `loader.rs`), which still does the layering of files,
//! environment and overrides. The rules, as oslo's:
//!
//! * `#` and `;` start a comment only at the beginning of a line; there are
//!   no inline comments (`a = 1 # x` has the value `1 # x`).
//! * `key = value` or `key: value`, split at whichever of `=` and `:` comes
//!   first, so values may contain `=` and `:`; key and value are trimmed and
//!   one pair of matching surrounding quotes (`"..."` or `'...'`) is removed.
//! * A line starting with a space or tab continues the previous value (the
//!   parts are joined with a newline); a blank line ends it.
//! * `[DEFAULT]` is case-sensitive; every other section name is lower-cased
//!   (oslo looks groups up case-insensitively).
//! * An assignment before the first section, a section line without `]`, an
//!   empty section name or an empty key is an error naming the file and line.

use crate::{ConfigError, ConfigErrorKind};
use std::path::{Path, PathBuf};

/// One `key = value` of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IniEntry {
    /// The section, normalised (`DEFAULT` kept, others lower-cased).
    pub section: String,
    /// The key, as written (trimmed).
    pub key: String,
    /// The value, trimmed, quotes removed, continuation lines joined by `\n`.
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// A parsed file: its entries in file order.
#[derive(Debug, Clone)]
pub(crate) struct IniDocument {
    pub path: PathBuf,
    pub entries: Vec<IniEntry>,
}

/// oslo's group-name normalisation: `DEFAULT` stays, the rest is lower-cased.
pub(crate) fn normalize_section(name: &str) -> String {
    if name == "DEFAULT" {
        name.to_owned()
    } else {
        name.to_lowercase()
    }
}

fn parse_error(path: &Path, line: usize, message: &str, text: &str) -> ConfigError {
    ConfigErrorKind::Parse {
        path: path.to_owned(),
        line,
        message: message.to_owned(),
        text: text.to_owned(),
    }
    .into()
}

fn split_key_value<'a>(
    path: &Path,
    lineno: usize,
    line: &'a str,
) -> Result<(&'a str, String), ConfigError> {
    let at = match (line.find(':'), line.find('=')) {
        (None, None) => {
            return Err(parse_error(
                path,
                lineno,
                "No ':' or '=' found in assignment",
                line,
            ))
        }
        (Some(c), None) => c,
        (None, Some(e)) => e,
        (Some(c), Some(e)) => c.min(e),
    };
    let key = line[..at].trim();
    let mut value = line[at + 1..].trim();
    if value.len() >= 2 {
        let first = value.as_bytes()[0];
        let last = value.as_bytes()[value.len() - 1];
        if first == last && (first == b'"' || first == b'\'') {
            value = &value[1..value.len() - 1];
        }
    }
    Ok((key, value.to_owned()))
}

/// Parses INI text with oslo's rules; `path` is used in error messages.
pub(crate) fn parse(path: &Path, text: &str) -> Result<IniDocument, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries = Vec::new();
    let mut section: Option<String> = None;
    // The assignment being read: (key, value parts, line).
    let mut pending: Option<(String, Vec<String>, usize)> = None;

    let flush = |pending: &mut Option<(String, Vec<String>, usize)>,
                 section: &Option<String>,
                 entries: &mut Vec<IniEntry>|
     -> Result<(), ConfigError> {
        if let Some((key, parts, line)) = pending.take() {
            let Some(section) = section else {
                return Err(parse_error(
                    path,
                    line,
                    "Section must be started before assignment",
                    &key,
                ));
            };
            entries.push(IniEntry {
                section: section.clone(),
                key,
                value: parts.join("\n"),
                line,
            });
        }
        Ok(())
    };

    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = raw.trim_end();
        if line.is_empty() {
            flush(&mut pending, &section, &mut entries)?;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match pending.as_mut() {
                Some((_, parts, _)) => parts.push(line.trim_start().to_owned()),
                None => {
                    return Err(parse_error(
                        path,
                        lineno,
                        "Unexpected continuation line",
                        line,
                    ))
                }
            }
            continue;
        }
        flush(&mut pending, &section, &mut entries)?;
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(parse_error(
                    path,
                    lineno,
                    "Invalid section (must end with ])",
                    line,
                ));
            };
            if name.is_empty() {
                return Err(parse_error(path, lineno, "Empty section name", line));
            }
            section = Some(normalize_section(name));
        } else if line.starts_with(['#', ';']) {
            // Comment.
        } else {
            let (key, value) = split_key_value(path, lineno, line)?;
            if key.is_empty() {
                return Err(parse_error(path, lineno, "Key cannot be empty", line));
            }
            pending = Some((key.to_owned(), vec![value], lineno));
        }
    }
    flush(&mut pending, &section, &mut entries)?;
    Ok(IniDocument {
        path: path.to_owned(),
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Vec<(String, String, String, usize)> {
        parse(Path::new("t.conf"), text)
            .map(|d| {
                d.entries
                    .into_iter()
                    .map(|e| (e.section, e.key, e.value, e.line))
                    .collect()
            })
            .unwrap_or_else(|e| panic!("parse failed: {e}"))
    }

    #[test]
    fn oslo_rules() {
        let got = p("# c\n; c\n[DEFAULT]\na = 1 # not a comment\nb: x=y:z\nc = \"quoted\"\nd='q'\ne = \"unbalanced'\n[Oslo_Messaging_Rabbit]\nk = v1\n  v2\n\tv3\n\nk = again\n");
        assert_eq!(
            got,
            vec![
                ("DEFAULT".into(), "a".into(), "1 # not a comment".into(), 4),
                ("DEFAULT".into(), "b".into(), "x=y:z".into(), 5),
                ("DEFAULT".into(), "c".into(), "quoted".into(), 6),
                ("DEFAULT".into(), "d".into(), "q".into(), 7),
                ("DEFAULT".into(), "e".into(), "\"unbalanced'".into(), 8),
                (
                    "oslo_messaging_rabbit".into(),
                    "k".into(),
                    "v1\nv2\nv3".into(),
                    10
                ),
                (
                    "oslo_messaging_rabbit".into(),
                    "k".into(),
                    "again".into(),
                    14
                ),
            ]
        );
    }

    #[test]
    fn equals_before_colon_and_colon_before_equals() {
        let got = p("[DEFAULT]\ntransport_url = rabbit://u:p=w@h:5672/\na:b = c\n");
        assert_eq!(got[0].2, "rabbit://u:p=w@h:5672/");
        assert_eq!((got[1].1.as_str(), got[1].2.as_str()), ("a", "b = c"));
    }

    #[test]
    fn default_is_case_sensitive_other_sections_are_not() {
        let got = p("[default]\na=1\n[DEFAULT]\nb=2\n[FOO]\nc=3\n");
        assert_eq!(got[0].0, "default");
        assert_eq!(got[1].0, "DEFAULT");
        assert_eq!(got[2].0, "foo");
    }

    #[test]
    fn errors_name_file_and_line() {
        for (text, msg, line) in [
            ("a = 1\n", "Section must be started before assignment", 1),
            ("[DEFAULT]\n\n  x\n", "Unexpected continuation line", 3),
            ("[DEFAULT\n", "Invalid section (must end with ])", 1),
            ("[]\n", "Empty section name", 1),
            (
                "[DEFAULT]\nnovalue\n",
                "No ':' or '=' found in assignment",
                2,
            ),
            ("[DEFAULT]\n= 3\n", "Key cannot be empty", 2),
        ] {
            let e = parse(Path::new("/etc/x.conf"), text).expect_err(text);
            let s = e.to_string();
            assert!(s.contains("/etc/x.conf"), "{s}");
            assert!(s.contains(msg), "{s}");
            assert!(s.contains(&format!("line {line}")), "{s}");
        }
    }
}
