//! The in-memory binding table: client address (IPv4 host or IPv6 prefix) -> subscriber.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use headwall_identity::{Imsi, Msisdn};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// One subscriber session bound to an address, as accounting reported it.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The subscriber (Calling-Station-Id).
    pub msisdn: Msisdn,
    /// 3GPP-IMSI when the packet gateway sent it.
    pub imsi: Option<Imsi>,
    /// Acct-Session-Id of the session that owns the address.
    pub session_id: String,
    /// The NAS that reported the session (NAS-IP-Address, NAS-Identifier or source address).
    pub nas: String,
    /// Unix seconds of the last accounting packet for this session.
    pub updated_at: u64,
}

/// The answer to "who is behind this address?".
#[derive(Debug, Clone)]
pub enum Lookup {
    /// A fresh binding.
    Bound(Arc<Binding>),
    /// No binding covers the address.
    Unbound,
    /// A binding exists but has had no accounting for longer than `stale_after`: never used.
    Stale,
}

/// Unix seconds now: the clock `updated_at`, stale checks and sweeps are measured in.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `network` as the table keys it: host bits cleared, and an IPv4-mapped IPv6 prefix
/// (`::ffff:192.0.2.5/128`) as the IPv4 network it names (docs/design.md, RADIUS accounting:
/// addresses are canonical). The embedded table and Redis key bindings by this, and lookups
/// turn an address into its canonical form the same way, so one subscriber has one key
/// whichever way a socket or a packet spelled the address.
pub fn canonical_network(network: IpNet) -> IpNet {
    match network.trunc() {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map_or(IpNet::V6(v6), |v4| IpNet::V4(v4.trunc())),
            None => IpNet::V6(v6),
        },
        other => other,
    }
}

/// Address -> binding table; cheap to share behind an `Arc`.
pub struct SessionTable {
    bindings: papaya::HashMap<IpNet, Arc<Binding>>,
    /// Bit `n` set when some IPv6 binding has prefix length `n` (for longest-prefix lookup).
    v6_prefix_lengths: [AtomicU64; 3],
    stale_after_secs: u64,
}

impl SessionTable {
    /// An empty table whose bindings go stale after `stale_after_secs` without accounting.
    pub fn new(stale_after_secs: u64) -> SessionTable {
        SessionTable {
            bindings: papaya::HashMap::new(),
            v6_prefix_lengths: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
            stale_after_secs,
        }
    }

    /// Makes room for `additional` more bindings at once (loading at start: one allocation
    /// instead of a resize at every doubling).
    pub fn reserve(&self, additional: usize) {
        self.bindings.pin().reserve(additional);
    }

    /// Binds `network` (an IPv4 /32, or an IPv6 prefix) to `binding`; the newest session wins.
    /// Returns the binding it replaced, if any.
    pub fn bind(&self, network: IpNet, binding: Binding) -> Option<Arc<Binding>> {
        let network = canonical_network(network);
        if let IpNet::V6(v6) = network {
            let len = usize::from(v6.prefix_len());
            self.v6_prefix_lengths[len / 64].fetch_or(1 << (len % 64), Ordering::Release);
        }
        self.bindings
            .pin()
            .insert(network, Arc::new(binding))
            .cloned()
    }

    /// Interim-Update: refreshes the binding of `network` when it is unbound or bound to the same
    /// session; an Interim of an older session never takes an address back from its new owner.
    /// Returns whether it bound.
    ///
    /// Callers that mutate the table concurrently must serialise; the durable store does (one
    /// writer thread).
    pub fn refresh(&self, network: IpNet, binding: Binding) -> bool {
        let network = canonical_network(network);
        let current = self.bindings.pin().get(&network).cloned();
        match current {
            Some(bound) if bound.session_id != binding.session_id => false,
            _ => {
                self.bind(network, binding);
                true
            }
        }
    }

    /// Removes bindings with no accounting since `now - stale_after`. Returns how many.
    pub fn sweep(&self, now: u64) -> usize {
        let before = self.bindings.len();
        let limit = self.stale_after_secs;
        self.bindings
            .pin()
            .retain(|_, bound| now.saturating_sub(bound.updated_at) <= limit);
        before.saturating_sub(self.bindings.len())
    }

    /// The stale limit in seconds.
    pub fn stale_after_secs(&self) -> u64 {
        self.stale_after_secs
    }

    /// Removes the binding of `network` only when it belongs to `session_id`: a late Stop of an
    /// old session never unbinds the address's new owner. Returns whether it removed one.
    pub fn unbind(&self, network: IpNet, session_id: &str) -> bool {
        let network = canonical_network(network);
        matches!(
            self.bindings
                .pin()
                .remove_if(&network, |_, bound| bound.session_id == session_id),
            Ok(Some(_))
        )
    }

    /// Removes every binding reported by `nas` (Accounting-On/Off). Returns how many.
    pub fn unbind_nas(&self, nas: &str) -> usize {
        let before = self.bindings.len();
        self.bindings.pin().retain(|_, bound| bound.nas != nas);
        before.saturating_sub(self.bindings.len())
    }

    /// Who is behind `ip` at unix time `now`: IPv4 by exact address, IPv6 by longest prefix.
    /// An IPv4-mapped address (a dual-stack listener's IPv4 peer) is its IPv4 address: it never
    /// falls into an IPv6 prefix.
    pub fn lookup(&self, ip: IpAddr, now: u64) -> Lookup {
        let bindings = self.bindings.pin();
        let found = match ip.to_canonical() {
            IpAddr::V4(v4) => bindings.get(&IpNet::V4(Ipv4Net::from(v4))).cloned(),
            IpAddr::V6(v6) => self.longest_v6(&bindings, v6),
        };
        match found {
            None => Lookup::Unbound,
            Some(binding) if now.saturating_sub(binding.updated_at) > self.stale_after_secs => {
                Lookup::Stale
            }
            Some(binding) => Lookup::Bound(binding),
        }
    }

    /// Number of bindings held (fresh or stale).
    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    /// Whether the table holds no binding.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn longest_v6<G: papaya::Guard>(
        &self,
        bindings: &papaya::HashMapRef<'_, IpNet, Arc<Binding>, std::hash::RandomState, G>,
        ip: Ipv6Addr,
    ) -> Option<Arc<Binding>> {
        for len in (0..=128u8).rev() {
            let bit = usize::from(len);
            if self.v6_prefix_lengths[bit / 64].load(Ordering::Acquire) & (1 << (bit % 64)) == 0 {
                continue;
            }
            let Ok(prefix) = Ipv6Net::new(ip, len) else {
                continue;
            };
            if let Some(binding) = bindings.get(&IpNet::V6(prefix.trunc())) {
                return Some(binding.clone());
            }
        }
        None
    }
}

impl std::fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTable")
            .field("bindings", &self.bindings.len())
            .field("stale_after_secs", &self.stale_after_secs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(msisdn: &str, session: &str, nas: &str, at: u64) -> Binding {
        Binding {
            msisdn: Msisdn::parse(msisdn).unwrap(),
            imsi: None,
            session_id: session.into(),
            nas: nas.into(),
            updated_at: at,
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn newest_session_wins_and_late_stop_keeps_new_owner() {
        let table = SessionTable::new(7200);
        table.bind(net("10.0.0.1/32"), binding("447700900001", "s1", "gw", 100));
        table.bind(net("10.0.0.1/32"), binding("447700900002", "s2", "gw", 101));
        assert!(
            !table.unbind(net("10.0.0.1/32"), "s1"),
            "late stop of s1 must not unbind s2"
        );
        match table.lookup("10.0.0.1".parse().unwrap(), 102) {
            Lookup::Bound(b) => assert_eq!(b.msisdn.expose_digits(), "447700900002"),
            other => panic!("expected bound, got {other:?}"),
        }
        assert!(table.unbind(net("10.0.0.1/32"), "s2"));
        assert!(matches!(
            table.lookup("10.0.0.1".parse().unwrap(), 102),
            Lookup::Unbound
        ));
    }

    #[test]
    fn stale_binding_is_never_bound() {
        let table = SessionTable::new(60);
        table.bind(net("10.0.0.2/32"), binding("447700900003", "s", "gw", 1000));
        assert!(matches!(
            table.lookup("10.0.0.2".parse().unwrap(), 1060),
            Lookup::Bound(_)
        ));
        assert!(matches!(
            table.lookup("10.0.0.2".parse().unwrap(), 1061),
            Lookup::Stale
        ));
    }

    #[test]
    fn ipv6_longest_prefix_wins() {
        let table = SessionTable::new(60);
        table.bind(
            net("2001:db8::/32"),
            binding("447700900004", "wide", "gw", 0),
        );
        table.bind(
            net("2001:db8:1:2::/64"),
            binding("447700900005", "narrow", "gw", 0),
        );
        let lookup = |ip: &str| match table.lookup(ip.parse().unwrap(), 0) {
            Lookup::Bound(b) => Some(b.session_id.clone()),
            _ => None,
        };
        assert_eq!(lookup("2001:db8:1:2::99").as_deref(), Some("narrow"));
        assert_eq!(lookup("2001:db8:ffff::1").as_deref(), Some("wide"));
        assert_eq!(lookup("2001:db9::1"), None);
    }

    #[test]
    fn an_ipv4_mapped_address_is_its_ipv4_address() {
        let table = SessionTable::new(60);
        table.bind(net("10.0.0.7/32"), binding("447700900007", "v4", "gw", 0));
        // A binding that spans every IPv4-mapped address must never capture IPv4 peers.
        table.bind(
            net("::ffff:0:0/96"),
            binding("447700900008", "mapped", "gw", 0),
        );
        table.bind(net("::/0"), binding("447700900009", "everything", "gw", 0));
        let session = |ip: &str| match table.lookup(ip.parse().unwrap(), 0) {
            Lookup::Bound(b) => Some(b.session_id.clone()),
            _ => None,
        };
        assert_eq!(session("::ffff:10.0.0.7").as_deref(), Some("v4"));
        assert_eq!(session("10.0.0.7").as_deref(), Some("v4"));
        assert_eq!(session("::ffff:10.0.0.8"), None);
        // Bound through its mapped spelling, found by either.
        table.bind(
            net("::ffff:10.0.0.9/128"),
            binding("447700900010", "m", "gw", 0),
        );
        assert_eq!(session("10.0.0.9").as_deref(), Some("m"));
        assert!(table.unbind(net("10.0.0.9/32"), "m"));
        assert_eq!(session("::ffff:10.0.0.9"), None);
    }

    #[test]
    fn accounting_off_removes_only_that_nas() {
        let table = SessionTable::new(60);
        table.bind(net("10.0.0.1/32"), binding("447700900001", "a", "gw-a", 0));
        table.bind(net("10.0.0.2/32"), binding("447700900002", "b", "gw-b", 0));
        assert_eq!(table.unbind_nas("gw-a"), 1);
        assert_eq!(table.len(), 1);
        assert!(matches!(
            table.lookup("10.0.0.2".parse().unwrap(), 0),
            Lookup::Bound(_)
        ));
    }
}
