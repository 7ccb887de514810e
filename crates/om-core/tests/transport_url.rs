//! Transport URL parsing checked against Python's `TransportURL.parse`
//! (fixture `tests/fixtures/transport_urls.json`, written by
//! `tests/fixtures/gen_fixtures.py`), malformed URLs, and property tests.
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use om_core::url::mask_password;
use om_core::{Error, TransportHost, TransportUrl};
use proptest::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;

fn fixture() -> Value {
    let text = include_str!("fixtures/transport_urls.json");
    serde_json::from_str(text).unwrap()
}

fn opt_str(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

#[test]
fn valid_urls_parse_like_python() {
    let fx = fixture();
    let valid = fx["valid"].as_array().unwrap();
    assert!(
        valid.len() >= 30,
        "only {} valid URLs in the fixture",
        valid.len()
    );
    for case in valid {
        let text = case["url"].as_str().unwrap();
        let py = &case["python"];
        let url = TransportUrl::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(
            url.transport,
            py["transport"].as_str().unwrap(),
            "{text:?} transport"
        );
        assert_eq!(
            url.virtual_host,
            opt_str(&py["virtual_host"]),
            "{text:?} virtual host"
        );
        let py_hosts = py["hosts"].as_array().unwrap();
        assert_eq!(url.hosts.len(), py_hosts.len(), "{text:?} host count");
        for (h, ph) in url.hosts.iter().zip(py_hosts) {
            assert_eq!(
                Some(h.hostname.clone()),
                opt_str(&ph["hostname"]),
                "{text:?} hostname"
            );
            assert_eq!(h.port.map(u64::from), ph["port"].as_u64(), "{text:?} port");
            assert_eq!(h.username, opt_str(&ph["username"]), "{text:?} username");
            assert_eq!(
                h.password.as_ref().map(|p| p.expose().to_owned()),
                opt_str(&ph["password"]),
                "{text:?} password"
            );
        }
        let py_query: BTreeMap<String, String> = py["query"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(url.query, py_query, "{text:?} query");

        // Rendering: Python's str() keeps the query in dict order, om sorts
        // it; compare the text where the orders agree, the meaning always.
        let py_str = py["str"].as_str().unwrap();
        let rendered = url.to_string_with_secrets();
        let py_keys: Vec<&String> = py["query"].as_object().unwrap().keys().collect();
        if py_keys.windows(2).all(|w| w[0] <= w[1]) {
            assert_eq!(rendered, py_str, "{text:?} rendering");
        }
        let reparsed = TransportUrl::parse(&rendered).unwrap();
        assert_eq!(
            reparsed,
            TransportUrl::parse(py_str).unwrap(),
            "{text:?} rendering meaning"
        );

        // Display and Debug show `****` in place of every password.
        let mut marked = url.clone();
        for h in &mut marked.hosts {
            if h.password.is_some() {
                h.password = Some(om_core::url::Secret::new("PWMARK"));
            }
        }
        let expected = marked
            .to_string_with_secrets()
            .replace(":PWMARK@", ":****@");
        assert_eq!(url.to_string(), expected, "{text:?} display");
        assert_eq!(
            format!("{url:?}"),
            format!("TransportUrl({expected})"),
            "{text:?} debug"
        );
    }
}

/// Whether om rejects a URL that Python rejects too, or is deliberately
/// stricter (Python accepts it but the result is unusable or surprising).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Python {
    Rejects,
    Accepts,
}

/// Every malformed URL of the fixture, with a word the reason must contain.
const MALFORMED: &[(&str, &str, Python)] = &[
    ("", "empty", Python::Accepts),
    ("   ", "blank", Python::Rejects),
    ("//h/", "no scheme", Python::Rejects),
    ("h", "no scheme", Python::Rejects),
    ("://h/", "no scheme", Python::Rejects),
    ("1abc://h/", "no valid scheme", Python::Rejects),
    ("rab_bit://h/", "no valid scheme", Python::Rejects),
    ("ra bbit://h/", "white space", Python::Rejects),
    ("rabbit://u:s3cr3t@h:abc/", "not a number", Python::Rejects),
    (
        "rabbit://u:s3cr3t@h:/",
        "port of host \"h\" is empty",
        Python::Rejects,
    ),
    (
        "rabbit://u:s3cr3t@[::1/",
        "without a closing `]`",
        Python::Rejects,
    ),
    ("rabbit://u:s3cr3t@::1]/", "misplaced", Python::Rejects),
    ("rabbit://u:s3cr3t@[::1]:/", "is empty", Python::Rejects),
    (
        "rabbit://u:s3cr3t@[::1]:x/",
        "not a number",
        Python::Rejects,
    ),
    (
        "rabbit://u:s3cr3t@[not-ipv6]:5672/",
        "not an IPv6 address",
        Python::Rejects,
    ),
    (
        "rabbit://u:s3cr3t@[127.0.0.1]:5672/",
        "IPv4 address cannot be in brackets",
        Python::Rejects,
    ),
    (
        "rabbit://u:s3cr3t@[::1]]/",
        "more than one `]`",
        Python::Rejects,
    ),
    (
        "rabbit://u:s3cr3t@h:5672x/",
        "not a number",
        Python::Rejects,
    ),
    ("rabbit://u:s3cr3t@h:1.5/", "not a number", Python::Rejects),
    ("rabbit://u:s3cr3t@h:0x10/", "not a number", Python::Rejects),
    (
        "rabbit://u:s3cr3t@h:99999/",
        "out of range",
        Python::Accepts,
    ),
    ("rabbit://u:s3cr3t@h:-1/", "not a number", Python::Accepts),
    ("rabbit://u:s3cr3t@h:+5/", "not a number", Python::Accepts),
    ("rabbit://u:s3cr3t@h: 5/", "a space", Python::Accepts),
    ("rabbit://u:s3cr3t@h /", "a space", Python::Accepts),
    ("rabbit://u:s3cr3t@h\t/", "a tab", Python::Accepts),
    ("rabbit://u:s3cr3t@/", "empty host name", Python::Accepts),
    (
        "rabbit://u:s3cr3t@:5672/",
        "empty host name",
        Python::Accepts,
    ),
    (
        "rabbit://u:s3cr3t@h:1:2/",
        "not an IPv6 address",
        Python::Accepts,
    ),
    (
        "rabbit://u:s3cr3t@[::1]x/",
        "only `:port` may follow",
        Python::Accepts,
    ),
    (
        "rabbit://u:s3cr3t@[::1]:80:90/",
        "not a number",
        Python::Accepts,
    ),
    (
        "rabbit://u:s3cr3t@h!x/",
        "invalid character '!'",
        Python::Accepts,
    ),
    (
        "rabbit:u:s3cr3t@h",
        "unexpected text right after `rabbit:`",
        Python::Accepts,
    ),
    (
        "localhost:5672",
        "unexpected text right after `localhost:`",
        Python::Accepts,
    ),
    (
        "rabbit://u:s3cr3t@h/%ff",
        "virtual host is not valid UTF-8",
        Python::Accepts,
    ),
    (
        "rabbit://u:%ff%fes3cr3t@h/",
        "password is not valid UTF-8",
        Python::Accepts,
    ),
    ("rabbit://u:s3cr3t@h/v\u{0}h", "U+0000", Python::Accepts),
    (
        "rabbit://u:s3cr3t@h1,h2:x/",
        "port of host \"h2\" is not a number",
        Python::Rejects,
    ),
];

#[test]
fn malformed_urls_are_typed_errors_without_secrets() {
    assert!(MALFORMED.len() >= 25);
    let fx = fixture();
    let invalid = fx["invalid"].as_array().unwrap();
    let fixture_urls: Vec<&str> = invalid.iter().map(|c| c["url"].as_str().unwrap()).collect();
    let table_urls: Vec<&str> = MALFORMED.iter().map(|(u, _, _)| *u).collect();
    assert_eq!(
        fixture_urls, table_urls,
        "the table must list the fixture's malformed URLs, in order"
    );

    for ((text, needle, python), case) in MALFORMED.iter().zip(invalid) {
        // The table's claim about Python is checked against Python.
        let py_rejected = case.get("python_error").is_some();
        assert_eq!(
            py_rejected,
            *python == Python::Rejects,
            "{text:?}: Python did {case}"
        );

        let err = TransportUrl::parse(text).expect_err(text);
        let Error::InvalidTransportUrl { url, reason } = &err else {
            panic!("{text:?}: wrong error {err:?}");
        };
        assert!(
            reason.contains(needle),
            "{text:?}: reason {reason:?} lacks {needle:?}"
        );
        assert_eq!(err.oslo_name(), "InvalidTransportURL");
        for shown in [
            url.clone(),
            reason.clone(),
            err.to_string(),
            format!("{err:?}"),
        ] {
            assert!(
                !shown.contains("s3cr3t"),
                "{text:?} leaks the password: {shown}"
            );
        }
        if text.contains("://u:s3cr3t@") {
            assert!(url.contains("u:****@"), "{text:?}: masked URL {url:?}");
        }
    }
}

#[test]
fn masking_handles_unencoded_delimiters_in_passwords() {
    for (text, secret) in [
        ("rabbit://u:pa/ss@h/", "pa/ss"),
        ("rabbit://u:pa?ss@h/", "pa?ss"),
        ("rabbit://u:pa#ss@h/", "pa#ss"),
        ("rabbit://u:pa@ss@h/", "pa@ss"),
        ("rabbit://u:pa,ss@h/", "pa,ss"),
        ("rabbit:u:pass@h", "pass"),
        ("u:pass@h", "pass"),
        ("rabbit://h1:5672,u:pass@h2/", "pass"),
        ("rabbit://u1:pass1@h1,u2:pass2@h2/?x=a@b", "pass"),
    ] {
        let masked = mask_password(text);
        assert!(!masked.contains(secret), "{text:?} → {masked:?}");
        if let Err(e) = TransportUrl::parse(text) {
            assert!(!format!("{e} {e:?}").contains(secret), "{text:?}: {e}");
        }
    }
    assert_eq!(
        mask_password("rabbit://h1:5672,h2/vh"),
        "rabbit://h1:5672,h2/vh"
    );
    assert_eq!(mask_password("rabbit://user@h/"), "rabbit://user@h/");
}

#[test]
fn host_helpers() {
    let url = TransportUrl::parse("rabbit://[fe80::1%25eth0]:5671,Host.Example:5672,h3/").unwrap();
    assert_eq!(url.hosts[0].address(5672), "[fe80::1%25eth0]:5671");
    assert_eq!(url.hosts[1].address(1), "Host.Example:5672");
    assert_eq!(url.hosts[2].address(5672), "h3:5672");
    assert_eq!(url.driver(), "rabbit");
    assert_eq!(
        TransportUrl::parse("Kombu+Memory:////").unwrap().driver(),
        "kombu"
    );
}

fn hostname() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9][a-zA-Z0-9._~-]{0,15}",
        any::<[u16; 8]>().prop_map(|s| std::net::Ipv6Addr::from(s).to_string()),
        Just("127.0.0.1".to_owned()),
    ]
}

fn host() -> impl Strategy<Value = TransportHost> {
    (
        hostname(),
        any::<Option<u16>>(),
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<String>()),
    )
        .prop_map(|(hostname, port, username, password)| TransportHost {
            hostname,
            port,
            username,
            password: password.map(om_core::url::Secret::new),
        })
}

fn transport_url() -> impl Strategy<Value = TransportUrl> {
    (
        "[a-z][a-z0-9+.-]{0,10}",
        proptest::option::of(any::<String>()),
        proptest::collection::vec(host(), 0..4),
        proptest::collection::btree_map(any::<String>(), ".+", 0..4),
    )
        .prop_map(|(transport, virtual_host, hosts, query)| TransportUrl {
            transport,
            virtual_host,
            hosts,
            query,
        })
}

/// What parsing the rendering of `url` must give back: rendering always
/// writes the `/` of the path, and `:pass@` without a user reads back as an
/// empty user name, as in Python.
fn normalized(mut url: TransportUrl) -> TransportUrl {
    url.virtual_host.get_or_insert_with(String::new);
    for h in &mut url.hosts {
        if h.password.is_some() {
            h.username.get_or_insert_with(String::new);
        }
    }
    url
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics_on_arbitrary_strings(s in any::<String>()) {
        if let Err(e) = TransportUrl::parse(&s) {
            prop_assert!(matches!(e, Error::InvalidTransportUrl { .. }), "{e:?}");
        }
    }

    #[test]
    fn parse_never_panics_on_url_like_strings(
        s in "[a-zA-Z+]{0,6}:(//)?[a-zA-Z0-9:@\\[\\]%,./?#=&+ ~!-]{0,40}"
    ) {
        if let Err(e) = TransportUrl::parse(&s) {
            prop_assert!(matches!(e, Error::InvalidTransportUrl { .. }), "{e:?}");
        }
    }

    #[test]
    fn render_then_parse_round_trips(url in transport_url()) {
        let text = url.to_string_with_secrets();
        let back = TransportUrl::parse(&text);
        prop_assert!(back.is_ok(), "{text:?}: {back:?}");
        prop_assert_eq!(back.unwrap(), normalized(url.clone()), "{}", text);
        // The masked rendering parses too, to the same hosts.
        let masked = TransportUrl::parse(&url.to_string()).unwrap();
        prop_assert_eq!(masked.hosts.len(), url.hosts.len());
    }

    #[test]
    fn errors_never_contain_the_password(
        pw in "Zq[a-zA-Z0-9]{10}",
        broken in prop_oneof![
            Just("h:x/"), Just("[::1/"), Just("h:/"), Just("h:99999/"), Just("/"),
            Just("h/%ff"), Just("h:1:2/"), Just("[::1]z/"), Just("h!/"), Just("h /"),
        ],
        delim in prop_oneof![Just(""), Just("/"), Just("?"), Just("#"), Just(","), Just("@")],
        scheme in prop_oneof![Just("rabbit://"), Just("rabbit:"), Just("")],
    ) {
        let text = format!("{scheme}user:{pw}{delim}x@{broken}");
        if let Err(e) = TransportUrl::parse(&text) {
            let shown = format!("{e} {e:?}");
            prop_assert!(!shown.contains(&pw), "{text:?}: {shown}");
        }
    }
}
