//! Transport URLs: `driver://[user[:pass]@]host[:port][,...]/[virtual_host][?query]`.
//!
//! Parsed with oslo.messaging's rules (`overview.md` §2.3): several hosts
//! separated by commas, each with its own optional credentials; IPv6
//! literals in brackets; percent-decoding of user, password and virtual
//! host; repeated query keys joined with `,`. Passwords never appear in
//! `Debug` or `Display` output; use [`TransportUrl::to_string_with_secrets`]
//! when the real URL is needed.

use crate::{Error, Result};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Characters Python's `urllib.parse.quote` leaves alone (`safe='/'` plus the
/// always-safe `_.-~`).
const QUOTE_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-').remove(b'~');
/// Like [`QUOTE_SET`] but keeping `/` (the default of `quote`).
const QUOTE_PATH_SET: &AsciiSet = &QUOTE_SET.remove(b'/');

/// A password (or other secret) whose `Debug` and `Display` print `****`.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret string.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself. Call only where it must be used (authenticating);
    /// never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

/// One broker address of a transport URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TransportHost {
    /// Host name or address; IPv6 without brackets; lower case.
    pub hostname: String,
    /// Port, when given.
    pub port: Option<u16>,
    /// User name, when given (percent-decoded).
    pub username: Option<String>,
    /// Password, when given (percent-decoded).
    pub password: Option<Secret>,
}

impl TransportHost {
    /// A host without credentials.
    pub fn new(hostname: impl Into<String>, port: Option<u16>) -> Self {
        TransportHost {
            hostname: hostname.into(),
            port,
            username: None,
            password: None,
        }
    }

    /// `host:port` for connecting, with IPv6 addresses in brackets and
    /// `default_port` when the URL gave none.
    pub fn address(&self, default_port: u16) -> String {
        format!("{}:{}", self.bracketed_host(), self.port.unwrap_or(default_port))
    }

    fn bracketed_host(&self) -> String {
        if self.hostname.contains(':') {
            format!("[{}]", self.hostname)
        } else {
            self.hostname.clone()
        }
    }

    fn write(&self, out: &mut String, with_secrets: bool) {
        if let Some(user) = &self.username {
            out.extend(utf8_percent_encode(user, QUOTE_SET).map(|s| s.to_owned()));
            if let Some(pass) = &self.password {
                out.push(':');
                if with_secrets {
                    out.extend(utf8_percent_encode(pass.expose(), QUOTE_SET).map(|s| s.to_owned()));
                } else {
                    out.push_str("****");
                }
            }
            out.push('@');
        }
        out.push_str(&self.bracketed_host());
        if let Some(port) = self.port {
            out.push(':');
            out.push_str(&port.to_string());
        }
    }
}

/// A parsed transport URL.
///
/// ```
/// use om_core::TransportUrl;
/// let url: TransportUrl = "rabbit://u1:p1@h1:5672,u2:p2@h2:5673/vh?a=1&a=2".parse().unwrap();
/// assert_eq!(url.driver(), "rabbit");
/// assert_eq!(url.hosts.len(), 2);
/// assert_eq!(url.virtual_host.as_deref(), Some("vh"));
/// assert_eq!(url.query.get("a").map(String::as_str), Some("1,2"));
/// assert_eq!(url.to_string(), "rabbit://u1:****@h1:5672,u2:****@h2:5673/vh?a=1%2C2");
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct TransportUrl {
    /// The whole scheme, e.g. `rabbit` or `kombu+memory`.
    pub transport: String,
    /// The virtual host: `None` without a path, `Some("")` for `/`.
    pub virtual_host: Option<String>,
    /// Broker addresses, in URL order.
    pub hosts: Vec<TransportHost>,
    /// Query parameters (driver option overrides), repeated keys joined with `,`.
    pub query: BTreeMap<String, String>,
}

impl TransportUrl {
    /// Parses a transport URL; see the module documentation for the grammar.
    pub fn parse(s: &str) -> Result<Self> {
        parse(s)
    }

    /// The driver name: the scheme up to the first `+` (`kombu+memory` →
    /// `kombu`).
    pub fn driver(&self) -> &str {
        self.transport.split('+').next().unwrap_or(&self.transport)
    }

    /// The URL with passwords in clear text, for handing to a client
    /// library. Never log it.
    pub fn to_string_with_secrets(&self) -> String {
        self.render(true)
    }

    fn render(&self, with_secrets: bool) -> String {
        let mut out = format!("{}://", self.transport);
        for (i, h) in self.hosts.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            h.write(&mut out, with_secrets);
        }
        out.push('/');
        if let Some(vh) = &self.virtual_host {
            out.extend(utf8_percent_encode(vh, QUOTE_PATH_SET).map(|s| s.to_owned()));
        }
        if !self.query.is_empty() {
            out.push('?');
            let mut ser = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &self.query {
                ser.append_pair(k, v);
            }
            out.push_str(&ser.finish());
        }
        out
    }
}

impl fmt::Display for TransportUrl {
    /// The URL with passwords replaced by `****`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl fmt::Debug for TransportUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransportUrl({})", self.render(false))
    }
}

impl FromStr for TransportUrl {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        parse(s)
    }
}

/// Masks anything that looks like a password in a URL-ish string
/// (`user:secret@` → `user:****@`), for error messages about URLs that did
/// not parse.
pub fn mask_password(s: &str) -> String {
    let Some(scheme_end) = s.find("://") else {
        return s.to_owned();
    };
    let (head, rest) = s.split_at(scheme_end + 3);
    let netloc_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (netloc, tail) = rest.split_at(netloc_end);
    let masked: Vec<String> = netloc
        .split(',')
        .map(|piece| match piece.rfind('@') {
            Some(at) => {
                let creds = &piece[..at];
                let user = creds.split(':').next().unwrap_or("");
                if creds.contains(':') {
                    format!("{user}:****{}", &piece[at..])
                } else {
                    piece.to_owned()
                }
            }
            None => piece.to_owned(),
        })
        .collect();
    format!("{head}{}{tail}", masked.join(","))
}

fn invalid(url: &str, reason: impl Into<String>) -> Error {
    Error::InvalidTransportUrl {
        url: mask_password(url),
        reason: reason.into(),
    }
}

fn decode(url: &str, part: &str, what: &str) -> Result<String> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| invalid(url, format!("the {what} is not valid UTF-8 after percent-decoding")))
}

fn parse(s: &str) -> Result<TransportUrl> {
    if s.trim().is_empty() {
        return Err(invalid(s, "the URL is empty"));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(s, "the URL contains white space or control characters"));
    }
    let colon = s
        .find(':')
        .ok_or_else(|| invalid(s, "no scheme: a transport URL starts with `driver://`"))?;
    let scheme = &s[..colon];
    if scheme.is_empty() {
        return Err(invalid(s, "no scheme: a transport URL starts with `driver://`"));
    }
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
        return Err(invalid(
            s,
            format!("bad scheme {scheme:?}: it must start with a letter and hold only letters, digits, `+`, `-` and `.`"),
        ));
    }
    let mut rest = &s[colon + 1..];
    // Drop the fragment, as urlparse does.
    if let Some(h) = rest.find('#') {
        rest = &rest[..h];
    }
    let (before_query, query) = match rest.find('?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    let (netloc, path) = if let Some(after) = before_query.strip_prefix("//") {
        match after.find('/') {
            Some(p) => (&after[..p], &after[p..]),
            None => (after, ""),
        }
    } else {
        ("", before_query)
    };

    let virtual_host = if let Some(vh) = path.strip_prefix('/') {
        Some(decode(s, vh, "virtual host")?)
    } else if path.is_empty() {
        None
    } else {
        return Err(invalid(
            s,
            format!("unexpected text {path:?} after the scheme: write `{scheme}://host/...`"),
        ));
    };

    let mut hosts = Vec::new();
    for piece in netloc.split(',').filter(|p| !p.is_empty()) {
        hosts.push(parse_host(s, piece)?);
    }

    let mut query_map: BTreeMap<String, String> = BTreeMap::new();
    if let Some(q) = query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            // parse_qs drops blank values by default.
            if v.is_empty() {
                continue;
            }
            if k.is_empty() {
                return Err(invalid(s, "a query parameter has an empty name"));
            }
            query_map
                .entry(k.into_owned())
                .and_modify(|e| {
                    e.push(',');
                    e.push_str(&v);
                })
                .or_insert_with(|| v.into_owned());
        }
    }

    Ok(TransportUrl {
        transport: scheme.to_owned(),
        virtual_host,
        hosts,
        query: query_map,
    })
}

fn parse_host(url: &str, piece: &str) -> Result<TransportHost> {
    let (creds, hostport) = match piece.rfind('@') {
        Some(at) => (Some(&piece[..at]), &piece[at + 1..]),
        None => (None, piece),
    };
    let (username, password) = match creds {
        Some(c) => match c.find(':') {
            Some(i) => (
                Some(decode(url, &c[..i], "user name")?),
                Some(Secret(decode(url, &c[i + 1..], "password")?)),
            ),
            None => (Some(decode(url, c, "user name")?), None),
        },
        None => (None, None),
    };
    let (hostname, port_str) = if let Some(inner) = hostport.strip_prefix('[') {
        let close = inner
            .find(']')
            .ok_or_else(|| invalid(url, format!("unclosed `[` in host {hostport:?}")))?;
        let addr = &inner[..close];
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid(url, format!("{addr:?} in brackets is not an IPv6 address")));
        }
        let after = &inner[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => {
                return Err(invalid(url, format!("unexpected {after:?} after the IPv6 address")))
            }
        };
        (addr.to_ascii_lowercase(), port)
    } else {
        if hostport.contains(['[', ']']) {
            return Err(invalid(url, format!("misplaced bracket in host {hostport:?}")));
        }
        match hostport.split_once(':') {
            Some((h, p)) => {
                if p.contains(':') {
                    return Err(invalid(
                        url,
                        format!("{hostport:?} has several `:`; write IPv6 addresses in brackets, e.g. [::1]:5672"),
                    ));
                }
                (h.to_ascii_lowercase(), Some(p))
            }
            None => (hostport.to_ascii_lowercase(), None),
        }
    };
    if hostname.is_empty() {
        return Err(invalid(url, format!("empty host name in {:?}", mask_password(&format!("x://{piece}")).trim_start_matches("x://"))));
    }
    if let Some(bad) = hostname
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%')))
    {
        return Err(invalid(url, format!("host name {hostname:?} contains {bad:?}")));
    }
    let port = match port_str {
        None | Some("") => None,
        Some(p) => {
            if !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(url, format!("port {p:?} of host {hostname:?} is not a number")));
            }
            Some(p.parse::<u16>().map_err(|_| {
                invalid(url, format!("port {p} of host {hostname:?} is out of range 0-65535"))
            })?)
        }
    };
    Ok(TransportHost {
        hostname,
        port,
        username,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_from_the_spec() {
        let u = TransportUrl::parse("rabbit://").unwrap();
        assert!(u.hosts.is_empty());
        assert_eq!(u.virtual_host, None);
        assert_eq!(TransportUrl::parse("rabbit:///").unwrap().virtual_host.as_deref(), Some(""));
        let u = TransportUrl::parse("rabbit://h1,h2/").unwrap();
        assert_eq!(u.hosts.len(), 2);
        let u = TransportUrl::parse("rabbit://u:p%40x@[::1]:5672/%2F").unwrap();
        assert_eq!(u.hosts[0].hostname, "::1");
        assert_eq!(u.hosts[0].port, Some(5672));
        assert_eq!(u.hosts[0].password.as_ref().map(Secret::expose), Some("p@x"));
        assert_eq!(u.virtual_host.as_deref(), Some("/"));
        assert_eq!(TransportUrl::parse("rabbit://h//").unwrap().virtual_host.as_deref(), Some("/"));
        assert_eq!(TransportUrl::parse("kombu+memory:////").unwrap().driver(), "kombu");
        assert!(TransportUrl::parse("foo:").unwrap().hosts.is_empty());
    }

    #[test]
    fn password_never_printed() {
        let u = TransportUrl::parse("rabbit://user:s3cret@h/").unwrap();
        assert!(!format!("{u}").contains("s3cret"));
        assert!(!format!("{u:?}").contains("s3cret"));
        assert!(u.to_string_with_secrets().contains("s3cret"));
        let e = TransportUrl::parse("rabbit://user:s3cret@h:99999/").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(!format!("{e:?}").contains("s3cret"));
    }
}
