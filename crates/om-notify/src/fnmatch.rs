//! Shell-style pattern matching with the semantics of Python's
//! `fnmatch.fnmatchcase` (what `fnmatch.fnmatch` does on POSIX systems).
//!
//! * `*` matches any run of characters, including none (dots and slashes too);
//! * `?` matches exactly one character;
//! * `[seq]` matches one character in `seq`, `[!seq]` one not in it; ranges
//!   such as `a-z` are allowed, a `]` right after `[` or `[!` is literal;
//! * a `[` without a closing `]` is a literal `[`;
//! * everything else matches itself, case-sensitively.
//!
//! Written here rather than taken from the `glob`/`globset` crates because
//! those treat `/` specially or differ on `[!...]` / unterminated `[`, and
//! the routing notifier needs exactly Python's rules on short strings.

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyOne,
    AnyRun,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

/// A compiled shell-style pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    tokens: Vec<Token>,
}

impl Pattern {
    /// Compiles `pattern`. Never fails: as in Python, malformed brackets
    /// are taken literally.
    pub fn new(pattern: &str) -> Self {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' => {
                    if tokens.last() != Some(&Token::AnyRun) {
                        tokens.push(Token::AnyRun);
                    }
                }
                '?' => tokens.push(Token::AnyOne),
                '[' => match parse_class(&chars, i) {
                    Some((token, next)) => {
                        tokens.push(token);
                        i = next;
                    }
                    None => tokens.push(Token::Literal('[')),
                },
                other => tokens.push(Token::Literal(other)),
            }
        }
        Pattern {
            source: pattern.to_owned(),
            tokens,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        // Iterative matcher with single-star backtracking (linear in practice).
        let (mut t, mut p) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.tokens.get(p) {
                Some(Token::AnyRun) => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                Some(tok) if token_matches(tok, text[t]) => {
                    t += 1;
                    p += 1;
                    continue;
                }
                _ => {}
            }
            match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            }
        }
        self.tokens[p..].iter().all(|tok| *tok == Token::AnyRun)
    }
}

fn token_matches(tok: &Token, c: char) -> bool {
    match tok {
        Token::Literal(l) => *l == c,
        Token::AnyOne => true,
        Token::AnyRun => true,
        Token::Class { negated, items } => {
            let inside = items.iter().any(|(lo, hi)| *lo <= c && c <= *hi);
            inside != *negated
        }
    }
}

/// Parses a bracket expression starting right after `[`. Returns the token
/// and the index after the closing `]`, or `None` when there is no `]`.
fn parse_class(chars: &[char], start: usize) -> Option<(Token, usize)> {
    let mut j = start;
    let negated = chars.get(j) == Some(&'!');
    if negated {
        j += 1;
    }
    // A `]` first in the set is literal.
    if chars.get(j) == Some(&']') {
        j += 1;
    }
    while j < chars.len() && chars[j] != ']' {
        j += 1;
    }
    if j >= chars.len() {
        return None;
    }
    let body = &chars[start + usize::from(negated)..j];
    let mut items = Vec::new();
    let mut k = 0;
    while k < body.len() {
        if k + 2 < body.len() && body[k + 1] == '-' {
            let (lo, hi) = (body[k], body[k + 2]);
            // Python drops reversed ranges (they match nothing).
            if lo <= hi {
                items.push((lo, hi));
            }
            k += 3;
        } else {
            items.push((body[k], body[k]));
            k += 1;
        }
    }
    Some((Token::Class { negated, items }, j + 1))
}

/// Shorthand: whether `text` matches shell-style `pattern`.
pub fn fnmatch(text: &str, pattern: &str) -> bool {
    Pattern::new(pattern).matches(text)
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn like_python_fnmatchcase() {
        // Cases checked against Python 3.11 fnmatch.fnmatchcase.
        let cases = [
            ("compute.instance.create", "compute.*", true),
            ("compute", "compute.*", false),
            ("compute.", "compute.*", true),
            ("a/b.c", "a*", true),
            ("Compute.x", "compute.*", false),
            ("error", "err?r", true),
            ("error", "e[rx]ror", true),
            ("eyror", "e[!rx]ror", true),
            ("erxor", "e[!rx]ror", false),
            ("b", "[a-c]", true),
            ("d", "[a-c]", false),
            ("[x", "[x", true),
            ("]", "[]]", true),
            ("a", "[!]]", true),
            ("-", "[a-]", true),
            ("", "*", true),
            ("", "?", false),
            ("abc", "a**c", true),
            ("aXbXc", "*X*c", true),
            ("aXbXd", "*X*c", false),
            ("info", "info", true),
            ("INFO", "info", false),
            ("é", "?", true),
            ("q", "[z-a]", false),
        ];
        for (text, pat, want) in cases {
            assert_eq!(fnmatch(text, pat), want, "fnmatch({text:?}, {pat:?})");
        }
    }
}
