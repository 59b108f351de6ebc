//! Dev-only helpers shared by every crate's tests: recording origins on chosen loopback
//! addresses, the real `headwall` binary as a child process, raw requests from a chosen source
//! address, and bounded waiting.
//!
//! Addresses: partners listen on 127.0.0.2 and 127.0.0.4, ordinary websites on 127.0.0.3,
//! subscribers connect from 127.0.0.5, unbound clients from 127.0.0.6.

pub mod postgres;
pub mod tls;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use headwall_leakcheck::{EchoOrigin, ProbeResponse, ReceivedRequest, proxy_get, send_raw};

/// SplitMix64: a small deterministic generator for test and benchmark data, so that a failure
/// or a measurement can be replayed from its seed. Not for anything that must be unpredictable.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose whole sequence follows from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (`bound` > 0; modulo, so very slightly biased for huge bounds).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// An index in `0..len` (`len` > 0).
    pub fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(len as u64)).unwrap_or(0)
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Loopback address `127.0.0.last`.
pub fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A recording origin on `127.0.0.last` and a free port.
pub async fn origin(last: u8) -> EchoOrigin {
    EchoOrigin::start(SocketAddr::new(loopback(last), 0))
        .await
        .unwrap_or_else(|error| panic!("cannot start an origin on 127.0.0.{last}: {error}"))
}

/// How long to wait for things that settle asynchronously; `HEADWALL_TEST_PATIENCE` (a
/// multiplier) stretches it on slow machines.
pub fn patience(base: Duration) -> Duration {
    let factor = std::env::var("HEADWALL_TEST_PATIENCE")
        .ok()
        .and_then(|value| value.parse::<u32>().ok())
        .unwrap_or(1);
    base * factor.max(1)
}

/// A temporary folder removed on drop.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary folder")
}

/// The real `headwall` binary running `serve` on a configuration written to a temporary folder.
/// Its stderr (the log) is captured; the process is killed on drop.
pub struct ServeProcess {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    /// The explicit listener's address, read from the start-up line.
    pub explicit: SocketAddr,
    /// The admin listener's address, read from the start-up line.
    pub admin: SocketAddr,
    /// The RADIUS listener's address, when `[radius]` is configured.
    pub radius: Option<SocketAddr>,
    /// The transparent listener's address, when `[gateway].transparent_listen` is set.
    pub transparent: Option<SocketAddr>,
    /// The HTTPS API listener's address, when `[api]` is configured.
    pub api: Option<SocketAddr>,
    /// The folder holding `headwall.toml` and its state.
    pub dir: tempfile::TempDir,
}

impl ServeProcess {
    /// Writes `config` as `headwall.toml` in a new folder and starts `binary serve` on it,
    /// waiting for the `headwall ready` line.
    pub fn start(binary: &Path, config: &str) -> ServeProcess {
        let dir = temp_dir();
        Self::start_in(binary, config, dir)
    }

    /// Like [`ServeProcess::start`] in a given folder (which may hold subscribers.csv etc.).
    pub fn start_in(binary: &Path, config: &str, dir: tempfile::TempDir) -> ServeProcess {
        Self::start_with(Command::new(binary), config, dir)
    }

    /// Like [`ServeProcess::start`] inside network namespace `netns` (`ip netns exec`).
    pub fn start_in_netns(binary: &Path, config: &str, netns: &str) -> ServeProcess {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", netns]).arg(binary);
        Self::start_with(command, config, temp_dir())
    }

    fn start_with(mut command: Command, config: &str, dir: tempfile::TempDir) -> ServeProcess {
        let config_path = dir.path().join("headwall.toml");
        std::fs::write(&config_path, config).expect("write config");
        command.arg("serve").arg("--config").arg(&config_path);
        Self::spawn(command, dir)
    }

    /// Runs `command` (the binary with `serve` and its arguments, any environment), keeping
    /// `dir` for the test, and waits for the `headwall ready` line.
    pub fn start_command(command: Command, dir: tempfile::TempDir) -> ServeProcess {
        Self::spawn(command, dir)
    }

    fn spawn(mut command: Command, dir: tempfile::TempDir) -> ServeProcess {
        let mut child = command
            .env("HEADWALL_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start headwall serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("headwall ready") {
                    let _ = ready_tx.send(line.clone());
                }
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
        let ready = ready_rx.recv_timeout(patience(Duration::from_secs(20)));
        let Ok(line) = ready else {
            let _ = child.kill();
            let log = log
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .join("\n");
            panic!("headwall serve did not become ready; log:\n{log}");
        };
        ServeProcess {
            child,
            log,
            explicit: field_addr(&line, "explicit="),
            admin: field_addr(&line, "admin="),
            radius: optional_addr(&line, "radius="),
            transparent: optional_addr(&line, "transparent="),
            api: optional_addr(&line, "api="),
            dir,
        }
    }

    /// Every log line so far.
    pub fn log(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Kills the process with SIGKILL (no shutdown, no flush) and returns its folder, so a test
    /// can start it again on the same state.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let placeholder = temp_dir();
        std::mem::replace(&mut self.dir, placeholder)
    }

    /// Stops the process with SIGTERM (a graceful shutdown: in-flight work finishes, state is
    /// flushed), waits for it to exit, and returns its exit code and its folder.
    pub fn terminate(self) -> (Option<i32>, tempfile::TempDir) {
        self.signal("TERM");
        self.wait()
    }

    /// Sends signal `name` (`TERM`, `HUP`, …) without waiting.
    pub fn signal(&self, name: &str) {
        // The shell's built-in `kill`: no procps package needed.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -{name} {}", self.child.id()))
            .status();
    }

    /// Waits (up to 20 s, stretched by patience) for the process to exit; returns its exit code
    /// (`None` if it had to be killed) and its folder.
    pub fn wait(mut self) -> (Option<i32>, tempfile::TempDir) {
        let deadline = Instant::now() + patience(Duration::from_secs(20));
        let code = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.code(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = self.child.kill();
                    break None;
                }
            }
        };
        let placeholder = temp_dir();
        (code, std::mem::replace(&mut self.dir, placeholder))
    }

    /// The process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The folder's path joined with `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one accounting request with the real `radclient` (Debian package freeradius-utils):
/// `attributes` one per line, e.g. `Acct-Status-Type = Start`. Returns whether a valid
/// response came back within 3 s (radclient exits 0 only then).
pub fn radclient(server: SocketAddr, secret: &str, attributes: &str) -> bool {
    use std::io::Write;
    let mut child = Command::new("radclient")
        .args(["-r", "1", "-t", "3", "-q"])
        .arg(server.to_string())
        .args(["acct", secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("radclient not found: install Debian package freeradius-utils (scripts/test does)");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(attributes.as_bytes());
    }
    child.wait().is_ok_and(|status| status.success())
}

/// `field=ADDR` of the start-up line, or `None` for `field=off` or no such field.
fn optional_addr(line: &str, field: &str) -> Option<SocketAddr> {
    (line.contains(field) && !line.contains(&format!("{field}off")))
        .then(|| field_addr(line, field))
}

fn field_addr(line: &str, field: &str) -> SocketAddr {
    let start = line
        .find(field)
        .unwrap_or_else(|| panic!("no {field} in start-up line: {line}"))
        + field.len();
    line[start..]
        .split_whitespace()
        .next()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("bad {field} in start-up line: {line}"))
}

/// Retries `check` until it returns true or `patience(limit)` passes.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + patience(limit);
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A real `redis-server` (Debian package redis-server) on a free loopback port, with its data
/// in a temporary folder and no persistence; stopped on drop. [`RedisServer::stop`] and
/// [`RedisServer::restart`] simulate an outage on the same port.
pub struct RedisServer {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a standalone server.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (e.g. cluster mode).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let addr = free_port();
        let mut server = RedisServer {
            child: None,
            addr,
            dir: temp_dir(),
            extra: extra.iter().map(|arg| (*arg).to_owned()).collect(),
        };
        server.restart();
        server
    }

    /// A server that speaks only TLS on its port, with `server`'s certificate; with
    /// `client_ca`, clients must present a certificate that CA signed.
    pub fn start_tls(server: &tls::PemPair, client_ca: Option<&Path>) -> RedisServer {
        let path = |path: &Path| path.display().to_string();
        let addr = free_port();
        let mut extra = vec![
            "--port".to_owned(),
            "0".to_owned(),
            "--tls-port".to_owned(),
            addr.port().to_string(),
            "--tls-cert-file".to_owned(),
            path(&server.cert_file),
            "--tls-key-file".to_owned(),
            path(&server.key_file),
        ];
        match client_ca {
            Some(ca) => extra.extend([
                "--tls-ca-cert-file".to_owned(),
                path(ca),
                "--tls-auth-clients".to_owned(),
                "yes".to_owned(),
            ]),
            None => extra.extend(["--tls-auth-clients".to_owned(), "no".to_owned()]),
        }
        let mut server = RedisServer {
            child: None,
            addr,
            dir: temp_dir(),
            extra,
        };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// `rediss://127.0.0.1:PORT` (a [`RedisServer::start_tls`] server).
    pub fn tls_url(&self) -> String {
        format!("rediss://{}", self.addr)
    }

    /// Kills the server (an outage); the port stays reserved for [`RedisServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.addr.port().to_string())
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server not found: install Debian package redis-server (scripts/test does)",
            );
        self.child = Some(child);
        let deadline = Instant::now() + patience(Duration::from_secs(10));
        while std::net::TcpStream::connect(self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A Redis Cluster of three masters on loopback, no replicas, made with `redis-cli --cluster
/// create`. `cluster-require-full-coverage no`: while one master is down the others keep
/// serving their slots (as an operator running without replicas should configure it).
pub struct RedisCluster {
    /// The masters; [`RedisServer::stop`] one for an outage of its slots.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three masters and joins them; waits until every node says `cluster_state:ok`.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-require-full-coverage",
                    "no",
                ])
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for node in &nodes {
            create.arg(node.addr.to_string());
        }
        let output = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli not found: install Debian package redis-tools (scripts/test does)");
        assert!(
            output.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_until_ok();
        cluster
    }

    /// `redis://127.0.0.1:PORT` of every master: the seed nodes.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Waits until every running master says `cluster_state:ok` (after a start or a restart).
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + patience(Duration::from_secs(20));
        for node in self.nodes.iter().filter(|node| node.child.is_some()) {
            while !redis_cli(node.addr, &["cluster", "info"]).contains("cluster_state:ok") {
                assert!(
                    Instant::now() < deadline,
                    "the cluster is not ok on {}",
                    node.addr
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Which of [`RedisCluster::nodes`] serves `key`'s slot.
    pub fn owner(&self, key: &str) -> usize {
        let slot: u16 = redis_cli(self.nodes[0].addr, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT answers a number");
        let listing = redis_cli(self.nodes[0].addr, &["cluster", "nodes"]);
        for line in listing.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(addr) = fields.get(1) else { continue };
            let port = addr
                .split('@')
                .next()
                .and_then(|addr| addr.rsplit(':').next())
                .and_then(|port| port.parse::<u16>().ok());
            let serves = fields.iter().skip(8).any(|range| {
                let (low, high) = range.split_once('-').unwrap_or((range, range));
                matches!((low.parse::<u16>(), high.parse::<u16>()), (Ok(low), Ok(high)) if (low..=high).contains(&slot))
            });
            if serves
                && let Some(index) = self
                    .nodes
                    .iter()
                    .position(|node| Some(node.addr.port()) == port)
            {
                return index;
            }
        }
        panic!("no master serves slot {slot}:\n{listing}");
    }
}

/// `redis-cli -h 127.0.0.1 -p PORT ARGS…`'s output (empty when it cannot run).
fn redis_cli(addr: SocketAddr, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p"])
        .arg(addr.port().to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port free right now.
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
}
