//! TLS toward the shared stores: `tls_ca_file`, `tls_cert_file`, `tls_key_file` in `[audit]`
//! and `[sessions]`, and the rule that a URL reaching another machine must encrypt
//! (docs/config.md, "TLS to PostgreSQL and Redis").

use super::Loader;
use super::raw::Str;
use crate::config::StoreTls;
use crate::store::{PgSslMode, first_remote_host};

/// The three TLS keys of one table, as written.
pub(super) struct RawTls<'a> {
    pub(super) ca_file: Option<&'a Str>,
    pub(super) cert_file: Option<&'a Str>,
    pub(super) key_file: Option<&'a Str>,
}

impl RawTls<'_> {
    /// The first key given, to point an error at.
    fn first(&self) -> Option<&Str> {
        self.ca_file.or(self.cert_file).or(self.key_file)
    }
}

impl Loader<'_> {
    /// The keys resolved against the config's folder; a certificate without its key (or the
    /// reverse) is an error.
    pub(super) fn store_tls(&mut self, table: &str, raw: &RawTls<'_>) -> StoreTls {
        let ca_file = raw
            .ca_file
            .map(|ca| self.path(Some(ca), &format!("`tls_ca_file` in {table}"), ""));
        let client = self
            .tls_pair(
                table,
                raw.cert_file,
                raw.key_file,
                "for no client certificate",
            )
            .flatten();
        StoreTls { ca_file, client }
    }

    /// The TLS keys of a table whose backend never uses them.
    pub(super) fn unused_tls(&mut self, raw: &RawTls<'_>, backend: &str) {
        if let Some(key) = raw.first() {
            self.error(
                key.span().start,
                format!("the TLS keys are only used with backend = \"{backend}\"; remove them"),
            );
        }
    }

    /// `[audit].url`: a known `sslmode`, and one that can only encrypt when a host is another
    /// machine (`prefer`, the default, falls back to plaintext).
    pub(super) fn postgres_transport(&mut self, url: &Str, raw: &RawTls<'_>) {
        let mode = match PgSslMode::of_url(url.get_ref()) {
            Ok(mode) => mode,
            Err(why) => {
                self.error(
                    url.span().start,
                    format!(
                        "{why} in `url` in [audit]; use sslmode=verify-full toward another \
                         machine"
                    ),
                );
                return;
            }
        };
        if !mode.always_encrypts()
            && let Some(host) = first_remote_host(url.get_ref())
        {
            let given = if mode == PgSslMode::Disable {
                "sslmode=disable is plaintext"
            } else {
                "sslmode=prefer (the default) falls back to plaintext"
            };
            self.error(
                url.span().start,
                format!(
                    "`url` in [audit] reaches {host} without TLS for certain: {given}, and every \
                     disclosed number would cross the network in clear; add \
                     `?sslmode=verify-full` to the URL (the server's certificate is checked \
                     against `tls_ca_file`, or the system's trust store without it)"
                ),
            );
        }
        if mode == PgSslMode::Disable
            && let Some(key) = raw.first()
        {
            self.error(
                key.span().start,
                "the TLS keys in [audit] are never used with sslmode=disable; remove them or \
                 set sslmode=verify-full",
            );
        }
    }

    /// `[sessions].redis_url` (one URL, or a cluster's comma-separated seeds): `rediss://`
    /// toward another machine, and no `#insecure`.
    pub(super) fn redis_transport(&mut self, url: &Str, raw: &RawTls<'_>) {
        let urls: Vec<&str> = url.get_ref().split(',').map(str::trim).collect();
        for one in &urls {
            if one.contains('#') {
                self.error(
                    url.span().start,
                    "`redis_url` in [sessions] has a `#` fragment (`#insecure` turns certificate \
                     checks off); remove it and give the server's CA as `tls_ca_file`",
                );
                return;
            }
            if one.starts_with("redis://")
                && let Some(host) = first_remote_host(one)
            {
                self.error(
                    url.span().start,
                    format!(
                        "`redis_url` in [sessions] reaches {host} over plain redis://, and every \
                         binding of a number to an address would cross the network in clear; \
                         use rediss:// (the server's certificate is checked against \
                         `tls_ca_file`, or the system's trust store without it)"
                    ),
                );
                return;
            }
        }
        if !urls.iter().any(|one| one.starts_with("rediss://"))
            && let Some(key) = raw.first()
        {
            self.error(
                key.span().start,
                "the TLS keys in [sessions] are only used with a rediss:// URL; remove them or \
                 use rediss://",
            );
        }
    }
}
