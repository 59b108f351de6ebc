//! Single values: socket addresses, durations, networks, ports, paths and URLs, each parsed
//! or reported against its span.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::Loader;
use super::raw::Str;
use crate::duration::parse_duration;

impl Loader<'_> {
    pub(super) fn socket(&mut self, value: &Str, what: &str) -> Option<SocketAddr> {
        match value.get_ref().parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(
                    value.span().start,
                    format!(
                        "invalid address `{}` for {what}: expected IP:port, e.g. \
                         \"127.0.0.1:8080\" or \"[::1]:8080\" (host names are not accepted)",
                        value.get_ref()
                    ),
                );
                None
            }
        }
    }

    pub(super) fn socket_or(
        &mut self,
        value: Option<&Str>,
        what: &str,
        default: SocketAddr,
    ) -> SocketAddr {
        value.and_then(|v| self.socket(v, what)).unwrap_or(default)
    }

    pub(super) fn duration(
        &mut self,
        value: Option<&Str>,
        what: &str,
        default: Duration,
    ) -> Duration {
        let Some(value) = value else { return default };
        match parse_duration(value.get_ref()) {
            Ok(d) if d.is_zero() => {
                self.error(
                    value.span().start,
                    format!("{what} must be greater than zero, e.g. \"30s\""),
                );
                default
            }
            Ok(d) => d,
            Err(why) => {
                self.error(
                    value.span().start,
                    format!("invalid duration `{}` for {what}: {why}", value.get_ref()),
                );
                default
            }
        }
    }

    pub(super) fn net(&mut self, value: &Str, what: &str) -> Option<IpNet> {
        let text = value.get_ref().as_str();
        let net = if text.contains('/') {
            text.parse::<IpNet>().ok()
        } else {
            text.parse::<IpAddr>().ok().map(IpNet::from)
        };
        match net {
            Some(net) if net.trunc() != net => {
                self.error(
                    value.span().start,
                    format!(
                        "network `{text}` in {what} has bits set after the prefix; write `{}` \
                         for the whole network, or `{}/{}` for the one address",
                        net.trunc(),
                        net.addr(),
                        net.max_prefix_len()
                    ),
                );
                None
            }
            Some(net) => Some(net),
            None => {
                self.error(
                    value.span().start,
                    format!(
                        "invalid address or network `{text}` in {what}: expected an IP address or \
                         CIDR, e.g. \"192.0.2.10\", \"10.0.0.0/8\" or \"2001:db8::/32\""
                    ),
                );
                None
            }
        }
    }

    pub(super) fn port(&mut self, value: &Spanned<i64>, what: &str) -> Option<u16> {
        match u16::try_from(*value.get_ref()) {
            Ok(port) if port != 0 => Some(port),
            _ => {
                self.error(
                    value.span().start,
                    format!(
                        "port {} in {what} is out of range; use 1 to 65535",
                        value.get_ref()
                    ),
                );
                None
            }
        }
    }

    /// A file the operator provides: relative to the configuration's folder.
    pub(super) fn path(&mut self, value: Option<&Str>, what: &str, default: &str) -> PathBuf {
        self.path_in(self.folders.config, value, what, default)
    }

    /// A file headwall writes: relative to the state folder.
    pub(super) fn state_path(&mut self, value: Option<&Str>, what: &str, default: &str) -> PathBuf {
        self.path_in(self.folders.state, value, what, default)
    }

    fn path_in(&mut self, dir: &Path, value: Option<&Str>, what: &str, default: &str) -> PathBuf {
        match value {
            Some(v) if v.get_ref().trim().is_empty() => {
                self.error(
                    v.span().start,
                    format!("{what} is empty; give a file path, e.g. \"{default}\""),
                );
                dir.join(default)
            }
            Some(v) => dir.join(v.get_ref()),
            None => dir.join(default),
        }
    }

    pub(super) fn url(&mut self, value: &Str, what: &str, schemes: &[&str]) -> String {
        let url = value.get_ref();
        let ok = schemes.iter().any(|scheme| {
            url.strip_prefix(scheme)
                .and_then(|rest| rest.strip_prefix("://"))
                .is_some_and(|rest| !rest.is_empty())
        });
        if !ok || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            let forms: Vec<String> = schemes.iter().map(|s| format!("{s}://...")).collect();
            self.error(
                value.span().start,
                format!("invalid URL for {what}: expected {}", forms.join(" or ")),
            );
        }
        url.clone()
    }
}
