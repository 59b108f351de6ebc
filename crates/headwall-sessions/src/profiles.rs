//! Subscriber profile data that RADIUS does not carry (`[subscribers].file`, CSV).

use std::collections::HashMap;

use headwall_identity::Msisdn;

/// The columns a profile file may have besides `msisdn`.
const COLUMNS: [&str; 5] = [
    "age_verified",
    "birthdate",
    "verified",
    "content_lock",
    "parental_control",
];

/// What the operator knows about one subscriber; every fact is optional (unknown is never
/// guessed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Profile {
    /// `age_verified`: an adult, checked (the `age_verified` header kind).
    pub age_verified: Option<bool>,
    /// `birthdate` (`YYYY-MM-DD`): answers an age check for any threshold.
    pub birthdate: Option<Date>,
    /// `verified`: the identity was checked against an ID document (`verifiedStatus`).
    pub verified: Option<bool>,
    /// `content_lock`: adult content is blocked on the line.
    pub content_lock: Option<bool>,
    /// `parental_control`: parental control is on for the line.
    pub parental_control: Option<bool>,
}

/// A calendar date (proleptic Gregorian), as a birthdate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    /// Year, 1900 to 9999.
    pub year: i32,
    /// Month, 1 to 12.
    pub month: u32,
    /// Day of the month.
    pub day: u32,
}

impl Date {
    /// Parses `YYYY-MM-DD` (RFC 3339 full-date), checking the day exists.
    pub fn parse(text: &str) -> Option<Date> {
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return None;
        }
        let number = |range: std::ops::Range<usize>| -> Option<u32> {
            let part = &text[range];
            part.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse().ok())
                .flatten()
        };
        let year = i32::try_from(number(0..4)?).ok()?;
        let (month, day) = (number(5..7)?, number(8..10)?);
        let date = Date { year, month, day };
        ((1900..=9999).contains(&year)
            && (1..=12).contains(&month)
            && (1..=days_in_month(year, month)).contains(&day))
        .then_some(date)
    }

    /// The UTC date of Unix second `unix`.
    pub fn from_unix(unix: u64) -> Date {
        // Howard Hinnant's days-to-civil, for days since 1970-01-01.
        let days = i64::try_from(unix / 86_400).unwrap_or(0);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date {
            year: i32::try_from(year).unwrap_or(i32::MAX),
            month: u32::try_from(month).unwrap_or(1),
            day: u32::try_from(day).unwrap_or(1),
        }
    }

    /// Whole years from this date (a birthdate) to `today`; someone born on 29 February
    /// turns a year older on 1 March in other years.
    pub fn years_until(self, today: Date) -> i32 {
        let mut years = today.year - self.year;
        if (today.month, today.day) < (self.month, self.day) {
            years -= 1;
        }
        years
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Profile facts per subscriber, keyed by MSISDN digits. Parsed from CSV text whose header row
/// names the columns: `msisdn` and any of `age_verified`, `birthdate`, `verified`,
/// `content_lock`, `parental_control`, in any order (the old `msisdn,age_verified` is one such
/// file). Booleans are `true`, `false` or empty (unknown); `birthdate` is `YYYY-MM-DD` or
/// empty. Blank lines and lines starting with `#` are ignored.
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    profiles: HashMap<String, Profile>,
}

impl Profiles {
    /// Parses the CSV text of `file` (the name is only used in errors). Reports every bad row.
    pub fn parse(file: &str, text: &str) -> Result<Profiles, Vec<ProfileError>> {
        let mut errors = Vec::new();
        let mut profiles = HashMap::new();
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
        let Some((header_line, header)) = rows.next() else {
            return Ok(Profiles::default());
        };
        let columns: Vec<&str> = header.split(',').map(str::trim).collect();
        let known = |c: &&str| *c == "msisdn" || COLUMNS.contains(c);
        let repeated = columns
            .iter()
            .enumerate()
            .any(|(i, c)| columns[..i].contains(c));
        if columns.first() != Some(&"msisdn") || !columns.iter().all(known) || repeated {
            return Err(vec![error(
                header_line,
                format!(
                    "the first row must be the header: `msisdn` and any of `{}`, each once, \
                     e.g. `msisdn,age_verified`",
                    COLUMNS.join("`, `")
                ),
            )]);
        }
        for (line, row) in rows {
            let fields: Vec<&str> = row.split(',').map(str::trim).collect();
            if fields.len() != columns.len() {
                errors.push(error(
                    line,
                    format!("expected {} fields: {}", columns.len(), columns.join(",")),
                ));
                continue;
            }
            let Ok(msisdn) = Msisdn::parse(fields[0]) else {
                errors.push(error(
                    line,
                    "msisdn is not an international number (6 to 15 digits, optional leading +)"
                        .into(),
                ));
                continue;
            };
            let mut profile = Profile::default();
            let mut bad = None;
            for (column, field) in columns.iter().zip(&fields).skip(1) {
                let flag = || match *field {
                    "true" => Ok(Some(true)),
                    "false" => Ok(Some(false)),
                    "" => Ok(None),
                    _ => Err(format!("{column} must be true, false or empty")),
                };
                let parsed = match *column {
                    "birthdate" if field.is_empty() => Ok(()),
                    "birthdate" => match Date::parse(field) {
                        Some(date) => {
                            profile.birthdate = Some(date);
                            Ok(())
                        }
                        None => Err("birthdate must be a date YYYY-MM-DD, or empty".to_owned()),
                    },
                    "age_verified" => flag().map(|v| profile.age_verified = v),
                    "verified" => flag().map(|v| profile.verified = v),
                    "content_lock" => flag().map(|v| profile.content_lock = v),
                    _ => flag().map(|v| profile.parental_control = v),
                };
                if let Err(message) = parsed {
                    bad = Some(message);
                    break;
                }
            }
            match bad {
                Some(message) => errors.push(error(line, message)),
                None if profile == Profile::default() => {}
                None => {
                    profiles.insert(msisdn.expose_digits().to_owned(), profile);
                }
            }
        }
        if errors.is_empty() {
            Ok(Profiles { profiles })
        } else {
            Err(errors)
        }
    }

    /// Whether the subscriber's age is verified; `None` when unknown.
    pub fn age_verified(&self, msisdn: &Msisdn) -> Option<bool> {
        self.profiles.get(msisdn.expose_digits())?.age_verified
    }

    /// Everything known about the subscriber (all unknown when nothing is).
    pub fn profile(&self, msisdn: &Msisdn) -> Profile {
        self.profiles
            .get(msisdn.expose_digits())
            .copied()
            .unwrap_or_default()
    }

    /// Number of subscribers with a known profile.
    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    /// Whether no profile is known.
    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
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
        for header in [
            "number,age",
            "age_verified,msisdn",
            "msisdn,verified,verified",
        ] {
            let errors = Profiles::parse("s.csv", &format!("{header}\n1,true\n")).unwrap_err();
            assert_eq!(errors[0].line, 1, "{header}");
        }
    }

    #[test]
    fn every_column_in_any_order() {
        let text = "msisdn,parental_control,birthdate,verified,content_lock\n\
                    447700900001,false,1990-02-28,true,\n447700900002,,,,\n";
        let profiles = Profiles::parse("s.csv", text).unwrap();
        let profile = profiles.profile(&Msisdn::parse("447700900001").unwrap());
        assert_eq!(
            profile,
            Profile {
                age_verified: None,
                birthdate: Some(Date {
                    year: 1990,
                    month: 2,
                    day: 28
                }),
                verified: Some(true),
                content_lock: None,
                parental_control: Some(false),
            }
        );
        assert_eq!(profiles.len(), 1, "a row of unknowns is no profile");
        let bad = "msisdn,birthdate\n447700900001,1990-02-30\n447700900002,31/12/1990\n";
        let errors = Profiles::parse("s.csv", bad).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors[0].message.contains("YYYY-MM-DD"));
    }

    #[test]
    fn dates_and_ages() {
        assert_eq!(
            Date::from_unix(0),
            Date {
                year: 1970,
                month: 1,
                day: 1
            }
        );
        // 2026-12-03T00:00:00Z
        assert_eq!(
            Date::from_unix(1_796_256_000),
            Date {
                year: 2026,
                month: 12,
                day: 3
            }
        );
        assert_eq!(
            Date::from_unix(951_782_400),
            Date {
                year: 2000,
                month: 2,
                day: 29
            }
        );
        let born = Date::parse("2008-12-03").unwrap();
        assert_eq!(
            born.years_until(Date {
                year: 2026,
                month: 12,
                day: 3
            }),
            18
        );
        assert_eq!(
            born.years_until(Date {
                year: 2026,
                month: 12,
                day: 2
            }),
            17
        );
        let leap = Date::parse("2008-02-29").unwrap();
        assert_eq!(
            leap.years_until(Date {
                year: 2026,
                month: 2,
                day: 28
            }),
            17
        );
        assert_eq!(
            leap.years_until(Date {
                year: 2026,
                month: 3,
                day: 1
            }),
            18
        );
        assert_eq!(Date::parse("2023-02-29"), None);
        assert_eq!(Date::parse("2024-02-29").map(|d| d.day), Some(29));
        assert_eq!(Date::parse("1899-01-01"), None);
        assert_eq!(Date::parse("+990-01-01"), None);
    }
}
