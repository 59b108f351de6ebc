//! Errors as `file:line:col: message`: TOML syntax and type errors translated into the
//! configuration's terms, and the semantic errors the compilers record against a span.

use std::ops::Range;

use super::Loader;
use super::raw::RawConfig;
use crate::error::{ConfigError, ConfigErrors};

pub(super) fn parse(origin: &str, text: &str) -> Result<RawConfig, ConfigErrors> {
    toml::from_str::<RawConfig>(text).map_err(|err| {
        let offset = err.span().map_or(0, |span| span.start);
        let (line, column) = position(text, offset);
        ConfigErrors(vec![ConfigError {
            file: origin.to_owned(),
            line,
            column,
            message: toml_message(&err),
        }])
    })
}

/// 1-based line and character column of a byte offset.
pub(super) fn position(text: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(text).position(offset)
}

/// Byte offsets where lines start, so each position lookup is a binary search rather than a
/// scan of the text (a 1,000-partner file has thousands of spans).
pub(super) struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(super) fn new(text: &'a str) -> LineIndex<'a> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count())
            + 1;
        (line, column)
    }
}

/// The key path toml attaches to a deserialization error. toml exposes it only through
/// `Display` when no input is attached (`in `a.b``), so render it that way.
fn error_keys(err: &toml::de::Error) -> Vec<String> {
    let mut bare = err.clone();
    bare.set_input(None);
    let rendered = bare.to_string();
    rendered
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("in `").and_then(|l| l.strip_suffix('`')))
        .map(|path| path.split('.').map(str::to_owned).collect())
        .unwrap_or_default()
}

fn table_label(keys: &[String]) -> String {
    match keys.join(".").as_str() {
        "" => "at the top level".to_owned(),
        path @ ("partner" | "radius.clients") => format!("in [[{path}]]"),
        path => format!("in [{path}]"),
    }
}

fn toml_message(err: &toml::de::Error) -> String {
    let message = err.message().trim_end();
    let keys = error_keys(err);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // rest = "name`, expected one of `a`, `b`": the quoted names sit at even split indices.
        let parts: Vec<&str> = rest.split('`').collect();
        let name = parts.first().copied().unwrap_or_default();
        let expected: Vec<&str> = parts.iter().skip(2).step_by(2).copied().collect();
        let mut text = format!("unknown key `{name}` {}", table_label(&keys));
        if expected.is_empty() {
            text.push_str("; this table takes no keys");
        } else {
            text.push_str(&format!("; expected one of: {}", expected.join(", ")));
            if let Some(close) = expected.iter().find(|e| edit_distance(name, e) <= 2) {
                text.push_str(&format!(" (did you mean `{close}`?)"));
            }
        }
        return text;
    }
    if message.starts_with("duplicate key") {
        return format!("{message}: a key may appear only once in a table; remove one");
    }
    let message = message.replace("expected i64", "expected an integer");
    // Map keys may contain dots, which the rendered key path cannot tell apart from nesting.
    let (field, table): (String, &[String]) = match keys.as_slice() {
        [a, b, rest @ ..] if a == "gateway" && b == "hosts" && !rest.is_empty() => {
            (rest.join("."), &keys[..2])
        }
        [a, b, rest @ ..] if a == "partner" && b == "headers" && !rest.is_empty() => {
            (rest.join("."), &keys[..2])
        }
        [parent @ .., field] => (field.clone(), parent),
        [] => return message,
    };
    let table = match table {
        [a, b] if a == "partner" && b == "headers" => "in `headers` of [[partner]]".to_owned(),
        other => table_label(other),
    };
    // serde quotes the value it refused; a secret's must not reach an error or a log.
    let message = if SECRET_KEYS.contains(&field.as_str()) {
        without_values(&message)
    } else {
        message
    };
    let message = reword_type_error(&field, &message).unwrap_or(message);
    format!("`{field}` {table}: {message}")
}

/// Keys whose value is a secret (`[[radius.clients]]`).
const SECRET_KEYS: &[&str] = &["secret"];

/// `message` without the values serde quotes in it (`` `1234` `` and `"abc"`): the type stays,
/// as in `invalid type: integer, expected a string`.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quote = None;
    for c in message.chars() {
        match quote {
            Some(open) if c == open => quote = None,
            Some(_) => {}
            None if c == '`' || c == '"' => {
                quote = Some(c);
                // The space before the value goes with it.
                if out.ends_with(' ') {
                    out.pop();
                }
            }
            None => out.push(c),
        }
    }
    out
}

/// Keys whose value is a duration string (`"5s"`, `"10m"`, `"400d"`).
const DURATION_KEYS: &[&str] = &[
    "connect_timeout",
    "header_read_timeout",
    "idle_timeout",
    "interval",
    "stale_after",
    "retention",
    "commit_window",
    "code_lifetime",
    "access_token_lifetime",
];

/// serde's `invalid type: integer `443`, expected a sequence`, in TOML's words and with the
/// line to write instead; `None` for any other message.
fn reword_type_error(field: &str, message: &str) -> Option<String> {
    let rest = message.strip_prefix("invalid type: ")?;
    let (got, expected) = rest.rsplit_once(", expected ")?;
    // The value as it was written: `integer `443`` -> 443, `string "a"` -> "a".
    let literal = got
        .split_once(' ')
        .map(|(_, value)| value.trim_matches('`'))
        .filter(|value| !value.is_empty());
    let text = match (expected, literal) {
        ("a sequence", Some(value)) => format!(
            "expected an array, got {got}; write `{field} = [{value}]` (an array, even of one)"
        ),
        ("a sequence", None) => format!("expected an array, got {got}; write `{field} = [...]`"),
        ("a string", Some(value))
            if DURATION_KEYS.contains(&field) && got.starts_with("integer") =>
        {
            format!(
                "a duration is a string with its unit, got {got}; write `{field} = \"{value}s\"` \
                 (units: ms, s, m, h, d)"
            )
        }
        ("a string", _) => format!("expected a string in double quotes, got {got}"),
        ("a boolean", _) => format!("expected true or false (without quotes), got {got}"),
        ("an integer", _) => format!("expected a whole number (without quotes), got {got}"),
        ("a map" | "struct" | "a table", _) => format!("expected a table, got {got}"),
        _ => return None,
    };
    Some(text)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

impl Loader<'_> {
    pub(super) fn error(&mut self, at: usize, message: impl Into<String>) {
        self.errors.push((at, message.into()));
    }

    pub(super) fn finish(self, origin: &str) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let mut errors: Vec<ConfigError> = self
            .errors
            .into_iter()
            .map(|(offset, message)| {
                let (line, column) = self.lines.position(offset);
                ConfigError {
                    file: origin.to_owned(),
                    line,
                    column,
                    message,
                }
            })
            .collect();
        errors.sort_by_key(|e| (e.line, e.column));
        Err(ConfigErrors(errors))
    }

    pub(super) fn line_of(&self, offset: usize) -> usize {
        self.lines.position(offset).0
    }

    pub(super) fn missing(
        &mut self,
        table: Range<usize>,
        key: &str,
        table_name: &str,
        example: &str,
    ) {
        self.error(
            table.start,
            format!("missing required key `{key}` in {table_name}; add e.g. {key} = {example}"),
        );
    }
}
