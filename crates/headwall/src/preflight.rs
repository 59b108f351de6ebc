//! What `check` finds beyond a valid configuration, and what `serve` refuses to start with:
//! every file the configuration names is there and readable (secrets owner-only), no two
//! listeners share an address, the files headwall writes can be written, and a listener open
//! beyond loopback is pointed out (docs/operations.md, "Before the first start").
//!
//! Nothing here creates, changes or binds anything: a `check` run leaves no trace, and `serve`
//! runs it before it creates its first file.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use headwall_policy::{AuditBackend, Config, RadiusSecret, SessionsBackend};

/// How much a finding matters: an error stops `serve`; a warning is worth reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One thing found. The message names keys and paths, never a file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) severity: Severity,
    pub(crate) message: String,
}

/// Every finding for `config`, errors first.
pub(crate) fn run(config: &Config) -> Vec<Finding> {
    let mut found = Found::default();
    inputs(config, &mut found);
    state(config, &mut found);
    listeners(config, &mut found);
    found
        .0
        .sort_by_key(|finding| finding.severity != Severity::Error);
    found.0
}

#[derive(Default)]
struct Found(Vec<Finding>);

impl Found {
    fn error(&mut self, message: String) {
        self.0.push(Finding {
            severity: Severity::Error,
            message,
        });
    }

    fn warning(&mut self, message: String) {
        self.0.push(Finding {
            severity: Severity::Warning,
            message,
        });
    }
}

/// Files the operator provides and headwall only reads.
fn inputs(config: &Config, found: &mut Found) {
    if let Some(subscribers) = &config.subscribers {
        let what = "`file` in [subscribers]";
        if readable(&subscribers.file, what, false, found) {
            match std::fs::read_to_string(&subscribers.file) {
                Ok(text) => {
                    let origin = subscribers.file.display().to_string();
                    if let Err(errors) = headwall_sessions::Profiles::parse(&origin, &text) {
                        for error in errors {
                            found.error(error.to_string());
                        }
                    }
                }
                Err(error) => found.error(format!(
                    "{what}: cannot read {}: {error}",
                    subscribers.file.display()
                )),
            }
        }
    }
    for client in config.radius.iter().flat_map(|radius| &radius.clients) {
        if let RadiusSecret::File(path) = &client.secret {
            let what = format!("`secret_file` of [[radius.clients]] {}", client.source);
            if readable(path, &what, true, found) {
                match std::fs::read_to_string(path) {
                    Ok(text) if text.trim_end_matches(['\r', '\n']).is_empty() => {
                        found.error(format!(
                            "{what}: {} is empty; write the shared secret into it",
                            path.display()
                        ))
                    }
                    Ok(_) => {}
                    Err(error) => {
                        found.error(format!("{what}: cannot read {}: {error}", path.display()));
                    }
                }
            }
        }
    }
    let pairs = [
        (
            "[api]",
            config.api.as_ref().and_then(|api| api.tls.as_ref()),
        ),
        ("[admin]", config.admin.tls.as_ref()),
    ];
    for (table, tls) in pairs {
        if let Some(tls) = tls
            && readable(
                &tls.cert_file,
                &format!("`tls_cert_file` in {table}"),
                false,
                found,
            )
            && readable(
                &tls.key_file,
                &format!("`tls_key_file` in {table}"),
                true,
                found,
            )
            && let Err(error) = headwall_api::server_config(&tls.cert_file, &tls.key_file)
        {
            found.error(format!("{table} TLS: {error}"));
        }
    }
    let stores = [
        match &config.audit.backend {
            AuditBackend::Postgres { tls, .. } => Some(("[audit]", tls)),
            AuditBackend::Embedded { .. } => None,
        },
        match &config.sessions.backend {
            SessionsBackend::Redis { tls, .. } => Some(("[sessions]", tls)),
            SessionsBackend::Embedded { .. } => None,
        },
    ];
    for (table, tls) in stores.into_iter().flatten() {
        if let Some(ca_file) = &tls.ca_file {
            readable(ca_file, &format!("`tls_ca_file` in {table}"), false, found);
        }
        if let Some(pair) = &tls.client {
            readable(
                &pair.cert_file,
                &format!("`tls_cert_file` in {table}"),
                false,
                found,
            );
            readable(
                &pair.key_file,
                &format!("`tls_key_file` in {table}"),
                true,
                found,
            );
        }
    }
}

/// Files headwall writes: a secret that is already there must be owner-only and well-formed;
/// one that is not must be creatable, as must the databases.
fn state(config: &Config, found: &mut Found) {
    let identity = &config.identity;
    for (path, what) in [
        (
            &identity.pseudonym_key_file,
            "`pseudonym_key_file` in [identity]",
        ),
        (
            &identity.signing_key_file,
            "`signing_key_file` in [identity]",
        ),
    ] {
        if path.exists() {
            if let Err(error) = crate::keys::read_key(path) {
                found.error(format!("{what}: {error:#}"));
            }
        } else {
            creatable(path, what, found);
        }
    }
    let tokens = std::iter::once((&config.admin.token_file, "`token_file` in [admin]")).chain(
        config
            .admin
            .read_token_file
            .iter()
            .map(|path| (path, "`read_token_file` in [admin]")),
    );
    for (token, what) in tokens {
        if token.exists() {
            if let Err(error) = crate::keys::read_private(token, "admin token file") {
                found.error(format!("{what}: {error:#}"));
            }
        } else {
            creatable(token, what, found);
        }
    }
    if let Err(error) =
        headwall_admin::suspended::load(&headwall_admin::suspended::path_in(&config.state_dir))
    {
        found.error(format!(
            "suspended partners: {error}; fix or remove the file"
        ));
    }
    if config.admin.read_token_file.as_ref() == Some(&config.admin.token_file) {
        found.error(
            "`read_token_file` and `token_file` in [admin] are the same file: the read-only \
             token needs a file of its own"
                .to_owned(),
        );
    }
    if let SessionsBackend::Embedded { path } = &config.sessions.backend {
        writable_or_creatable(path, "`path` in [sessions]", found);
    }
    if let Some(headwall_policy::AccessLog::File(path)) = &config.access_log {
        writable_or_creatable(path, "`path` in [access_log]", found);
    }
    if let AuditBackend::Embedded { path } = &config.audit.backend {
        writable_or_creatable(path, "`path` in [audit]", found);
        if let Some(folder) = path.parent().filter(|p| p.exists()) {
            // The journal, checkpoints and SQLite's -wal and -shm files are created beside it.
            writable_or_creatable(folder, "the folder of `path` in [audit]", found);
        }
    }
}

/// Two listeners on one address cannot both start; a listener beyond loopback serves whoever
/// reaches it.
fn listeners(config: &Config, found: &mut Found) {
    let mut tcp: Vec<(SocketAddr, &str)> = vec![(config.gateway.listen, "[gateway].listen")];
    if let Some(listen) = config.gateway.transparent_listen {
        tcp.push((listen, "[gateway].transparent_listen"));
    }
    tcp.push((config.admin.listen, "[admin].listen"));
    if let Some(api) = &config.api {
        tcp.push((api.listen, "[api].listen"));
    }
    for (i, (a, a_key)) in tcp.iter().enumerate() {
        for (b, b_key) in &tcp[i + 1..] {
            if collide(*a, *b) {
                found.error(format!(
                    "{a_key} ({a}) and {b_key} ({b}) are the same TCP address; give each \
                     listener its own port"
                ));
            }
        }
    }
    let proxies = std::iter::once(config.gateway.listen).chain(config.gateway.transparent_listen);
    for listen in proxies.filter(|addr| !addr.ip().is_loopback()) {
        if config.gateway.proxy_protocol || config.gateway.clients.is_some() {
            continue; // only `proxy_protocol_from` may connect, or only `clients` are served
        }
        found.warning(format!(
            "the gateway listens on {listen}, beyond loopback, and serves any client that \
             reaches it; list the subscriber networks in [gateway].clients = [\"CIDR\", ...] \
             (or make sure a firewall lets only them reach it)"
        ));
    }
    if !config.admin.listen.ip().is_loopback() && config.admin.tls.is_none() {
        found.warning(format!(
            "[admin].listen {} is beyond loopback without TLS: its bearer token and audit \
             answers cross the network in clear; add tls_cert_file and tls_key_file to \
             [admin], or keep it on loopback",
            config.admin.listen
        ));
    }
    if let Some(api) = &config.api
        && api.tls.is_none()
        && !api.listen.ip().is_loopback()
    {
        found.warning(format!(
            "[api].listen {} serves plain HTTP beyond loopback; only the TLS-terminating \
             balancers in `proxy_protocol_from` should reach it",
            api.listen
        ));
    }
}

/// Two TCP listen addresses that cannot both be bound: the same port on the same address, or
/// on any address when one of them is unspecified. Port 0 is always a fresh port.
fn collide(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() == 0 || a.port() != b.port() {
        return false;
    }
    let same_family = a.is_ipv4() == b.is_ipv4();
    // `[::]` is dual-stack on Linux by default: it takes the port on IPv4 too.
    let any_v6 = |addr: SocketAddr| addr.is_ipv6() && addr.ip().is_unspecified();
    a.ip() == b.ip()
        || any_v6(a)
        || any_v6(b)
        || (same_family && (a.ip().is_unspecified() || b.ip().is_unspecified()))
}

/// The file exists, is a file this process can read, and (for a secret) is owner-only.
fn readable(path: &Path, what: &str, secret: bool, found: &mut Found) -> bool {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            found.error(format!(
                "{what}: {} does not exist; create it or correct the path",
                path.display()
            ));
            return false;
        }
        Err(error) => {
            found.error(format!("{what}: cannot read {}: {error}", path.display()));
            return false;
        }
    };
    if !metadata.is_file() {
        found.error(format!("{what}: {} is not a file", path.display()));
        return false;
    }
    let mode = metadata.permissions().mode() & 0o777;
    if secret && mode & 0o077 != 0 {
        found.error(format!(
            "{what}: {} is accessible by group or others (mode {mode:o}); run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
        return false;
    }
    if let Err(error) = std::fs::File::open(path) {
        found.error(format!("{what}: cannot read {}: {error}", path.display()));
        return false;
    }
    true
}

/// `path` may be written: it exists and is writable, or it can be created.
fn writable_or_creatable(path: &Path, what: &str, found: &mut Found) {
    if path.exists() {
        if !may_write(path) {
            found.error(format!(
                "{what}: {} is not writable by this user; fix its owner or mode, or set \
                 --state-dir",
                path.display()
            ));
        }
    } else {
        creatable(path, what, found);
    }
}

/// `path` does not exist and can be created: its nearest existing ancestor is a folder this
/// user may write into.
fn creatable(path: &Path, what: &str, found: &mut Found) {
    let mut folder: PathBuf = path.parent().unwrap_or(Path::new(".")).to_owned();
    loop {
        if folder.as_os_str().is_empty() {
            folder = PathBuf::from(".");
        }
        if folder.exists() {
            break;
        }
        match folder.parent() {
            Some(parent) => folder = parent.to_owned(),
            None => break,
        }
    }
    if !folder.is_dir() {
        found.error(format!(
            "{what}: cannot create {}: {} is not a folder",
            path.display(),
            folder.display()
        ));
    } else if !may_write(&folder) {
        found.error(format!(
            "{what}: cannot create {}: {} is not writable by this user (read-only under \
             systemd's ProtectSystem=strict?); use an absolute path under the state folder, \
             or set --state-dir",
            path.display(),
            folder.display()
        ));
    }
}

/// What access(2) says for writing (and, for a folder, entering) as this process's user.
fn may_write(path: &Path) -> bool {
    let mut access = rustix::fs::Access::WRITE_OK;
    if path.is_dir() {
        access |= rustix::fs::Access::EXEC_OK;
    }
    rustix::fs::access(path, access).is_ok()
}

#[cfg(test)]
mod tests {
    use super::collide;

    #[test]
    fn listeners_collide_on_one_port_of_one_address_or_the_unspecified_one() {
        let addr = |text: &str| text.parse().unwrap_or_else(|_| panic!("{text}"));
        assert!(collide(addr("127.0.0.1:9090"), addr("127.0.0.1:9090")));
        assert!(collide(addr("0.0.0.0:9090"), addr("127.0.0.1:9090")));
        assert!(collide(addr("10.0.0.1:9090"), addr("0.0.0.0:9090")));
        assert!(collide(addr("[::]:9090"), addr("[::1]:9090")));
        assert!(collide(addr("[::]:9090"), addr("127.0.0.1:9090")));
        assert!(!collide(addr("127.0.0.1:9090"), addr("127.0.0.2:9090")));
        assert!(!collide(addr("127.0.0.1:9090"), addr("127.0.0.1:9091")));
        assert!(!collide(addr("127.0.0.1:0"), addr("127.0.0.1:0")));
    }
}
