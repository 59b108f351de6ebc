//! Reference tables: calling codes, mobile country codes, national mobile formats, header names.
//!
//! Kept as data, apart from the scanning code, so a reviewer can check them against their
//! sources: ITU-T E.164 (assigned country calling codes, national significant number lengths
//! from each country's numbering plan as notified to the ITU), ITU-T E.212 (mobile country
//! codes) and published studies of tracking headers.

/// One ITU-T E.164 country calling code.
#[derive(Debug)]
pub(super) struct CallingCode {
    /// The code, e.g. `44`.
    pub(super) code: &'static str,
    /// Shortest plausible national significant number (digits after the code).
    pub(super) min_len: usize,
    /// Longest plausible national significant number.
    pub(super) max_len: usize,
    /// How mobile numbers begin inside the national significant number (`?` is any digit);
    /// empty where mobile and fixed numbers cannot be told apart (NANP, Denmark, Mexico, ...).
    pub(super) mobile: &'static [&'static str],
}

impl CallingCode {
    /// Whether `nsn` (the digits after the calling code) is a plausible number for this
    /// country: its length, no trunk `0` left in it, and NANP's area/exchange structure.
    pub(super) fn accepts(&self, nsn: &str) -> bool {
        let len = nsn.len();
        if len < self.min_len || len > self.max_len || !nsn.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        // Italy keeps the leading 0 of fixed numbers in international format; nobody else does.
        if nsn.starts_with('0') && self.code != "39" {
            return false;
        }
        if self.code == "1" {
            return is_nanp_number(nsn);
        }
        true
    }

    /// Whether `nsn` begins like a mobile number here (always true where that is unknown).
    pub(super) fn is_mobile(&self, nsn: &str) -> bool {
        self.mobile.is_empty()
            || self.mobile.iter().any(|prefix| {
                prefix.len() <= nsn.len()
                    && prefix
                        .bytes()
                        .zip(nsn.bytes())
                        .all(|(p, d)| p == b'?' || p == d)
            })
    }

    /// Whether mobile numbers are recognisable by their first digits in this country.
    pub(super) fn knows_mobile_prefixes(&self) -> bool {
        !self.mobile.is_empty()
    }
}

/// Splits international digits (no `+`, no `00`) into their calling code and the rest.
///
/// Calling codes form a prefix-free set, so at most one of the 1-, 2- and 3-digit prefixes is
/// assigned.
pub(super) fn split_calling_code(digits: &str) -> Option<(&'static CallingCode, &str)> {
    (1..=3).find_map(|len| {
        let code = digits.get(..len)?;
        let rest = digits.get(len..)?;
        calling_code(code).map(|entry| (entry, rest))
    })
}

/// The calling code written exactly as `code`, if assigned.
pub(super) fn calling_code(code: &str) -> Option<&'static CallingCode> {
    CALLING_CODES.iter().find(|entry| entry.code == code)
}

/// North American Numbering Plan: `NXX NXX XXXX`, N = 2..9 (area code and exchange).
pub(super) fn is_nanp_number(nsn: &str) -> bool {
    let bytes = nsn.as_bytes();
    bytes.len() == 10
        && bytes.iter().all(u8::is_ascii_digit)
        && (b'2'..=b'9').contains(&bytes[0])
        && (b'2'..=b'9').contains(&bytes[3])
}

/// Whether the first three digits of a 15-digit string are an assigned mobile country code.
pub(super) fn is_assigned_mcc(mcc: &str) -> bool {
    mcc.len() == 3
        && mcc
            .parse::<u16>()
            .is_ok_and(|code| MOBILE_COUNTRY_CODES.binary_search(&code).is_ok())
}

/// Whether unformatted digits with a trunk `0` are a mobile number in a national format we
/// recognise without a country: UK `07xxx xxxxxx`, France/Netherlands `06`/`07`, Sweden `07`,
/// Australia `04`, Germany `015`-`017`, Ireland `083`-`089`, Japan/Philippines `0x0`/`09`.
pub(super) fn is_national_mobile(digits: &str) -> bool {
    NATIONAL_MOBILE.iter().any(|&(prefix, min, max)| {
        digits.starts_with(prefix) && (min..=max).contains(&digits.len())
    })
}

/// Request headers that carry an opaque per-subscriber tracking identifier: flagged whatever
/// their value. Normalized (lowercase, `-`).
///
/// - `x-uidh`: Verizon Wireless "Unique Identifier Header", injected 2012-2016 (FCC consent
///   decree, 2016).
/// - `x-acr`: AT&T "Anonymous Customer Reference" (GSMA OneAPI ACR), trialled 2014.
/// - `x-vf-acr`: Vodafone's ACR header (Access Now, "The Rise of Mobile Tracking Headers", 2015).
/// - `x-amobee-1`: Amobee (Singtel group) advertising identifier inserted by operators (same
///   study).
/// - `x-up-subno`: Openwave/Unwired Planet gateway subscriber number, an opaque per-subscriber
///   id (`x-up-` is Openwave's prefix).
/// - `x-nokia-alias`: Nokia gateway subscriber alias.
/// - `x-subscriber-token`: generic operator subscriber token.
pub(super) const TRACKING_HEADERS: &[&str] = &[
    "x-uidh",
    "x-acr",
    "x-vf-acr",
    "x-amobee-1",
    "x-up-subno",
    "x-nokia-alias",
    "x-subscriber-token",
];

/// Words that, as the key a number is written under (`msisdn=`, `tel:`) or as a part of the
/// header name, say the number is a phone number. Compared with whole dash/underscore-separated
/// parts, so `client` does not match `cli`. `mobile` and `cell` are left out on purpose: they
/// name devices and radio cells as often as numbers (`Sec-CH-UA-Mobile`, `X-Cell-Id`).
pub(super) const PHONE_WORDS: &[&str] = &[
    "msisdn", "mdn", "phone", "tel", "cli", "clid", "caller", "calling", "callerid", "ani", "e164",
    "subno",
];

/// Substrings of a key that say the same when written as one word (`phoneNumber`, `userMsisdn`).
pub(super) const PHONE_STEMS: &[&str] =
    &["msisdn", "phone", "mobilenumber", "mobileno", "callingline"];

/// Substring of a key that says the number is an IMSI.
pub(super) const IMSI_STEM: &str = "imsi";

/// `(prefix, min length, max length)` of national mobile numbers written with a trunk `0`.
const NATIONAL_MOBILE: &[(&str, usize, usize)] = &[
    ("07", 10, 11),  // UK 07xxx xxxxxx (11); France 07, Sweden 07x (10)
    ("06", 10, 10),  // France, Netherlands
    ("04", 10, 10),  // Australia
    ("015", 11, 12), // Germany
    ("016", 11, 12),
    ("017", 11, 12),
    ("083", 10, 10), // Ireland
    ("085", 10, 10),
    ("086", 10, 10),
    ("087", 10, 10),
    ("089", 10, 10),
    ("080", 11, 11), // Japan 080/090 (070 is covered above)
    ("09", 11, 11),  // Japan 090, Philippines 09xx
];

/// ITU-T E.164 assigned country calling codes with national significant number lengths.
/// International networks (+8xx, +88x) and reserved codes are left out: numbers there are not
/// subscriber MSISDNs a gateway inserts.
const CALLING_CODES: &[CallingCode] = &[
    cc("1", 10, 10, &[]),
    cc("7", 10, 10, &["9", "7"]),
    cc("20", 8, 10, &["1"]),
    cc("27", 9, 9, &["6", "7", "8"]),
    cc("30", 10, 10, &["69"]),
    cc("31", 9, 9, &["6"]),
    cc("32", 8, 9, &["4"]),
    cc("33", 9, 9, &["6", "7"]),
    cc("34", 9, 9, &["6", "7"]),
    cc("36", 8, 9, &["20", "30", "31", "50", "70"]),
    cc("39", 6, 11, &["3"]),
    cc("40", 9, 9, &["7"]),
    cc("41", 9, 9, &["7"]),
    cc("43", 7, 13, &["6"]),
    cc("44", 9, 10, &["7"]),
    cc("45", 8, 8, &[]),
    cc("46", 7, 10, &["7"]),
    cc("47", 8, 8, &["4", "9"]),
    cc("48", 9, 9, &["4", "5", "6", "7", "8"]),
    cc("49", 6, 13, &["15", "16", "17"]),
    cc("51", 8, 9, &["9"]),
    cc("52", 10, 10, &[]),
    cc("53", 8, 8, &["5"]),
    cc("54", 10, 11, &["9"]),
    cc("55", 10, 11, &["??9"]),
    cc("56", 9, 9, &["9"]),
    cc("57", 10, 10, &["3"]),
    cc("58", 10, 10, &["4"]),
    cc("60", 9, 10, &["1"]),
    cc("61", 9, 9, &["4"]),
    cc("62", 9, 12, &["8"]),
    cc("63", 10, 10, &["9"]),
    cc("64", 8, 10, &["2"]),
    cc("65", 8, 8, &["8", "9"]),
    cc("66", 9, 9, &["6", "8", "9"]),
    cc("81", 9, 10, &["70", "80", "90"]),
    cc("82", 9, 10, &["1"]),
    cc("84", 9, 10, &["3", "5", "7", "8", "9"]),
    cc("86", 10, 11, &["1"]),
    cc("90", 10, 10, &["5"]),
    cc("91", 10, 10, &["6", "7", "8", "9"]),
    cc("92", 10, 10, &["3"]),
    cc("93", 9, 9, &["7"]),
    cc("94", 9, 9, &["7"]),
    cc("95", 8, 10, &["9"]),
    cc("98", 10, 10, &["9"]),
    cc("211", 9, 9, &[]),
    cc("212", 9, 9, &["6", "7"]),
    cc("213", 9, 9, &["5", "6", "7"]),
    cc("216", 8, 8, &["2", "4", "5", "9"]),
    cc("218", 9, 9, &["9"]),
    cc("220", 7, 7, &[]),
    cc("221", 9, 9, &["7"]),
    cc("222", 8, 8, &[]),
    cc("223", 8, 8, &[]),
    cc("224", 9, 9, &[]),
    cc("225", 10, 10, &[]),
    cc("226", 8, 8, &[]),
    cc("227", 8, 8, &[]),
    cc("228", 8, 8, &[]),
    cc("229", 8, 10, &[]),
    cc("230", 7, 8, &[]),
    cc("231", 8, 9, &[]),
    cc("232", 8, 8, &[]),
    cc("233", 9, 9, &["2", "5"]),
    cc("234", 8, 10, &["7", "8", "9"]),
    cc("235", 8, 8, &[]),
    cc("236", 8, 8, &[]),
    cc("237", 9, 9, &["6"]),
    cc("238", 7, 7, &[]),
    cc("239", 7, 7, &[]),
    cc("240", 9, 9, &[]),
    cc("241", 7, 8, &[]),
    cc("242", 9, 9, &[]),
    cc("243", 9, 9, &[]),
    cc("244", 9, 9, &["9"]),
    cc("245", 9, 9, &[]),
    cc("246", 7, 7, &[]),
    cc("248", 7, 7, &[]),
    cc("249", 9, 9, &[]),
    cc("250", 9, 9, &["7"]),
    cc("251", 9, 9, &["7", "9"]),
    cc("252", 7, 9, &[]),
    cc("253", 8, 8, &[]),
    cc("254", 9, 9, &["1", "7"]),
    cc("255", 9, 9, &["6", "7"]),
    cc("256", 9, 9, &["7"]),
    cc("257", 8, 8, &[]),
    cc("258", 8, 9, &["8"]),
    cc("260", 9, 9, &["7", "9"]),
    cc("261", 9, 9, &["3"]),
    cc("262", 9, 9, &["6"]),
    cc("263", 9, 9, &["7"]),
    cc("264", 8, 9, &["8"]),
    cc("265", 7, 9, &[]),
    cc("266", 8, 8, &[]),
    cc("267", 7, 8, &[]),
    cc("268", 8, 8, &[]),
    cc("269", 7, 7, &[]),
    cc("290", 4, 5, &[]),
    cc("291", 7, 7, &[]),
    cc("297", 7, 7, &[]),
    cc("298", 6, 6, &[]),
    cc("299", 6, 6, &[]),
    cc("350", 8, 8, &["5"]),
    cc("351", 9, 9, &["9"]),
    cc("352", 6, 11, &["6"]),
    cc("353", 7, 9, &["8"]),
    cc("354", 7, 7, &["6", "7", "8"]),
    cc("355", 8, 9, &["6"]),
    cc("356", 8, 8, &["7", "9"]),
    cc("357", 8, 8, &["9"]),
    cc("358", 6, 10, &["4", "5"]),
    cc("359", 8, 9, &["8", "9"]),
    cc("370", 8, 8, &["6"]),
    cc("371", 8, 8, &["2"]),
    cc("372", 7, 8, &["5"]),
    cc("373", 8, 8, &["6", "7"]),
    cc("374", 8, 8, &[]),
    cc("375", 9, 9, &["2", "3", "4"]),
    cc("376", 6, 6, &[]),
    cc("377", 8, 9, &["6"]),
    cc("378", 6, 10, &[]),
    cc("380", 9, 9, &["5", "6", "7", "9"]),
    cc("381", 8, 9, &["6"]),
    cc("382", 8, 8, &["6"]),
    cc("383", 8, 8, &["4"]),
    cc("385", 8, 9, &["9"]),
    cc("386", 8, 8, &["3", "4", "5", "6", "7"]),
    cc("387", 8, 8, &["6"]),
    cc("389", 8, 8, &["7"]),
    cc("420", 9, 9, &["6", "7"]),
    cc("421", 9, 9, &["9"]),
    cc("423", 7, 7, &[]),
    cc("500", 5, 5, &[]),
    cc("501", 7, 7, &[]),
    cc("502", 8, 8, &[]),
    cc("503", 8, 8, &[]),
    cc("504", 8, 8, &[]),
    cc("505", 8, 8, &[]),
    cc("506", 8, 8, &[]),
    cc("507", 7, 8, &[]),
    cc("508", 6, 6, &[]),
    cc("509", 8, 8, &[]),
    cc("590", 9, 9, &["6"]),
    cc("591", 8, 8, &["6", "7"]),
    cc("592", 7, 7, &[]),
    cc("593", 8, 9, &["9"]),
    cc("594", 9, 9, &["6"]),
    cc("595", 9, 9, &["9"]),
    cc("596", 9, 9, &["6"]),
    cc("597", 6, 7, &[]),
    cc("598", 8, 8, &["9"]),
    cc("599", 7, 7, &[]),
    cc("670", 7, 8, &[]),
    cc("672", 6, 6, &[]),
    cc("673", 7, 7, &[]),
    cc("674", 7, 7, &[]),
    cc("675", 7, 8, &[]),
    cc("676", 5, 7, &[]),
    cc("677", 5, 7, &[]),
    cc("678", 5, 7, &[]),
    cc("679", 7, 7, &[]),
    cc("680", 7, 7, &[]),
    cc("681", 6, 6, &[]),
    cc("682", 5, 5, &[]),
    cc("683", 4, 7, &[]),
    cc("685", 5, 7, &[]),
    cc("686", 5, 8, &[]),
    cc("687", 6, 6, &[]),
    cc("688", 5, 6, &[]),
    cc("689", 8, 8, &[]),
    cc("690", 4, 7, &[]),
    cc("691", 7, 7, &[]),
    cc("692", 7, 7, &[]),
    cc("850", 8, 10, &[]),
    cc("852", 8, 8, &["5", "6", "9"]),
    cc("853", 8, 8, &["6"]),
    cc("855", 8, 9, &[]),
    cc("856", 8, 10, &["20"]),
    cc("880", 10, 10, &["1"]),
    cc("886", 8, 9, &["9"]),
    cc("960", 7, 7, &[]),
    cc("961", 7, 8, &[]),
    cc("962", 8, 9, &["7"]),
    cc("963", 8, 9, &["9"]),
    cc("964", 8, 10, &["7"]),
    cc("965", 8, 8, &["5", "6", "9"]),
    cc("966", 9, 9, &["5"]),
    cc("967", 7, 9, &["7"]),
    cc("968", 8, 8, &["7", "9"]),
    cc("970", 8, 9, &["5"]),
    cc("971", 8, 9, &["5"]),
    cc("972", 8, 9, &["5"]),
    cc("973", 8, 8, &["3"]),
    cc("974", 7, 8, &["3", "5", "6", "7"]),
    cc("975", 7, 8, &["1", "7"]),
    cc("976", 8, 8, &["8", "9"]),
    cc("977", 8, 10, &["9"]),
    cc("992", 9, 9, &[]),
    cc("993", 8, 8, &["6"]),
    cc("994", 9, 9, &["4", "5", "7"]),
    cc("995", 9, 9, &["5"]),
    cc("996", 9, 9, &[]),
    cc("998", 9, 9, &["9"]),
];

const fn cc(
    code: &'static str,
    min_len: usize,
    max_len: usize,
    mobile: &'static [&'static str],
) -> CallingCode {
    CallingCode {
        code,
        min_len,
        max_len,
        mobile,
    }
}

/// ITU-T E.212 mobile country codes in use, sorted (for binary search). `001` and `999` are
/// the test and private-network codes, which lab and canary SIMs carry.
const MOBILE_COUNTRY_CODES: &[u16] = &[
    1, // test networks
    202, 204, 206, 208, 212, 213, 214, 216, 218, 219, 220, 221, 222, 225, 226, 228, 230, 231, 232,
    234, 235, 238, 240, 242, 244, 246, 247, 248, 250, 255, 257, 259, 260, 262, 266, 268, 270, 272,
    274, 276, 278, 280, 282, 283, 284, 286, 288, 289, 290, 292, 293, 294, 295, 297, 302, 308, 310,
    311, 312, 313, 314, 315, 316, 330, 332, 334, 338, 340, 342, 344, 346, 348, 350, 352, 354, 356,
    358, 360, 362, 363, 364, 365, 366, 368, 370, 372, 374, 376, //
    400, 401, 402, 404, 405, 406, 410, 412, 413, 414, 415, 416, 417, 418, 419, 420, 421, 422, 424,
    425, 426, 427, 428, 429, 430, 431, 432, 434, 436, 437, 438, 440, 441, 450, 452, 454, 455, 456,
    457, 460, 461, 466, 467, 470, 472, //
    502, 505, 510, 514, 515, 520, 525, 528, 530, 536, 537, 539, 540, 541, 542, 543, 544, 545, 546,
    547, 548, 549, 550, 551, 552, 553, 554, 555, //
    602, 603, 604, 605, 606, 607, 608, 609, 610, 611, 612, 613, 614, 615, 616, 617, 618, 619, 620,
    621, 622, 623, 624, 625, 626, 627, 628, 629, 630, 631, 632, 633, 634, 635, 636, 637, 638, 639,
    640, 641, 642, 643, 645, 646, 647, 648, 649, 650, 651, 652, 653, 654, 655, 657, 658,
    659, //
    702, 704, 706, 708, 710, 712, 714, 716, 722, 724, 730, 732, 734, 736, 738, 740, 742, 744, 746,
    748, 750, //
    901, // international (satellite, maritime, roaming hubs)
    999, // private networks
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobile_country_codes_are_sorted_and_unique() {
        assert!(
            MOBILE_COUNTRY_CODES
                .windows(2)
                .all(|pair| pair[0] < pair[1])
        );
    }

    #[test]
    fn calling_codes_are_prefix_free_and_sane() {
        for a in CALLING_CODES {
            assert!(
                a.min_len <= a.max_len && a.max_len + a.code.len() <= 15,
                "{}",
                a.code
            );
            for b in CALLING_CODES {
                if a.code != b.code {
                    assert!(
                        !b.code.starts_with(a.code),
                        "{} is a prefix of {}",
                        a.code,
                        b.code
                    );
                }
            }
        }
    }

    #[test]
    fn splits_calling_codes() {
        let (uk, nsn) = split_calling_code("447700900123").unwrap();
        assert_eq!((uk.code, nsn), ("44", "7700900123"));
        let (us, nsn) = split_calling_code("12025550123").unwrap();
        assert_eq!((us.code, nsn), ("1", "2025550123"));
        let (ie, nsn) = split_calling_code("353800000000").unwrap();
        assert_eq!((ie.code, nsn), ("353", "800000000"));
        assert!(split_calling_code("8881234").is_none());
    }

    #[test]
    fn nanp_needs_area_and_exchange_from_two_to_nine() {
        assert!(is_nanp_number("2025550123"));
        assert!(!is_nanp_number("1025550123"));
        assert!(!is_nanp_number("2020550123"));
        assert!(!is_nanp_number("202555012"));
    }

    #[test]
    fn mcc_lookup() {
        assert!(is_assigned_mcc("234"));
        assert!(is_assigned_mcc("310"));
        assert!(is_assigned_mcc("001"));
        assert!(!is_assigned_mcc("100"));
        assert!(!is_assigned_mcc("999x"));
        assert!(!is_assigned_mcc("800"));
    }

    #[test]
    fn mobile_prefix_wildcards() {
        let brazil = calling_code("55").unwrap();
        assert!(brazil.is_mobile("11900000000"));
        assert!(!brazil.is_mobile("1130000000"));
    }
}
