//! A throwaway PostgreSQL server for tests: `initdb` into a temporary folder, `postgres` on a
//! free port of 127.0.0.1 with its Unix socket in that folder, trust authentication for the
//! superuser `headwall`, stopped and removed when the test ends.
//!
//! The server binaries come from `HEADWALL_PG_BIN`, else Debian's `/usr/lib/postgresql/N/bin`
//! (newest N), else `PATH`; missing, the test fails naming the Debian package `postgresql`.
//! PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system
//! user (created by the package) through `runuser`, in a folder it owns.
//!
//! The server runs under a small `sh` watchdog that reads our end of a pipe: when the test
//! process ends in any way (even SIGKILL) the pipe closes, the watchdog stops the server (fast
//! shutdown) and removes its folder, so no server outlives its test.

use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The superuser `initdb` creates; every database trusts it on 127.0.0.1.
pub const USER: &str = "headwall";

/// A server that takes TCP connections over TLS only ([`TestPostgres::start_tls`]).
pub struct ServerTls {
    /// The server's certificate chain (PEM).
    pub cert_pem: String,
    /// Its key (PEM).
    pub key_pem: String,
    /// With a CA (PEM), clients must also present a certificate it signed.
    pub client_ca_pem: Option<String>,
}

/// A running PostgreSQL server. Stopped and removed on drop (or, for [`TestPostgres::shared`],
/// when the test process exits).
pub struct TestPostgres {
    bin: PathBuf,
    folder: Option<tempfile::TempDir>,
    root: PathBuf,
    port: u16,
    watchdog: Child,
    pipe: Option<ChildStdin>,
}

impl TestPostgres {
    /// Starts a new server; panics with the reason (and the server's log) when it cannot.
    pub fn start() -> TestPostgres {
        TestPostgres::start_inner(None)
    }

    /// Starts a server whose TCP connections must use TLS (`hostssl` only in pg_hba.conf; a
    /// plaintext one is refused), with `tls`'s certificate.
    pub fn start_tls(tls: &ServerTls) -> TestPostgres {
        TestPostgres::start_inner(Some(tls))
    }

    fn start_inner(tls: Option<&ServerTls>) -> TestPostgres {
        let bin = server_binaries();
        let mut last_log = String::new();
        // A port chosen free can be taken before the server binds it: try a few.
        for _ in 0..3 {
            match TestPostgres::try_start(&bin, tls) {
                Ok(server) => return server,
                Err(log) => last_log = log,
            }
        }
        panic!("PostgreSQL did not start; its log:\n{last_log}");
    }

    /// One server per test process, started on first use: tests take a database each
    /// ([`TestPostgres::fresh_database`]). Stopped by its watchdog when the process exits.
    pub fn shared() -> &'static TestPostgres {
        static SHARED: OnceLock<TestPostgres> = OnceLock::new();
        SHARED.get_or_init(TestPostgres::start)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder holding the server's Unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("socket")
    }

    /// `postgres://headwall@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database with a name no other call in this process used, and returns the
    /// name (its URL: [`TestPostgres::url`]).
    pub fn fresh_database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let name = format!("test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|error| panic!("cannot create database {name}: {error}"));
        name
    }

    /// Runs `sql` (one or more statements) with `psql` in `database`, over the Unix socket;
    /// returns its unaligned, tuples-only output, or the error it printed.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let output = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.socket_dir())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                "-d",
                database,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|error| {
                format!(
                    "cannot run {}: {error} (Debian package postgresql-client)",
                    self.bin.join("psql").display()
                )
            })?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("postgres.log")).unwrap_or_default()
    }

    fn try_start(bin: &Path, tls: Option<&ServerTls>) -> Result<TestPostgres, String> {
        let folder = tempfile::Builder::new()
            .prefix("headwall-pg-")
            .tempdir()
            .expect("temporary folder");
        let root = folder.path().to_owned();
        let as_postgres = running_as_root();
        if as_postgres {
            let (uid, gid) = postgres_user();
            std::os::unix::fs::chown(&root, Some(uid), Some(gid))
                .expect("give the temporary folder to the postgres user");
        }
        let data = root.join("data");
        let socket = root.join("socket");
        let log = root.join("postgres.log");
        let initdb = user_command(as_postgres, &bin.join("initdb"), &root)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .unwrap_or_else(|error| panic!("cannot run initdb: {error}"));
        if !initdb.status.success() {
            return Err(format!(
                "initdb failed:\n{}{}",
                String::from_utf8_lossy(&initdb.stdout),
                String::from_utf8_lossy(&initdb.stderr)
            ));
        }
        if let Some(tls) = tls {
            configure_tls(&data, tls, as_postgres);
        }
        let made = user_command(as_postgres, Path::new("mkdir"), &root)
            .arg(&socket)
            .status();
        assert!(
            made.is_ok_and(|status| status.success()),
            "mkdir {socket:?}"
        );

        let port = free_port();
        // fd 3 keeps our pipe: a background job's stdin is /dev/null in a non-interactive sh.
        let script = r#"exec 3<&0
"$1" -D "$2" -p "$3" -k "$4" -h 127.0.0.1 -c max_connections=60 -c shared_buffers=16MB \
  >"$5" 2>&1 </dev/null &
pid=$!
( read _ignored <&3; kill -INT "$pid" 2>/dev/null ) &
wait "$pid"
status=$?
# A clean stop leaves nothing behind; a failed start keeps the log for the test to show.
[ "$status" -ne 0 ] || rm -rf "$6"
exit "$status""#;
        let mut watchdog = user_command(as_postgres, Path::new("sh"), &root)
            .arg("-c")
            .arg(script)
            .arg("headwall-pg")
            .arg(bin.join("postgres"))
            .arg(&data)
            .arg(port.to_string())
            .arg(&socket)
            .arg(&log)
            .arg(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start postgres: {error}"));
        let pipe = watchdog.stdin.take();
        let mut server = TestPostgres {
            bin: bin.to_owned(),
            folder: Some(folder),
            root,
            port,
            watchdog,
            pipe,
        };
        let deadline = Instant::now() + crate::patience(Duration::from_secs(30));
        loop {
            if let Ok(Some(_)) = server.watchdog.try_wait() {
                return Err(server.log());
            }
            if server.ready(&data) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!("not ready within 30 s\n{}", server.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The postmaster says `ready` in its pid file and takes connections.
    fn ready(&self, data: &Path) -> bool {
        let mut status = String::new();
        let pid_file = std::fs::File::open(data.join("postmaster.pid"))
            .and_then(|mut file| file.read_to_string(&mut status));
        pid_file.is_ok()
            && status.lines().any(|line| line.trim() == "ready")
            && TcpStream::connect_timeout(
                &SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
                Duration::from_secs(1),
            )
            .is_ok()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Closing the pipe makes the watchdog stop the server and remove the folder.
        drop(self.pipe.take());
        let deadline = Instant::now() + crate::patience(Duration::from_secs(20));
        loop {
            match self.watchdog.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    let _ = self.watchdog.kill();
                    let _ = self.watchdog.wait();
                    break;
                }
            }
        }
        // Whatever the watchdog left.
        drop(self.folder.take());
    }
}

/// `ssl = on` with `tls`'s files in the data folder, and a pg_hba.conf that takes TCP
/// connections over TLS only (with a client certificate when `tls` has a client CA).
fn configure_tls(data: &Path, tls: &ServerTls, as_postgres: bool) {
    use std::fmt::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    let write = |name: &str, text: &str, mode: u32| {
        let path = data.join(name);
        std::fs::write(&path, text).unwrap_or_else(|error| panic!("write {path:?}: {error}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .expect("chmod a TLS file");
        if as_postgres {
            let (uid, gid) = postgres_user();
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown a TLS file");
        }
    };
    write("server.crt", &tls.cert_pem, 0o644);
    write("server.key", &tls.key_pem, 0o600);
    let mut settings =
        String::from("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
    let mut hba = String::from("local all all trust\n");
    match &tls.client_ca_pem {
        Some(ca) => {
            write("client-ca.crt", ca, 0o644);
            settings.push_str("ssl_ca_file = 'client-ca.crt'\n");
            hba.push_str("hostssl all all 127.0.0.1/32 trust clientcert=verify-ca\n");
        }
        None => hba.push_str("hostssl all all 127.0.0.1/32 trust\n"),
    }
    let conf = data.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).expect("read postgresql.conf");
    let _ = write!(text, "{settings}");
    std::fs::write(&conf, text).expect("write postgresql.conf");
    std::fs::write(data.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
}

/// The folder holding `initdb`, `postgres` and `psql`.
fn server_binaries() -> PathBuf {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("HEADWALL_PG_BIN") {
        let dir = PathBuf::from(dir);
        assert!(
            has_server(&dir),
            "HEADWALL_PG_BIN={} holds no initdb and postgres",
            dir.display()
        );
        return dir;
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return bin;
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("initdb"))
            .find(|initdb| initdb.is_file())
            .and_then(|initdb| std::fs::canonicalize(initdb).ok())
            .and_then(|initdb| initdb.parent().map(Path::to_owned))
            .filter(|dir| has_server(dir))
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries (initdb, postgres) not found in HEADWALL_PG_BIN, \
             /usr/lib/postgresql/*/bin or PATH: install the Debian package postgresql \
             (scripts/test does)"
        )
    })
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// The `postgres` system user's uid and gid, from /etc/passwd.
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .unwrap_or_else(|| {
            panic!(
                "running as root, and there is no postgres system user to run PostgreSQL as: \
                 install the Debian package postgresql (it creates the user)"
            )
        })
}

/// `program` run as the postgres user when we are root (PostgreSQL refuses root), in `dir`.
fn user_command(as_postgres: bool, program: &Path, dir: &Path) -> Command {
    let mut command = if as_postgres {
        // runuser (util-linux) lives in sbin, which a CI's PATH may lack.
        let runuser = ["/usr/sbin/runuser", "/sbin/runuser"]
            .into_iter()
            .find(|path| Path::new(path).is_file())
            .unwrap_or("runuser");
        let mut command = Command::new(runuser);
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    };
    command.current_dir(dir);
    command
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port on 127.0.0.1")
}
