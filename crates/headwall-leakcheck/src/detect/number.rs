//! Phone numbers and IMSIs inside a header value: tokenising and plausibility.
//!
//! A value is cut into *atoms*: a digit string with the separators people write inside phone
//! numbers (`-`, `.`, parentheses), optionally led by `+` (or `%2B`). Atoms one space apart form
//! a *run*, because a number may be written `+44 7700 900123`. A number is a sequence of atoms
//! of one run that stands alone (the bytes around it are delimiters, never letters, digits, `.`,
//! `/`, `-` or `_`) and that is plausible as a whole; it is never searched for inside a longer
//! digit string, which is what keeps version numbers, cookie components and ids out.

use super::tables::{self, CallingCode};

/// What one value was found to contain.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Found {
    /// A plausible phone number.
    pub(super) phone_number: bool,
    /// A plausible IMSI.
    pub(super) imsi: bool,
}

/// What the name a number is written under says about it (`msisdn=`, header `X-Caller-Id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hint {
    /// Nothing: the number must be plausible on its own.
    Silent,
    /// A phone-number word: national and unprefixed international numbers are accepted on
    /// their length alone.
    Phone,
    /// An IMSI word.
    Imsi,
}

/// Scans `value` for phone numbers and IMSIs. `header_hint` comes from the header name.
pub(super) fn scan(value: &str, header_hint: Hint) -> Found {
    let bytes = value.as_bytes();
    let mut found = Found::default();
    let mut at = 0;
    while at < bytes.len() {
        let Some(first) = atom_at(bytes, at) else {
            at += 1;
            continue;
        };
        let mut run = vec![first];
        while run.len() < MAX_RUN_ATOMS {
            let end = run.last().map_or(first.end, |atom| atom.end);
            match (bytes.get(end), atom_at(bytes, end + 1)) {
                (Some(b' '), Some(next)) => run.push(next),
                _ => break,
            }
        }
        evaluate(bytes, &run, header_hint, &mut found);
        at = run.last().map_or(first.end, |atom| atom.end);
        if found.phone_number && found.imsi {
            break;
        }
    }
    found
}

/// The hint a key (a header name, or the word a number follows) gives.
pub(super) fn hint_for_key(key: &str) -> Hint {
    let key = key.to_ascii_lowercase();
    if key.contains(tables::IMSI_STEM) {
        return Hint::Imsi;
    }
    let by_part = key
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|part| tables::PHONE_WORDS.contains(&part));
    if by_part || tables::PHONE_STEMS.iter().any(|stem| key.contains(stem)) {
        Hint::Phone
    } else {
        Hint::Silent
    }
}

/// Phone numbers have at most 15 digits (E.164); with `00`, a `1` trunk and a `(0)` a written
/// number has a few more. Anything longer is an id, not a number.
const MAX_DIGITS: usize = 18;
/// Fewest digits worth calling a phone number (shorter ones are everywhere).
const MIN_DIGITS: usize = 7;
/// Most atoms one number is written in (`+33 6 39 98 12 34` is six).
const MAX_NUMBER_ATOMS: usize = 6;
/// Atoms collected per run before scanning restarts: bounds work on hostile values.
const MAX_RUN_ATOMS: usize = 64;

/// One digit string with in-number separators, as written.
#[derive(Debug, Clone, Copy)]
struct Atom {
    /// Byte offset of the first byte (the `+` or `%` when there is one).
    start: usize,
    /// Byte offset one past the last digit or closing parenthesis.
    end: usize,
    /// Length of the `+` / `%2B` / `(+` prefix (0 when none).
    plus_len: usize,
    /// Whether the prefix was `(+`, as in `(+44) 7700 900123`.
    opens_parenthesis: bool,
}

/// The atom starting exactly at `at`, if one does.
fn atom_at(bytes: &[u8], at: usize) -> Option<Atom> {
    let (plus_len, opens_parenthesis) = match bytes.get(at)? {
        b'+' => (1, false),
        b'(' if bytes.get(at + 1) == Some(&b'+') => (2, true),
        b'%' if bytes
            .get(at + 1..at + 3)
            .is_some_and(|code| code.eq_ignore_ascii_case(b"2b")) =>
        {
            (3, false)
        }
        _ => (0, false),
    };
    let body = at + plus_len;
    let starts_number = match bytes.get(body)? {
        b'0'..=b'9' => true,
        b'(' => bytes.get(body + 1).is_some_and(u8::is_ascii_digit),
        _ => false,
    };
    if !starts_number {
        return None;
    }
    let mut end = body;
    while bytes
        .get(end)
        .is_some_and(|b| matches!(b, b'0'..=b'9' | b'-' | b'.' | b'(' | b')'))
    {
        end += 1;
    }
    // Trailing separators belong to the text around the number, and so does a closing
    // parenthesis that closes nothing opened inside the atom ("(Android 14)").
    let inside = bytes.get(body..end)?;
    let mut opened = inside.iter().filter(|&&b| b == b'(').count() + usize::from(opens_parenthesis);
    let mut closed = inside.iter().filter(|&&b| b == b')').count();
    while end > body {
        let last = *bytes.get(end - 1)?;
        if last.is_ascii_digit() || (last == b')' && closed <= opened) {
            break;
        }
        match last {
            b'(' => opened -= 1,
            b')' => closed -= 1,
            _ => {}
        }
        end -= 1;
    }
    if end <= body {
        return None;
    }
    Some(Atom {
        start: at,
        end,
        plus_len,
        opens_parenthesis,
    })
}

/// Whether a byte can border a standalone number.
fn is_delimiter(byte: u8) -> bool {
    matches!(
        byte,
        b' ' | b'\t'
            | b'='
            | b':'
            | b';'
            | b','
            | b'"'
            | b'\''
            | b'<'
            | b'>'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'('
            | b')'
            | b'|'
            | b'&'
            | b'?'
            | b'#'
            | b'*'
            | b'!'
            | b'@'
    )
}

fn left_ok(bytes: &[u8], start: usize) -> bool {
    start
        .checked_sub(1)
        .and_then(|before| bytes.get(before))
        .is_none_or(|&byte| is_delimiter(byte))
}

fn right_ok(bytes: &[u8], end: usize) -> bool {
    match bytes.get(end) {
        None => true,
        // A full stop ending a sentence, not the dot of "447700900123.html".
        Some(b'.') => !bytes.get(end + 1).is_some_and(u8::is_ascii_alphanumeric),
        Some(&byte) => is_delimiter(byte),
    }
}

/// Finds numbers in one run: from each atom that stands alone on its left, the longest
/// plausible sequence of atoms that stands alone on its right.
fn evaluate(bytes: &[u8], run: &[Atom], header_hint: Hint, found: &mut Found) {
    let mut first = 0;
    while first < run.len() {
        let atom = run[first];
        if !left_ok(bytes, atom.start) {
            first += 1;
            continue;
        }
        let hint = match key_hint(bytes, atom.start) {
            Hint::Silent => header_hint,
            hint => hint,
        };
        let last = (first + MAX_NUMBER_ATOMS).min(run.len());
        let matched = (first..last).rev().find_map(|end| {
            let atoms = run.get(first..=end)?;
            let tail = atoms.last()?;
            if !right_ok(bytes, tail.end) {
                return None;
            }
            classify(bytes, atoms, hint).map(|kind| (end, kind))
        });
        match matched {
            Some((end, Kind::PhoneNumber)) => {
                found.phone_number = true;
                first = end + 1;
            }
            Some((end, Kind::Imsi)) => {
                found.imsi = true;
                first = end + 1;
            }
            None => first += 1,
        }
    }
}

/// The hint of the key a number follows: `msisdn=4477...`, `"tel":"+44..."`, `imsi: 2341...`.
fn key_hint(bytes: &[u8], start: usize) -> Hint {
    let mut end = start;
    let mut skipped = 0;
    while end > 0 && skipped < 3 && matches!(bytes[end - 1], b'=' | b':' | b'"' | b'\'' | b' ') {
        end -= 1;
        skipped += 1;
    }
    let mut begin = end;
    while begin > 0
        && end - begin < 40
        && (bytes[begin - 1].is_ascii_alphanumeric() || matches!(bytes[begin - 1], b'_' | b'-'))
    {
        begin -= 1;
    }
    match bytes
        .get(begin..end)
        .and_then(|key| std::str::from_utf8(key).ok())
    {
        Some(key) if !key.is_empty() => hint_for_key(key),
        _ => Hint::Silent,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    PhoneNumber,
    Imsi,
}

/// A candidate number: its digits and how they were written.
#[derive(Debug)]
struct Written {
    digits: String,
    /// Lengths of the digit groups as written: `+44 (0)7700 900123` is 2, 1, 4, 6.
    groups: Vec<usize>,
    plus: bool,
    dotted: bool,
}

impl Written {
    fn parse(bytes: &[u8], atoms: &[Atom]) -> Option<Written> {
        let mut written = Written {
            digits: String::new(),
            groups: Vec::new(),
            plus: atoms.first()?.plus_len > 0,
            dotted: false,
        };
        for (index, atom) in atoms.iter().enumerate() {
            // `+` only leads a number; "+44 +33" is two.
            if index > 0 && atom.plus_len > 0 {
                return None;
            }
            let mut in_parentheses = atom.opens_parenthesis;
            let mut after_separator = false;
            let mut group: Option<usize> = None;
            for &byte in bytes.get(atom.start + atom.plus_len..atom.end)? {
                match byte {
                    b'0'..=b'9' => {
                        written.digits.push(char::from(byte));
                        if written.digits.len() > MAX_DIGITS {
                            return None;
                        }
                        *group.get_or_insert(0) += 1;
                        after_separator = false;
                    }
                    b'(' if !in_parentheses => {
                        written.groups.extend(group.take());
                        in_parentheses = true;
                    }
                    b')' if in_parentheses => {
                        written.groups.extend(group.take());
                        in_parentheses = false;
                    }
                    // Two separators in a row ("1..2", "1-.2") are not how numbers are written.
                    b'.' | b'-' if !after_separator => {
                        written.dotted |= byte == b'.';
                        written.groups.extend(group.take());
                        after_separator = true;
                    }
                    _ => return None,
                }
            }
            if in_parentheses {
                return None;
            }
            written.groups.extend(group.take());
        }
        Some(written)
    }

    fn is_bare(&self) -> bool {
        self.groups.len() == 1
    }

    /// `192.168.1.20`, `10.0.0.1`: dotted quads are addresses.
    fn looks_like_ipv4(&self) -> bool {
        self.dotted
            && !self.plus
            && self.groups.len() == 4
            && self.groups.iter().all(|&len| len <= 3)
    }

    /// `06-11-2023 08`, `2023.11.14`: a 19xx/20xx year next to day and month groups.
    fn looks_like_date(&self) -> bool {
        let mut starts = Vec::with_capacity(self.groups.len());
        let mut offset = 0;
        for len in &self.groups {
            starts.push(offset);
            offset += len;
        }
        let is_year = |index: usize| {
            self.groups.get(index) == Some(&4)
                && starts
                    .get(index)
                    .and_then(|&start| self.digits.get(start..start + 2))
                    .is_some_and(|century| century == "19" || century == "20")
        };
        let is_short = |index: usize| self.groups.get(index).is_some_and(|&len| len <= 2);
        (0..self.groups.len()).any(|i| {
            (is_short(i) && is_short(i + 1) && is_year(i + 2))
                || (is_year(i) && is_short(i + 1) && is_short(i + 2))
        })
    }
}

/// Whether a sequence of atoms is a phone number or an IMSI.
fn classify(bytes: &[u8], atoms: &[Atom], hint: Hint) -> Option<Kind> {
    let written = Written::parse(bytes, atoms)?;
    let digits = written.digits.as_str();
    if digits.len() < MIN_DIGITS || written.looks_like_ipv4() || written.looks_like_date() {
        return None;
    }
    // Two dotted groups are a decimal or a version ("1700000000.123", "604.1").
    if written.dotted && written.groups.len() == 2 {
        return None;
    }

    let imsi = written.is_bare()
        && !written.plus
        && digits.len() == 15
        && digits.get(..3).is_some_and(tables::is_assigned_mcc);
    if imsi && hint != Hint::Phone {
        return Some(Kind::Imsi);
    }
    if is_phone_number(&written, hint) {
        return Some(Kind::PhoneNumber);
    }
    imsi.then_some(Kind::Imsi)
}

fn is_phone_number(written: &Written, hint: Hint) -> bool {
    let digits = written.digits.as_str();
    if written.plus {
        return is_international(digits);
    }
    if let Some(rest) = digits.strip_prefix("00") {
        return is_international(rest);
    }
    if digits.starts_with('0') {
        return is_national_with_trunk(written, hint);
    }
    if written.is_bare() {
        return is_bare_international(digits, hint)
            || (hint == Hint::Phone && tables::is_nanp_number(digits));
    }
    is_formatted_nanp(written) || is_formatted_international(written)
}

/// `+447700900123`, `+44 (0)7700 900123`, `0044 7700 900123`, `+1 (202) 555-0123`.
fn is_international(digits: &str) -> bool {
    tables::split_calling_code(digits).is_some_and(|(code, nsn)| accepts_after_trunk(code, nsn))
}

/// The national number after a calling code, allowing the trunk `0` people write after it
/// (`+44 (0)7700 900123`, and the mistaken `+44 07700 900123`).
fn accepts_after_trunk(code: &CallingCode, nsn: &str) -> bool {
    code.accepts(nsn) || nsn.strip_prefix('0').is_some_and(|rest| code.accepts(rest))
}

/// `07700900123`, `07700 900123`, `06.39.98.12.34`, `(0)7700 900123`.
fn is_national_with_trunk(written: &Written, hint: Hint) -> bool {
    let digits = written.digits.as_str();
    let after_trunk_ok = digits.as_bytes().get(1).is_some_and(|&b| b != b'0');
    let national_length = (10..=11).contains(&digits.len());
    if written.is_bare() {
        tables::is_national_mobile(digits)
            || (hint == Hint::Phone && national_length && after_trunk_ok)
    } else {
        // Written in groups, a trunk-0 number of national length is meant to be dialled.
        national_length && after_trunk_ok
    }
}

/// `447700900123`: international digits without `+`. Ids look like this too, so without a
/// phone-number key the number must also begin like a mobile number of its country, which rules
/// out countries where mobile numbers cannot be told apart (NANP, Denmark, most small ones):
/// there, 11 random digits after a `1` pass the NANP structure two times in three.
fn is_bare_international(digits: &str, hint: Hint) -> bool {
    let min_total = if hint == Hint::Phone { 8 } else { 10 };
    if digits.len() < min_total {
        return false;
    }
    let Some((code, nsn)) = tables::split_calling_code(digits) else {
        return false;
    };
    code.accepts(nsn)
        && (hint == Hint::Phone || (code.knows_mobile_prefixes() && code.is_mobile(nsn)))
}

/// `(202) 555-0123`, `202-555-0123`, `202.555.0123`, `1 202 555 0123`.
fn is_formatted_nanp(written: &Written) -> bool {
    let nsn = match written.groups.as_slice() {
        [3, 3, 4] => written.digits.as_str(),
        [1, 3, 3, 4] => match written.digits.strip_prefix('1') {
            Some(rest) => rest,
            None => return false,
        },
        _ => return false,
    };
    tables::is_nanp_number(nsn)
}

/// `44 7700 900123`, `44-7700-900123`: the first group is exactly a calling code.
fn is_formatted_international(written: &Written) -> bool {
    if written.dotted {
        return false;
    }
    let Some(&first) = written.groups.first() else {
        return false;
    };
    let Some(code) = written.digits.get(..first).and_then(tables::calling_code) else {
        return false;
    };
    let Some(rest) = written.digits.get(first..) else {
        return false;
    };
    accepts_after_trunk(code, rest)
}
