//! Subscriber profile data that RADIUS does not carry (`[subscribers].file`, CSV).

use std::collections::HashMap;

use headwall_identity::Msisdn;

/// Profile facts per subscriber, keyed by MSISDN digits. Parsed from CSV text whose header row
/// is `msisdn,age_verified`; `age_verified` is `true`, `false` or empty (unknown: the header is
/// then omitted). Blank lines and lines starting with `#` are ignored.
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    age_verified: HashMap<String, bool>,
}

impl Profiles {
    /// Parses the CSV text of `file` (the name is only used in errors). Reports every bad row.
    pub fn parse(file: &str, text: &str) -> Result<Profiles, Vec<ProfileError>> {
        let mut errors = Vec::new();
        let mut age_verified = HashMap::new();
        let error = |line: usize, message: String| ProfileError {
            file: file.to_owned(),
            line,
            message,
        };
        let mut rows = text
            .lines()
            .enumerate()
            .map(|(index, row)| (index + 1, row.trim()))
            .filter(|(_, row)| !row.is_empty() && !row.starts_with('#'));
        match rows.next() {
            Some((_, header)) if header.replace(' ', "") == "msisdn,age_verified" => {}
            Some((line, _)) => {
                return Err(vec![error(
                    line,
                    "the first row must be the header `msisdn,age_verified`".into(),
                )]);
            }
            None => return Ok(Profiles::default()),
        }
        for (line, row) in rows {
            let mut fields = row.split(',').map(str::trim);
            let (Some(msisdn), Some(age), None) = (fields.next(), fields.next(), fields.next())
            else {
                errors.push(error(line, "expected 2 fields: msisdn,age_verified".into()));
                continue;
            };
            let Ok(msisdn) = Msisdn::parse(msisdn) else {
                errors.push(error(
                    line,
                    "msisdn is not an international number (6 to 15 digits, optional leading +)"
                        .into(),
                ));
                continue;
            };
            let age = match age {
                "true" => true,
                "false" => false,
                "" => continue,
                _ => {
                    errors.push(error(
                        line,
                        "age_verified must be true, false or empty".into(),
                    ));
                    continue;
                }
            };
            age_verified.insert(msisdn.expose_digits().to_owned(), age);
        }
        if errors.is_empty() {
            Ok(Profiles { age_verified })
        } else {
            Err(errors)
        }
    }

    /// Whether the subscriber's age is verified; `None` when unknown.
    pub fn age_verified(&self, msisdn: &Msisdn) -> Option<bool> {
        self.age_verified.get(msisdn.expose_digits()).copied()
    }

    /// Number of subscribers with a known profile.
    pub fn len(&self) -> usize {
        self.age_verified.len()
    }

    /// Whether no profile is known.
    pub fn is_empty(&self) -> bool {
        self.age_verified.is_empty()
    }
}

/// A CSV row that could not be used. Never carries the row's content: it may be a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    /// The file as the operator named it.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for ProfileError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_and_unknowns() {
        let text = "msisdn,age_verified\n447700900001,true\n+447700900002,false\n447700900003,\n";
        let profiles = Profiles::parse("s.csv", text).unwrap();
        let age = |m: &str| profiles.age_verified(&Msisdn::parse(m).unwrap());
        assert_eq!(age("447700900001"), Some(true));
        assert_eq!(age("447700900002"), Some(false));
        assert_eq!(age("447700900003"), None);
        assert_eq!(age("447700900009"), None);
    }

    #[test]
    fn bad_rows_report_line_numbers_without_content() {
        let text = "msisdn,age_verified\n447700900001,true\nabc,true\n447700900002,maybe\n";
        let errors = Profiles::parse("s.csv", text).unwrap_err();
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("s.csv:3: "), "{lines:?}");
        assert!(lines[1].starts_with("s.csv:4: "), "{lines:?}");
        assert!(!lines.concat().contains("abc"));
    }

    #[test]
    fn wrong_header_is_an_error() {
        let errors = Profiles::parse("s.csv", "number,age\n1,true\n").unwrap_err();
        assert_eq!(errors[0].line, 1);
    }
}
