//! The `Date` field of the gateway's responses (RFC 9110 §6.6.1, IMF-fixdate), made once a
//! second and shared.

use std::sync::{Mutex, PoisonError};

use http::HeaderValue;

/// The cached value and the second it was made for.
static CACHE: Mutex<Option<(u64, HeaderValue)>> = Mutex::new(None);

/// Now as `Sun, 06 Nov 1994 08:49:37 GMT`, a header value (cloning it copies nothing).
pub(crate) fn header() -> HeaderValue {
    let secs = headwall_sessions::unix_now();
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    match cache.as_ref() {
        Some((at, value)) if *at == secs => value.clone(),
        _ => {
            // An IMF-fixdate is always a valid header value.
            let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(imf_fixdate(secs)))
                .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
            *cache = Some((secs, value.clone()));
            value
        }
    }
}

/// `secs` since the Unix epoch as an IMF-fixdate.
fn imf_fixdate(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let date = headwall_sessions::Date::from_unix(secs);
    let time = secs % 86_400;
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[usize::try_from(secs / 86_400 % 7).unwrap_or(0)],
        date.day,
        MONTHS[usize::try_from(date.month.saturating_sub(1)).unwrap_or(0) % 12],
        date.year,
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_imf_fixdate() {
        assert_eq!(super::imf_fixdate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            super::imf_fixdate(784_111_777),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            super::imf_fixdate(951_782_400),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            super::imf_fixdate(1_796_256_000),
            "Thu, 03 Dec 2026 00:00:00 GMT"
        );
    }
}
