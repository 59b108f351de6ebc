//! The in-memory binding table: client address (IPv4 host or IPv6 prefix) -> subscriber.

mod shards;

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};

use headwall_identity::{Imsi, Msisdn};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use shards::{Shards, V4Slot, V6Key, V6Slot};

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

/// The answer to "who is behind this address?": the whole [`Binding`], or (the data plane's
/// question, [`SessionTable::lookup_subscriber`]) only the subscriber.
#[derive(Debug, Clone)]
pub enum Lookup<B = Binding> {
    /// A fresh binding (a copy: the table keeps its own compact form).
    Bound(B),
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

/// A binding as the table holds it, inline in its slot (crates/headwall-sessions/BENCH.md,
/// "Compact bindings"): the numbers as integers, the session id inline when short, the NAS as
/// an index into the table's NAS names. 56 bytes, against a [`Binding`]'s 104 plus four heap
/// strings and an `Arc`.
#[derive(Clone)]
struct Compact {
    /// The MSISDN's digits as a number (it has no leading zero).
    msisdn: u64,
    /// The IMSI's digits as a number; `imsi_digits` says how many (leading zeros are kept).
    imsi: u64,
    updated_at: u64,
    session_id: SmallStr,
    nas: u32,
    /// 0: no IMSI; else 14 or 15.
    imsi_digits: u8,
}

impl Compact {
    fn new(binding: &Binding, nas: u32) -> Option<Compact> {
        let msisdn = binding.msisdn.expose_digits().parse().ok()?;
        let (imsi, imsi_digits) = match &binding.imsi {
            None => (0, 0),
            Some(imsi) => {
                let digits = imsi.expose_digits();
                (digits.parse().ok()?, u8::try_from(digits.len()).ok()?)
            }
        };
        Some(Compact {
            msisdn,
            imsi,
            updated_at: binding.updated_at,
            session_id: SmallStr::new(&binding.session_id),
            nas,
            imsi_digits,
        })
    }

    /// The binding again, `None` only if the digits no longer parse (they always do: they came
    /// from a parsed [`Msisdn`] and [`Imsi`]).
    fn binding(&self, nas: &str) -> Option<Binding> {
        let mut buffer = [0u8; 20];
        let imsi = match self.imsi_digits {
            0 => None,
            width => Some(Imsi::parse(digits(self.imsi, width, &mut buffer)).ok()?),
        };
        Some(Binding {
            msisdn: Msisdn::parse(digits(self.msisdn, 0, &mut buffer)).ok()?,
            imsi,
            session_id: self.session_id.as_str().to_owned(),
            nas: nas.to_owned(),
            updated_at: self.updated_at,
        })
    }
}

/// `value`'s decimal digits, zero-padded to `width` (at most 20), written into `buffer`: a lookup
/// turns the stored numbers back into text on every hit, so without the formatting machinery.
fn digits(mut value: u64, width: u8, buffer: &mut [u8; 20]) -> &str {
    let width = usize::from(width).min(buffer.len());
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if start == 0 || (value == 0 && buffer.len() - start >= width) {
            break;
        }
    }
    std::str::from_utf8(&buffer[start..]).unwrap_or_default()
}

/// A string of up to 22 bytes inline (a 3GPP Acct-Session-Id is usually 16 hex digits), longer
/// ones on the heap; 24 bytes either way.
#[derive(Clone)]
enum SmallStr {
    Inline { len: u8, bytes: [u8; 22] },
    Heap(Box<str>),
}

impl SmallStr {
    fn new(text: &str) -> SmallStr {
        let mut bytes = [0u8; 22];
        match (u8::try_from(text.len()), bytes.get_mut(..text.len())) {
            (Ok(len), Some(prefix)) => {
                prefix.copy_from_slice(text.as_bytes());
                SmallStr::Inline { len, bytes }
            }
            _ => SmallStr::Heap(text.into()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            SmallStr::Inline { len, bytes } => bytes
                .get(..usize::from(*len))
                .and_then(|prefix| std::str::from_utf8(prefix).ok())
                .unwrap_or_default(),
            SmallStr::Heap(text) => text,
        }
    }
}

/// The NAS names bindings refer to by index: a deployment has a handful, so each binding
/// carries 4 bytes instead of a string. Names are never removed (an Accounting-Off keeps its
/// NAS's index for the next Start). Readers load the list without a lock; a new name replaces
/// it (rare: once per NAS).
#[derive(Default)]
struct NasNames {
    names: arc_swap::ArcSwap<Vec<Box<str>>>,
    ids: std::sync::Mutex<std::collections::HashMap<Box<str>, u32>>,
}

impl NasNames {
    /// `name`'s index, given a new one the first time.
    fn intern(&self, name: &str) -> u32 {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = ids.get(name) {
            return *id;
        }
        let mut names = Vec::clone(&self.names.load());
        let id = u32::try_from(names.len()).unwrap_or(u32::MAX);
        names.push(name.into());
        self.names.store(std::sync::Arc::new(names));
        ids.insert(name.into(), id);
        id
    }

    /// `name`'s index if some binding ever used it.
    fn find(&self, name: &str) -> Option<u32> {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .copied()
    }

    fn name<R>(&self, id: u32, with: impl FnOnce(&str) -> R) -> R {
        let names = self.names.load();
        let name = usize::try_from(id)
            .ok()
            .and_then(|id| names.get(id))
            .map_or("", |name| name);
        with(name)
    }
}

/// Address -> binding table; cheap to share behind an `Arc`.
///
/// IPv4 and IPv6 bindings live in two sharded open-addressing maps ([`shards`]): an IPv4 lookup
/// reads one cache line. An IPv4 key keeps its prefix length, so the IPv4 network an IPv4-mapped
/// IPv6 prefix names (`::ffff:0:0/96` is `0.0.0.0/0`) is held, and removable, but no lookup of a
/// host address ever reaches it.
pub struct SessionTable {
    v4: Shards<V4Slot>,
    v6: Shards<V6Slot>,
    nas: NasNames,
    /// Bit `n` set when some IPv6 binding has prefix length `n` (for longest-prefix lookup).
    v6_prefix_lengths: [AtomicU64; 3],
    stale_after_secs: u64,
}

/// Where a canonical network lives in the table.
enum Key {
    V4(u64),
    V6(V6Key),
}

impl Key {
    fn of(network: IpNet) -> Key {
        match canonical_network(network) {
            IpNet::V4(v4) => Key::V4(v4_key(v4.network(), v4.prefix_len())),
            IpNet::V6(v6) => Key::V6(v6_key(v6.network(), v6.prefix_len())),
        }
    }
}

/// An IPv4 network as a key: the address above its prefix length.
fn v4_key(address: Ipv4Addr, len: u8) -> u64 {
    (u64::from(address.to_bits()) << 8) | u64::from(len)
}

/// An IPv6 network (host bits already clear) as a key.
fn v6_key(network: Ipv6Addr, len: u8) -> V6Key {
    let bits = network.to_bits();
    V6Key {
        high: (bits >> 64) as u64,
        low: bits as u64,
        len,
    }
}

impl SessionTable {
    /// An empty table whose bindings go stale after `stale_after_secs` without accounting.
    pub fn new(stale_after_secs: u64) -> SessionTable {
        // A per-process seed: where an address lands is not predictable from outside.
        let seed = RandomState::new().hash_one(0x6865_6164_7761_6c6cu64);
        SessionTable {
            v4: Shards::new(seed),
            v6: Shards::new(seed.rotate_left(32)),
            nas: NasNames::default(),
            v6_prefix_lengths: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
            stale_after_secs,
        }
    }

    /// Makes room for `additional` more IPv4 bindings at once (loading at start: one allocation
    /// per shard instead of a rehash at every doubling). IPv6 shards grow as they fill.
    pub fn reserve(&self, additional: usize) {
        self.v4.reserve(additional);
    }

    /// Binds `network` (an IPv4 /32, or an IPv6 prefix) to `binding`; the newest session wins.
    /// Returns whether it replaced a binding.
    pub fn bind(&self, network: IpNet, binding: Binding) -> bool {
        self.insert_if(network, &binding, |_| true) == Some(true)
    }

    /// Interim-Update: refreshes the binding of `network` when it is unbound or bound to the same
    /// session; an Interim of an older session never takes an address back from its new owner.
    /// Returns whether it bound. The check and the write are one step under the shard's lock.
    pub fn refresh(&self, network: IpNet, binding: Binding) -> bool {
        self.insert_if(network, &binding, |bound| {
            bound.is_none_or(|bound| bound.session_id.as_str() == binding.session_id)
        })
        .is_some()
    }

    fn insert_if(
        &self,
        network: IpNet,
        binding: &Binding,
        allowed: impl FnOnce(Option<&Compact>) -> bool,
    ) -> Option<bool> {
        // `None` is unreachable for a parsed Msisdn/Imsi; never bind what could not be read back.
        let compact = Compact::new(binding, self.nas.intern(&binding.nas))?;
        match Key::of(network) {
            Key::V4(key) => self.v4.insert_if(key, compact, allowed),
            Key::V6(key) => {
                let len = usize::from(key.len);
                self.v6_prefix_lengths[len / 64].fetch_or(1 << (len % 64), Ordering::Release);
                self.v6.insert_if(key, compact, allowed)
            }
        }
    }

    /// Removes bindings with no accounting since `now - stale_after`. Returns how many.
    pub fn sweep(&self, now: u64) -> usize {
        let limit = self.stale_after_secs;
        self.remove_where(|bound| now.saturating_sub(bound.updated_at) > limit)
    }

    fn remove_where(&self, remove: impl Fn(&Compact) -> bool) -> usize {
        self.v4.remove_where(&remove) + self.v6.remove_where(&remove)
    }

    /// The stale limit in seconds.
    pub fn stale_after_secs(&self) -> u64 {
        self.stale_after_secs
    }

    /// Removes the binding of `network` only when it belongs to `session_id`: a late Stop of an
    /// old session never unbinds the address's new owner. Returns whether it removed one.
    pub fn unbind(&self, network: IpNet, session_id: &str) -> bool {
        let owned = |bound: &Compact| bound.session_id.as_str() == session_id;
        match Key::of(network) {
            Key::V4(key) => self.v4.remove_if(&key, owned),
            Key::V6(key) => self.v6.remove_if(&key, owned),
        }
    }

    /// Removes every binding reported by `nas` (Accounting-On/Off). Returns how many.
    pub fn unbind_nas(&self, nas: &str) -> usize {
        let Some(id) = self.nas.find(nas) else {
            return 0;
        };
        self.remove_where(|bound| bound.nas == id)
    }

    /// Who is behind `ip` at unix time `now`: IPv4 by exact address, IPv6 by longest prefix.
    /// An IPv4-mapped address (a dual-stack listener's IPv4 peer) is its IPv4 address: it never
    /// falls into an IPv6 prefix.
    pub fn lookup(&self, ip: IpAddr, now: u64) -> Lookup {
        self.find(ip, now, |bound| {
            self.nas.name(bound.nas, |nas| bound.binding(nas))
        })
    }

    /// [`SessionTable::lookup`] answering only who the subscriber is: what the data plane and
    /// the API need, without copying the session's other fields out of the table.
    pub fn lookup_subscriber(&self, ip: IpAddr, now: u64) -> Lookup<Msisdn> {
        self.find(ip, now, |bound| {
            let mut buffer = [0u8; 20];
            Msisdn::parse(digits(bound.msisdn, 0, &mut buffer)).ok()
        })
    }

    fn find<B>(&self, ip: IpAddr, now: u64, read: impl Fn(&Compact) -> Option<B>) -> Lookup<B> {
        let answer = |bound: &Compact| {
            if now.saturating_sub(bound.updated_at) > self.stale_after_secs {
                return Lookup::Stale;
            }
            // `None` cannot happen (the digits came from a parsed Msisdn and Imsi); never
            // guess an identity.
            read(bound).map_or(Lookup::Unbound, Lookup::Bound)
        };
        let found = match ip.to_canonical() {
            IpAddr::V4(v4) => self.v4.get(&v4_key(v4, 32), answer),
            IpAddr::V6(v6) => self.longest_v6(v6, answer),
        };
        found.unwrap_or(Lookup::Unbound)
    }

    /// Number of bindings held (fresh or stale).
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether the table holds no binding.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The binding of the longest bound prefix covering `ip`, read by `read`: only the prefix
    /// lengths some binding has are tried, longest first.
    fn longest_v6<R>(&self, ip: Ipv6Addr, read: impl Fn(&Compact) -> R) -> Option<R> {
        for word in (0..self.v6_prefix_lengths.len()).rev() {
            let mut lengths = self.v6_prefix_lengths[word].load(Ordering::Acquire);
            while lengths != 0 {
                let top = u64::BITS - 1 - lengths.leading_zeros();
                lengths &= !(1u64 << top);
                let Ok(len) = u8::try_from(word * 64 + top as usize) else {
                    continue;
                };
                let Ok(prefix) = Ipv6Net::new(ip, len) else {
                    continue;
                };
                if let Some(found) = self.v6.get(&v6_key(prefix.network(), len), &read) {
                    return Some(found);
                }
            }
        }
        None
    }
}

impl std::fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTable")
            .field("bindings", &self.len())
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

    /// What goes in comes out: IMSI leading zeros, no IMSI, a session id too long to keep
    /// inline, a non-ASCII one, and the NAS by its index.
    #[test]
    fn a_compact_binding_gives_back_what_was_bound() {
        let table = SessionTable::new(60);
        let long = "x".repeat(40);
        let cases = [
            (
                "10.0.1.1/32",
                "447700900001",
                Some("001010123456789"),
                "0123456789abcdef",
                "pgw-1",
            ),
            ("10.0.1.2/32", "12345678", None, long.as_str(), "pgw-2"),
            (
                "10.0.1.3/32",
                "999999999999999",
                Some("31026123456789"),
                "sé-ß",
                "pgw-1",
            ),
        ];
        for (network, msisdn, imsi, session, nas) in cases {
            let mut bound = binding(msisdn, session, nas, 7);
            bound.imsi = imsi.map(|imsi| Imsi::parse(imsi).unwrap());
            table.bind(net(network), bound);
        }
        for (network, msisdn, imsi, session, nas) in cases {
            let ip = net(network).addr();
            let Lookup::Bound(found) = table.lookup(ip, 7) else {
                panic!("{network} not bound");
            };
            assert_eq!(found.msisdn.expose_digits(), msisdn);
            assert_eq!(found.imsi.as_ref().map(Imsi::expose_digits), imsi);
            assert_eq!(found.session_id, session);
            assert_eq!(found.nas, nas);
            assert_eq!(found.updated_at, 7);
        }
        assert_eq!(table.unbind_nas("pgw-1"), 2);
        assert_eq!(table.unbind_nas("never-seen"), 0);
        assert!(table.unbind(net("10.0.1.2/32"), &long));
        assert!(table.is_empty());
        assert_eq!(std::mem::size_of::<Compact>(), 56);
    }

    #[test]
    fn digits_are_written_with_their_zeros() {
        let mut buffer = [0u8; 20];
        assert_eq!(digits(0, 0, &mut buffer), "0");
        assert_eq!(digits(447700900123, 0, &mut buffer), "447700900123");
        assert_eq!(digits(1010123456789, 15, &mut buffer), "001010123456789");
        assert_eq!(digits(u64::MAX, 0, &mut buffer), "18446744073709551615");
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
