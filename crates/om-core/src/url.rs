//! Transport URLs: `driver://[user[:pass]@]host[:port][,...]/[virtual_host][?query]`.
//!
//! Parsed with the rules of oslo.messaging's `TransportURL.parse`
//! (`overview.md` §2.3), checked against the real library
//! (`tests/fixtures/transport_urls.json`, written by
//! `tests/fixtures/gen_fixtures.py`):
//!
//! * the scheme is lower-cased (`RABBIT://` → `rabbit`); `foo:` alone is a
//!   valid URL without hosts;
//! * hosts are separated by commas (empty pieces skipped), each with its own
//!   optional `user[:pass]@` (split at the *last* `@`, then the first `:`);
//!   user and password are percent-decoded, the host name is kept as
//!   written (case included);
//! * IPv6 literals go in brackets (`[::1]:5672`, zones allowed:
//!   `[fe80::1%25eth0]`); an IPv6 address without port may also be written
//!   bare (`rabbit://::1/`);
//! * the virtual host is everything after the first `/` of the path,
//!   percent-decoded (`/` → `""`, `//` → `"/"`, `/%2F` → `"/"`, no path →
//!   `None`);
//! * the query is parsed like `parse_qs`: blank values and fields without
//!   `=` are dropped, `+` is a space, repeated keys are joined with `,`;
//!   the fragment is ignored.
//!
//! om is stricter than Python where Python accepts a URL but makes nonsense
//! of it, and reports [`Error::InvalidTransportUrl`] instead: ports that are
//! not plain digits in 0-65535 (Python takes `-1`, `+5`, ` 5` or `99999`),
//! empty ports and host names (`h:`, `u:p@/`), unbracketed hosts with
//! several `:` that are not IPv6 addresses, text after `]` other than
//! `:port`, host names with characters outside letters, digits and `.-_~%`,
//! white space or control characters anywhere, text after `scheme:` that is
//! neither `//hosts` nor `/path` (`localhost:5672`), percent-escapes that do
//! not decode to UTF-8, and the empty string (which Python replaces by the
//! configured `transport_url`).
//!
//! Passwords never appear in `Debug` or `Display` output, nor in errors;
//! use [`TransportUrl::to_string_with_secrets`] when the real URL is
//! needed. That string is what Python's `str(TransportURL)` gives, except
//! that query parameters come sorted by name.

use crate::{Error, Result};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Characters Python's `urllib.parse.quote` leaves alone (`safe='/'` plus the
/// always-safe `_.-~`).
const QUOTE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');
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
    /// Host name or address as written (case kept, as Python does); IPv6
    /// addresses without brackets, with any `%zone` suffix as written.
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
        host_port(&self.hostname, self.port.unwrap_or(default_port))
    }

    fn bracketed_host(&self) -> String {
        if self.hostname.contains(':') {
            format!("[{}]", self.hostname)
        } else {
            self.hostname.clone()
        }
    }

    fn write(&self, out: &mut String, with_secrets: bool) {
        // As Python's `TransportURL.__str__`: `user`, `:pass`, then `@`
        // when either is present.
        if self.username.is_some() || self.password.is_some() {
            if let Some(user) = &self.username {
                out.extend(utf8_percent_encode(user, QUOTE_SET));
            }
            if let Some(pass) = &self.password {
                out.push(':');
                if with_secrets {
                    out.extend(utf8_percent_encode(pass.expose(), QUOTE_SET));
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

/// A broker to connect to, with the defaults oslo's drivers apply to what
/// the URL left out; see [`TransportUrl::brokers`]. `Debug` shows the
/// password as `****`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerAddress {
    /// Host name or address (`localhost` when the URL gave none).
    pub host: String,
    /// Port (the driver's default when the URL gave none).
    pub port: u16,
    /// User name (`guest` when the URL gave none or an empty one).
    pub username: String,
    /// Password (`guest` when the URL gave none or an empty one).
    pub password: Secret,
}

impl BrokerAddress {
    /// `host:port`, with IPv6 addresses in brackets: for logs and errors
    /// (never the credentials).
    pub fn label(&self) -> String {
        host_port(&self.host, self.port)
    }
}

/// `host:port`, with an IPv6 address in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
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

    /// The brokers to connect to, in URL order, with the defaults of
    /// oslo's drivers (kombu's for RabbitMQ) for what the URL leaves out:
    /// host `localhost`, port `default_port`, user and password `guest`
    /// (also for empty ones). A URL without hosts gives one such default
    /// broker.
    ///
    /// ```
    /// use om_core::TransportUrl;
    /// let url: TransportUrl = "rabbit://u:p@h1,[::1]:5673/".parse().unwrap();
    /// let brokers = url.brokers(5672);
    /// assert_eq!(brokers[0].label(), "h1:5672");
    /// assert_eq!(brokers[1].label(), "[::1]:5673");
    /// assert_eq!(brokers[1].username, "guest");
    /// let none: TransportUrl = "rabbit://".parse().unwrap();
    /// assert_eq!(none.brokers(5672)[0].label(), "localhost:5672");
    /// ```
    pub fn brokers(&self, default_port: u16) -> Vec<BrokerAddress> {
        let or_guest = |v: Option<&str>| match v {
            Some(v) if !v.is_empty() => v.to_owned(),
            _ => "guest".to_owned(),
        };
        let mut out: Vec<BrokerAddress> = self
            .hosts
            .iter()
            .map(|h| BrokerAddress {
                host: if h.hostname.is_empty() {
                    "localhost".to_owned()
                } else {
                    h.hostname.clone()
                },
                port: h.port.unwrap_or(default_port),
                username: or_guest(h.username.as_deref()),
                password: Secret::new(or_guest(h.password.as_ref().map(Secret::expose))),
            })
            .collect();
        if out.is_empty() {
            out.push(BrokerAddress {
                host: "localhost".into(),
                port: default_port,
                username: "guest".into(),
                password: Secret::new("guest"),
            });
        }
        out
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
            out.extend(utf8_percent_encode(vh, QUOTE_PATH_SET));
        }
        if !self.query.is_empty() {
            out.push('?');
            for (i, (k, v)) in self.query.iter().enumerate() {
                if i > 0 {
                    out.push('&');
                }
                out.push_str(&quote_plus(k));
                out.push('=');
                out.push_str(&quote_plus(v));
            }
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
///
/// Written for broken input: the credentials are taken to run up to the
/// *last* `@` of the string, so a password holding an unencoded `/`, `?`,
/// `#` or `@` is still masked. When the text before that `@` cannot be read
/// as `[user[:pass]@]host[:port],...`, all of it is masked.
///
/// ```
/// use om_core::url::mask_password;
/// assert_eq!(mask_password("rabbit://u:pa/ss@h:5672/vh"), "rabbit://u:****@h:5672/vh");
/// assert_eq!(mask_password("rabbit://u1:p1@h1,u2:p2@h2/"), "rabbit://u1:****@h1,u2:****@h2/");
/// assert_eq!(mask_password("rabbit://h1/"), "rabbit://h1/");
/// ```
pub fn mask_password(s: &str) -> String {
    // Without `://` the whole string may be credentials (`user:pw@host`).
    let auth_start = s.find("://").map_or(0, |i| i + 3);
    let (head, rest) = s.split_at(auth_start);
    let Some(last_at) = rest.rfind('@') else {
        return s.to_owned();
    };
    let (zone, tail) = rest.split_at(last_at);
    let parts: Vec<&str> = zone.split(',').collect();
    let mut masked = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if let Some(at) = part.rfind('@') {
            masked.push(format!("{}{}", mask_credentials(&part[..at]), &part[at..]));
        } else if last {
            masked.push(mask_credentials(part));
        } else if looks_like_host_port(part) {
            masked.push((*part).to_owned());
        } else {
            // Cannot tell hosts from secrets: hide the lot.
            return format!("{head}****{tail}");
        }
    }
    format!("{head}{}{tail}", masked.join(","))
}

/// `user:secret` → `user:****`; a bare `user` is kept.
fn mask_credentials(creds: &str) -> String {
    match creds.find(':') {
        Some(i) => format!("{}:****", &creds[..i]),
        None => creds.to_owned(),
    }
}

/// Whether `s` reads as `host`, `host:digits` or `[v6]:digits`.
fn looks_like_host_port(s: &str) -> bool {
    let host_ok = |h: &str| h.chars().all(is_host_char);
    if let Some(inner) = s.strip_prefix('[') {
        return match inner.split_once(']') {
            Some((addr, after)) => {
                addr.chars()
                    .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.' | '%'))
                    && (after.is_empty()
                        || after
                            .strip_prefix(':')
                            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())))
            }
            None => false,
        };
    }
    match s.split_once(':') {
        Some((h, p)) => host_ok(h) && p.bytes().all(|b| b.is_ascii_digit()),
        None => host_ok(s),
    }
}

/// Characters om accepts in a host name that is not an IPv6 literal.
fn is_host_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '~' | '%')
}

fn invalid(url: &str, reason: impl Into<String>) -> Error {
    Error::InvalidTransportUrl {
        url: mask_password(url),
        reason: reason.into(),
    }
}

/// Percent-decodes a user name, password or virtual host. Invalid escapes
/// such as `%zz` stay as they are (as Python's `unquote` leaves them);
/// bytes that do not decode as UTF-8 are an error (Python would silently
/// turn them into U+FFFD).
fn decode(url: &str, part: &str, what: &str) -> Result<String> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| {
            invalid(
                url,
                format!("the {what} is not valid UTF-8 after percent-decoding"),
            )
        })
}

/// Python's `urllib.parse.quote_plus(s, safe='')`, used by `urlencode`.
fn quote_plus(s: &str) -> String {
    utf8_percent_encode(s, QUOTE_SET)
        .to_string()
        .replace("%20", "+")
}

/// Describes the first white-space or control character of `s`, if any.
fn first_blank(s: &str) -> Option<String> {
    s.char_indices()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
        .map(|(i, c)| {
            let what = match c {
                ' ' => "a space".to_owned(),
                '\t' => "a tab".to_owned(),
                '\n' => "a line feed".to_owned(),
                '\r' => "a carriage return".to_owned(),
                c => format!("the character U+{:04X}", u32::from(c)),
            };
            format!("{what} at byte {i}")
        })
}

fn parse(s: &str) -> Result<TransportUrl> {
    if s.is_empty() {
        return Err(invalid(
            s,
            "the URL is empty (Python would fall back to the [DEFAULT] transport_url option; pass that URL instead)",
        ));
    }
    if s.trim().is_empty() {
        return Err(invalid(s, "the URL is blank (only white space); no scheme"));
    }
    if let Some(blank) = first_blank(s) {
        return Err(invalid(
            s,
            format!(
                "the URL contains white space or a control character ({blank}); percent-encode it"
            ),
        ));
    }
    let no_scheme = || {
        invalid(
            s,
            "no scheme: a transport URL starts with `driver://`, e.g. `rabbit://host/`",
        )
    };
    let colon = s.find(':').ok_or_else(no_scheme)?;
    let scheme = &s[..colon];
    if scheme.is_empty() {
        return Err(no_scheme());
    }
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
        return Err(invalid(
            s,
            format!("no valid scheme: the scheme ({scheme:?}) must start with a letter and hold only letters, digits, `+`, `-` and `.`"),
        ));
    }
    let mut rest = &s[colon + 1..];
    // Drop the fragment, as urlsplit does.
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
        // Python ignores such text; it is nearly always a forgotten `//`
        // (`rabbit:host`) or a missing scheme (`localhost:5672`). Not echoed:
        // it may hold credentials.
        return Err(invalid(
            s,
            format!("unexpected text right after `{scheme}:`: hosts must follow `//` (write `{scheme}://host/...`), a virtual host must follow `/`"),
        ));
    };

    let mut hosts = Vec::new();
    for piece in netloc.split(',').filter(|p| !p.is_empty()) {
        hosts.push(parse_host(s, piece)?);
    }

    let mut query_map: BTreeMap<String, String> = BTreeMap::new();
    if let Some(q) = query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            // parse_qs drops blank values by default (and fields without `=`).
            if v.is_empty() {
                continue;
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
        transport: scheme.to_ascii_lowercase(),
        virtual_host,
        hosts,
        query: query_map,
    })
}

/// Checks an IPv6 literal, optionally with a zone (`fe80::1%eth0`).
fn is_ipv6_literal(addr: &str) -> bool {
    let (base, zone) = match addr.split_once('%') {
        Some((b, z)) => (b, Some(z)),
        None => (addr, None),
    };
    base.parse::<std::net::Ipv6Addr>().is_ok()
        && zone.is_none_or(|z| !z.is_empty() && z.chars().all(is_host_char))
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
    // Reasons below never quote `hostport` as a whole: when a password
    // holds an unencoded `/`, part of it ends up here.
    let (hostname, port_str) = if let Some(inner) = hostport.strip_prefix('[') {
        let (addr, after) = inner
            .split_once(']')
            .ok_or_else(|| invalid(url, "invalid IPv6 host: `[` without a closing `]`"))?;
        if after.contains(']') {
            return Err(invalid(url, "invalid IPv6 host: more than one `]`"));
        }
        if !is_ipv6_literal(addr) {
            let reason = if addr.parse::<std::net::Ipv4Addr>().is_ok() {
                "an IPv4 address cannot be in brackets; brackets are for IPv6 addresses".to_owned()
            } else {
                format!("{addr:?} in brackets is not an IPv6 address")
            };
            return Err(invalid(url, reason));
        }
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => {
                return Err(invalid(
                    url,
                    format!(
                    "unexpected text after the IPv6 address [{addr}]: only `:port` may follow `]`"
                ),
                ))
            }
        };
        (addr.to_owned(), port)
    } else {
        if hostport.contains(['[', ']']) {
            return Err(invalid(
                url,
                "invalid IPv6 host: misplaced `[` or `]` (write IPv6 addresses as [::1]:5672)",
            ));
        }
        match hostport.split_once(':') {
            None => (hostport.to_owned(), None),
            Some((h, p)) if !p.contains(':') => (h.to_owned(), Some(p)),
            // Python takes several `:` as an IPv6 address without port.
            Some(_) if is_ipv6_literal(hostport) => (hostport.to_owned(), None),
            Some(_) => {
                return Err(invalid(
                    url,
                    "a host has several `:` but is not an IPv6 address; write IPv6 addresses with a port in brackets, e.g. [::1]:5672",
                ))
            }
        }
    };
    if hostname.is_empty() {
        return Err(invalid(
            url,
            "empty host name (a host is required before `:port` and after `user:pass@`)",
        ));
    }
    if !hostname.contains(':') {
        if let Some(bad) = hostname.chars().find(|c| !is_host_char(*c)) {
            return Err(invalid(
                url,
                format!("host name {hostname:?} contains the invalid character {bad:?}"),
            ));
        }
    }
    let port = match port_str {
        None => None,
        Some("") => {
            return Err(invalid(
                url,
                format!("the port of host {hostname:?} is empty (drop the `:` or give a number)"),
            ))
        }
        Some(p) => {
            if !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(
                    url,
                    format!("the port of host {hostname:?} is not a number"),
                ));
            }
            Some(p.parse::<u16>().map_err(|_| {
                invalid(
                    url,
                    format!("the port of host {hostname:?} is out of range 0-65535"),
                )
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
        assert_eq!(
            TransportUrl::parse("rabbit:///")
                .unwrap()
                .virtual_host
                .as_deref(),
            Some("")
        );
        let u = TransportUrl::parse("rabbit://h1,h2/").unwrap();
        assert_eq!(u.hosts.len(), 2);
        let u = TransportUrl::parse("rabbit://u:p%40x@[::1]:5672/%2F").unwrap();
        assert_eq!(u.hosts[0].hostname, "::1");
        assert_eq!(u.hosts[0].port, Some(5672));
        assert_eq!(
            u.hosts[0].password.as_ref().map(Secret::expose),
            Some("p@x")
        );
        assert_eq!(u.virtual_host.as_deref(), Some("/"));
        assert_eq!(
            TransportUrl::parse("rabbit://h//")
                .unwrap()
                .virtual_host
                .as_deref(),
            Some("/")
        );
        assert_eq!(
            TransportUrl::parse("kombu+memory:////").unwrap().driver(),
            "kombu"
        );
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
