//! Shared redaction for `Debug`/`Display` of subscriber values.

use std::fmt;

/// How many trailing characters a redacted value keeps visible.
const VISIBLE_TAIL: usize = 3;

/// Writes `label:` followed by one `•` per hidden character and the last three characters.
///
/// Values shorter than or equal to the visible tail are fully masked. `value` is ASCII for every
/// caller, so byte indexing is character indexing.
pub(crate) fn write_masked(f: &mut fmt::Formatter<'_>, label: &str, value: &str) -> fmt::Result {
    f.write_str(label)?;
    f.write_str(":")?;
    let len = value.len();
    if len <= VISIBLE_TAIL || !value.is_ascii() {
        for _ in 0..len.max(1) {
            f.write_str("•")?;
        }
        return Ok(());
    }
    for _ in 0..len - VISIBLE_TAIL {
        f.write_str("•")?;
    }
    f.write_str(&value[len - VISIBLE_TAIL..])
}
