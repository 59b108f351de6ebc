//! RFC 2866 Accounting-Request decoding and authentication, Accounting-Response encoding.
//!
//! Wire layout (RFC 2866 §3): Code (1) | Identifier (1) | Length (2) | Authenticator (16) |
//! Attributes (Type (1) | Length (1) | Value). Octets past `Length` are padding and ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::Ipv6Net;
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// Code of an Accounting-Request (RFC 2866 §4.1).
pub(crate) const ACCOUNTING_REQUEST: u8 = 4;
/// Code of an Accounting-Response (RFC 2866 §4.2).
pub(crate) const ACCOUNTING_RESPONSE: u8 = 5;
const HEADER_LEN: usize = 20;
const MAX_LEN: usize = 4096;

// Attribute types used (RFC 2865 §5, RFC 2866 §5, RFC 3162).
const NAS_IP_ADDRESS: u8 = 4;
const FRAMED_IP_ADDRESS: u8 = 8;
const VENDOR_SPECIFIC: u8 = 26;
const CALLING_STATION_ID: u8 = 31;
const NAS_IDENTIFIER: u8 = 32;
const ACCT_STATUS_TYPE: u8 = 40;
const ACCT_SESSION_ID: u8 = 44;
const NAS_IPV6_ADDRESS: u8 = 95;
const FRAMED_IPV6_PREFIX: u8 = 97;
/// 3GPP's vendor id, and its IMSI vendor type (3GPP TS 29.061 §16.4.7).
const VENDOR_3GPP: u32 = 10415;
const VENDOR_3GPP_IMSI: u8 = 1;

/// Acct-Status-Type values (RFC 2866 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcctStatusType {
    /// 1
    Start,
    /// 2
    Stop,
    /// 3
    InterimUpdate,
    /// 7
    AccountingOn,
    /// 8
    AccountingOff,
    /// Any other value (acknowledged, changes nothing).
    Other(u32),
}

impl AcctStatusType {
    /// From the attribute's integer value.
    pub fn from_u32(value: u32) -> AcctStatusType {
        match value {
            1 => AcctStatusType::Start,
            2 => AcctStatusType::Stop,
            3 => AcctStatusType::InterimUpdate,
            7 => AcctStatusType::AccountingOn,
            8 => AcctStatusType::AccountingOff,
            other => AcctStatusType::Other(other),
        }
    }

    /// The attribute's integer value.
    pub fn to_u32(self) -> u32 {
        match self {
            AcctStatusType::Start => 1,
            AcctStatusType::Stop => 2,
            AcctStatusType::InterimUpdate => 3,
            AcctStatusType::AccountingOn => 7,
            AcctStatusType::AccountingOff => 8,
            AcctStatusType::Other(other) => other,
        }
    }

    /// The `status` metric label.
    pub fn as_label(self) -> &'static str {
        match self {
            AcctStatusType::Start => "start",
            AcctStatusType::InterimUpdate => "interim",
            AcctStatusType::Stop => "stop",
            AcctStatusType::AccountingOn => "on",
            AcctStatusType::AccountingOff => "off",
            AcctStatusType::Other(_) => "other",
        }
    }
}

/// An authenticated Accounting-Request, with the attributes headwall uses.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountingRequest {
    /// Identifier, echoed in the response.
    pub identifier: u8,
    /// Request Authenticator.
    pub authenticator: [u8; 16],
    /// Acct-Status-Type (40), required.
    pub status: AcctStatusType,
    /// Framed-IP-Address (8).
    pub framed_ip: Option<Ipv4Addr>,
    /// Framed-IPv6-Prefix (97), host bits cleared.
    pub framed_ipv6_prefix: Option<Ipv6Net>,
    /// Calling-Station-Id (31): the MSISDN as the packet gateway sent it.
    pub calling_station_id: Option<String>,
    /// Acct-Session-Id (44).
    pub session_id: Option<String>,
    /// NAS-IP-Address (4) or NAS-IPv6-Address (95).
    pub nas_ip: Option<IpAddr>,
    /// NAS-Identifier (32).
    pub nas_identifier: Option<String>,
    /// 3GPP-IMSI (26 / 10415 / 1).
    pub imsi: Option<String>,
}

impl std::fmt::Debug for AccountingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |value: &Option<String>| {
            value.as_deref().map(|v| {
                let tail: String = v
                    .chars()
                    .rev()
                    .take(3)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                format!("•••{tail}")
            })
        };
        f.debug_struct("AccountingRequest")
            .field("identifier", &self.identifier)
            .field("status", &self.status)
            .field("framed_ip", &self.framed_ip)
            .field("framed_ipv6_prefix", &self.framed_ipv6_prefix)
            .field("calling_station_id", &redact(&self.calling_station_id))
            .field("session_id", &self.session_id)
            .field("nas_ip", &self.nas_ip)
            .field("nas_identifier", &self.nas_identifier)
            .field("imsi", &redact(&self.imsi))
            .finish_non_exhaustive()
    }
}

/// Why a datagram is not an acceptable Accounting-Request. Never carries attribute values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the 20-octet header.
    #[error("datagram shorter than the RADIUS header")]
    Truncated,
    /// The Length field is below 20, above 4096, or beyond the datagram.
    #[error("RADIUS Length field is out of range")]
    BadLength,
    /// Not an Accounting-Request.
    #[error("RADIUS code {0} is not Accounting-Request (4)")]
    WrongCode(u8),
    /// An attribute's length is below 2, overruns the packet, or does not fit its type.
    #[error("RADIUS attribute {attribute} is malformed")]
    BadAttribute {
        /// The attribute type.
        attribute: u8,
    },
    /// No Acct-Status-Type.
    #[error("Acct-Status-Type is missing")]
    MissingStatusType,
    /// A single-valued attribute appears twice.
    #[error("RADIUS attribute {attribute} appears more than once")]
    DuplicateAttribute {
        /// The attribute type.
        attribute: u8,
    },
    /// The Request Authenticator does not match the client's secret.
    #[error("Request Authenticator does not match the shared secret")]
    BadAuthenticator,
    /// A text attribute is not UTF-8.
    #[error("RADIUS attribute {attribute} is not UTF-8 text")]
    NotUtf8 {
        /// The attribute type.
        attribute: u8,
    },
}

impl DecodeError {
    /// A stable snake_case reason for logs and events.
    pub fn as_str(&self) -> &'static str {
        match self {
            DecodeError::Truncated => "truncated",
            DecodeError::BadLength => "bad_length",
            DecodeError::WrongCode(_) => "wrong_code",
            DecodeError::BadAttribute { .. } => "bad_attribute",
            DecodeError::MissingStatusType => "missing_status_type",
            DecodeError::DuplicateAttribute { .. } => "duplicate_attribute",
            DecodeError::BadAuthenticator => "bad_authenticator",
            DecodeError::NotUtf8 { .. } => "not_utf8",
        }
    }

    /// Whether the packet failed authentication (rather than being malformed).
    pub fn is_authentication_failure(&self) -> bool {
        matches!(self, DecodeError::BadAuthenticator)
    }
}

/// Decodes and authenticates an Accounting-Request (RFC 2866 §3, §4.1). Structure is checked
/// first, then the authenticator, and only then are attribute values interpreted.
pub fn decode_accounting_request(
    datagram: &[u8],
    secret: &[u8],
) -> Result<AccountingRequest, DecodeError> {
    if datagram.len() < HEADER_LEN {
        return Err(DecodeError::Truncated);
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if !(HEADER_LEN..=MAX_LEN).contains(&length) || length > datagram.len() {
        return Err(DecodeError::BadLength);
    }
    let packet = &datagram[..length];
    if packet[0] != ACCOUNTING_REQUEST {
        return Err(DecodeError::WrongCode(packet[0]));
    }
    let attributes = split_attributes(&packet[HEADER_LEN..])?;

    let mut expected = Md5::new();
    expected.update(&packet[..4]);
    expected.update([0u8; 16]);
    expected.update(&packet[HEADER_LEN..]);
    expected.update(secret);
    let expected: [u8; 16] = expected.finalize().into();
    let mut authenticator = [0u8; 16];
    authenticator.copy_from_slice(&packet[4..HEADER_LEN]);
    if !bool::from(expected.ct_eq(&authenticator)) {
        return Err(DecodeError::BadAuthenticator);
    }

    let mut request = AccountingRequest {
        identifier: packet[1],
        authenticator,
        status: AcctStatusType::Other(0),
        framed_ip: None,
        framed_ipv6_prefix: None,
        calling_station_id: None,
        session_id: None,
        nas_ip: None,
        nas_identifier: None,
        imsi: None,
    };
    let mut status = None;
    for (kind, value) in attributes {
        let bad = DecodeError::BadAttribute { attribute: kind };
        match kind {
            ACCT_STATUS_TYPE => {
                let bytes: [u8; 4] = value.try_into().map_err(|_| bad)?;
                set_once(
                    &mut status,
                    AcctStatusType::from_u32(u32::from_be_bytes(bytes)),
                    kind,
                )?;
            }
            FRAMED_IP_ADDRESS => {
                let bytes: [u8; 4] = value.try_into().map_err(|_| bad)?;
                set_once(&mut request.framed_ip, Ipv4Addr::from(bytes), kind)?;
            }
            FRAMED_IPV6_PREFIX => {
                let prefix = ipv6_prefix(value).ok_or(bad)?;
                set_once(&mut request.framed_ipv6_prefix, prefix, kind)?;
            }
            NAS_IP_ADDRESS => {
                let bytes: [u8; 4] = value.try_into().map_err(|_| bad)?;
                set_once(&mut request.nas_ip, IpAddr::V4(Ipv4Addr::from(bytes)), kind)?;
            }
            NAS_IPV6_ADDRESS => {
                let bytes: [u8; 16] = value.try_into().map_err(|_| bad)?;
                set_once(&mut request.nas_ip, IpAddr::V6(Ipv6Addr::from(bytes)), kind)?;
            }
            CALLING_STATION_ID => {
                set_once(&mut request.calling_station_id, text(value, kind)?, kind)?
            }
            ACCT_SESSION_ID => set_once(&mut request.session_id, text(value, kind)?, kind)?,
            NAS_IDENTIFIER => set_once(&mut request.nas_identifier, text(value, kind)?, kind)?,
            VENDOR_SPECIFIC => {
                if let Some(imsi) = three_gpp_imsi(value)? {
                    set_once(&mut request.imsi, imsi, kind)?;
                }
            }
            _ => {}
        }
    }
    request.status = status.ok_or(DecodeError::MissingStatusType)?;
    Ok(request)
}

/// The Accounting-Response (code 5, no attributes) to a request: Response Authenticator =
/// MD5(Code + Identifier + Length + Request Authenticator + Attributes + Secret) (RFC 2866 §3).
pub fn encode_accounting_response(
    identifier: u8,
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> [u8; 20] {
    let mut response = [0u8; HEADER_LEN];
    response[0] = ACCOUNTING_RESPONSE;
    response[1] = identifier;
    response[2..4].copy_from_slice(&(HEADER_LEN as u16).to_be_bytes());
    let mut digest = Md5::new();
    digest.update(&response[..4]);
    digest.update(request_authenticator);
    digest.update(secret);
    let digest: [u8; 16] = digest.finalize().into();
    response[4..].copy_from_slice(&digest);
    response
}

/// Whether `response` is the valid Accounting-Response to the request with `identifier` and
/// `request_authenticator` (for the demo's simulated packet gateway and tests).
pub fn response_is_valid(
    response: &[u8],
    identifier: u8,
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> bool {
    let expected = encode_accounting_response(identifier, request_authenticator, secret);
    response.len() == HEADER_LEN && bool::from(expected.as_slice().ct_eq(response))
}

/// Encodes `request` as an Accounting-Request with the correct Request Authenticator
/// (`request.authenticator` is ignored). Every `Some` field becomes an attribute.
pub fn encode_accounting_request(request: &AccountingRequest, secret: &[u8]) -> Vec<u8> {
    let mut attributes = Vec::new();
    let mut put = |kind: u8, value: &[u8]| {
        // Values longer than 253 octets cannot be encoded; they are cut (test and demo input only).
        let value = &value[..value.len().min(253)];
        attributes.push(kind);
        attributes.push(value.len() as u8 + 2);
        attributes.extend_from_slice(value);
    };
    put(ACCT_STATUS_TYPE, &request.status.to_u32().to_be_bytes());
    if let Some(ip) = request.framed_ip {
        put(FRAMED_IP_ADDRESS, &ip.octets());
    }
    if let Some(prefix) = request.framed_ipv6_prefix {
        let mut value = vec![0, prefix.prefix_len()];
        let octets = usize::from(prefix.prefix_len()).div_ceil(8);
        value.extend_from_slice(&prefix.network().octets()[..octets]);
        put(FRAMED_IPV6_PREFIX, &value);
    }
    if let Some(id) = &request.calling_station_id {
        put(CALLING_STATION_ID, id.as_bytes());
    }
    if let Some(id) = &request.session_id {
        put(ACCT_SESSION_ID, id.as_bytes());
    }
    match request.nas_ip {
        Some(IpAddr::V4(ip)) => put(NAS_IP_ADDRESS, &ip.octets()),
        Some(IpAddr::V6(ip)) => put(NAS_IPV6_ADDRESS, &ip.octets()),
        None => {}
    }
    if let Some(id) = &request.nas_identifier {
        put(NAS_IDENTIFIER, id.as_bytes());
    }
    if let Some(imsi) = &request.imsi {
        let mut value = VENDOR_3GPP.to_be_bytes().to_vec();
        let imsi = &imsi.as_bytes()[..imsi.len().min(247)];
        value.push(VENDOR_3GPP_IMSI);
        value.push(imsi.len() as u8 + 2);
        value.extend_from_slice(imsi);
        put(VENDOR_SPECIFIC, &value);
    }
    attributes.truncate(MAX_LEN - HEADER_LEN);
    let length = (HEADER_LEN + attributes.len()) as u16;
    let mut packet = vec![ACCOUNTING_REQUEST, request.identifier];
    packet.extend_from_slice(&length.to_be_bytes());
    let mut digest = Md5::new();
    digest.update(&packet);
    digest.update([0u8; 16]);
    digest.update(&attributes);
    digest.update(secret);
    let digest: [u8; 16] = digest.finalize().into();
    packet.extend_from_slice(&digest);
    packet.extend_from_slice(&attributes);
    packet
}

/// Splits the attribute area into (type, value) pairs, rejecting lengths below 2 or overruns.
fn split_attributes(mut area: &[u8]) -> Result<Vec<(u8, &[u8])>, DecodeError> {
    let mut attributes = Vec::new();
    while !area.is_empty() {
        let kind = area[0];
        let bad = DecodeError::BadAttribute { attribute: kind };
        let len = usize::from(*area.get(1).ok_or(bad.clone())?);
        if len < 2 || len > area.len() {
            return Err(bad);
        }
        attributes.push((kind, &area[2..len]));
        area = &area[len..];
    }
    Ok(attributes)
}

fn set_once<T>(slot: &mut Option<T>, value: T, attribute: u8) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateAttribute { attribute });
    }
    *slot = Some(value);
    Ok(())
}

fn text(value: &[u8], attribute: u8) -> Result<String, DecodeError> {
    if value.is_empty() {
        return Err(DecodeError::BadAttribute { attribute });
    }
    String::from_utf8(value.to_vec()).map_err(|_| DecodeError::NotUtf8 { attribute })
}

/// Framed-IPv6-Prefix (RFC 3162 §2.3): reserved, prefix length, then the prefix octets.
fn ipv6_prefix(value: &[u8]) -> Option<Ipv6Net> {
    let (&length, prefix) = value.get(1..)?.split_first()?;
    if length > 128 || prefix.len() > 16 || prefix.len() < usize::from(length).div_ceil(8) {
        return None;
    }
    let mut octets = [0u8; 16];
    octets[..prefix.len()].copy_from_slice(prefix);
    Ipv6Net::new(Ipv6Addr::from(octets), length)
        .ok()
        .map(|net| net.trunc())
}

/// The 3GPP-IMSI inside a Vendor-Specific attribute; other vendors' attributes are ignored.
fn three_gpp_imsi(value: &[u8]) -> Result<Option<String>, DecodeError> {
    let bad = DecodeError::BadAttribute {
        attribute: VENDOR_SPECIFIC,
    };
    let vendor: [u8; 4] = value
        .get(..4)
        .ok_or(bad.clone())?
        .try_into()
        .map_err(|_| bad.clone())?;
    if u32::from_be_bytes(vendor) != VENDOR_3GPP {
        return Ok(None);
    }
    let mut area = &value[4..];
    while !area.is_empty() {
        let kind = area[0];
        let len = usize::from(*area.get(1).ok_or(bad.clone())?);
        if len < 2 || len > area.len() {
            return Err(bad);
        }
        if kind == VENDOR_3GPP_IMSI {
            return text(&area[2..len], VENDOR_SPECIFIC).map(Some);
        }
        area = &area[len..];
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"testing123";

    /// A packet built by hand from bytes, with the authenticator computed independently.
    fn hand_built(attributes: &[u8], secret: &[u8]) -> Vec<u8> {
        let length = (20 + attributes.len()) as u16;
        let mut head = vec![4, 42];
        head.extend_from_slice(&length.to_be_bytes());
        let mut md5 = Md5::new();
        md5.update(&head);
        md5.update([0u8; 16]);
        md5.update(attributes);
        md5.update(secret);
        let mut packet = head;
        packet.extend_from_slice(&md5.finalize());
        packet.extend_from_slice(attributes);
        packet
    }

    fn start_attributes() -> Vec<u8> {
        let mut a = vec![40, 6, 0, 0, 0, 1]; // Acct-Status-Type = Start
        a.extend_from_slice(&[8, 6, 10, 1, 2, 3]); // Framed-IP-Address = 10.1.2.3
        a.extend_from_slice(&[31, 14]);
        a.extend_from_slice(b"447700900123"); // Calling-Station-Id
        a.extend_from_slice(&[44, 4]);
        a.extend_from_slice(b"s1"); // Acct-Session-Id
        a.extend_from_slice(&[4, 6, 192, 0, 2, 1]); // NAS-IP-Address
        // Vendor-Specific 3GPP (10415) IMSI
        a.extend_from_slice(&[26, 23, 0, 0, 0x28, 0xaf, 1, 17]);
        a.extend_from_slice(b"234150999999999");
        // Another vendor's attribute: ignored.
        a.extend_from_slice(&[26, 9, 0, 0, 0, 9, 1, 3, b'x']);
        a
    }

    #[test]
    fn decodes_a_hand_built_start() {
        let request =
            decode_accounting_request(&hand_built(&start_attributes(), SECRET), SECRET).unwrap();
        assert_eq!(request.identifier, 42);
        assert_eq!(request.status, AcctStatusType::Start);
        assert_eq!(request.framed_ip, Some(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(request.calling_station_id.as_deref(), Some("447700900123"));
        assert_eq!(request.session_id.as_deref(), Some("s1"));
        assert_eq!(request.nas_ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(request.imsi.as_deref(), Some("234150999999999"));
        let debug = format!("{request:?}");
        assert!(
            !debug.contains("447700900123") && !debug.contains("234150999999999"),
            "{debug}"
        );
    }

    #[test]
    fn wrong_secret_is_an_authentication_failure() {
        let error = decode_accounting_request(&hand_built(&start_attributes(), b"other"), SECRET)
            .unwrap_err();
        assert_eq!(error, DecodeError::BadAuthenticator);
        assert!(error.is_authentication_failure());
    }

    #[test]
    fn padding_after_length_is_ignored() {
        let mut packet = hand_built(&start_attributes(), SECRET);
        packet.extend_from_slice(&[0xff; 7]);
        assert!(decode_accounting_request(&packet, SECRET).is_ok());
    }

    #[test]
    fn malformations_are_named() {
        let good = hand_built(&start_attributes(), SECRET);
        assert_eq!(
            decode_accounting_request(&good[..19], SECRET),
            Err(DecodeError::Truncated)
        );
        let mut long = good.clone();
        long[3] = long[3].wrapping_add(1); // Length beyond the datagram
        assert_eq!(
            decode_accounting_request(&long, SECRET),
            Err(DecodeError::BadLength)
        );
        let mut short = good.clone();
        short[2] = 0;
        short[3] = 19;
        assert_eq!(
            decode_accounting_request(&short, SECRET),
            Err(DecodeError::BadLength)
        );
        let mut code = good.clone();
        code[0] = 1;
        assert_eq!(
            decode_accounting_request(&code, SECRET),
            Err(DecodeError::WrongCode(1))
        );
        for attributes in [&[40u8, 0][..], &[40, 1], &[40, 9, 0, 0, 0, 1]] {
            assert_eq!(
                decode_accounting_request(&hand_built(attributes, SECRET), SECRET),
                Err(DecodeError::BadAttribute { attribute: 40 })
            );
        }
        let short_ip = [40, 6, 0, 0, 0, 1, 8, 5, 10, 1, 2];
        assert_eq!(
            decode_accounting_request(&hand_built(&short_ip, SECRET), SECRET),
            Err(DecodeError::BadAttribute { attribute: 8 })
        );
        let missing = [8, 6, 10, 1, 2, 3];
        assert_eq!(
            decode_accounting_request(&hand_built(&missing, SECRET), SECRET),
            Err(DecodeError::MissingStatusType)
        );
        let twice = [40, 6, 0, 0, 0, 1, 40, 6, 0, 0, 0, 2];
        assert_eq!(
            decode_accounting_request(&hand_built(&twice, SECRET), SECRET),
            Err(DecodeError::DuplicateAttribute { attribute: 40 })
        );
        let latin1 = [40, 6, 0, 0, 0, 1, 31, 4, 0xe9, 0xff];
        assert_eq!(
            decode_accounting_request(&hand_built(&latin1, SECRET), SECRET),
            Err(DecodeError::NotUtf8 { attribute: 31 })
        );
    }

    #[test]
    fn ipv6_prefix_is_truncated_to_its_length() {
        let mut attributes = vec![40, 6, 0, 0, 0, 1, 97, 12, 0, 64];
        attributes.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0xff]);
        let request = decode_accounting_request(&hand_built(&attributes, SECRET), SECRET).unwrap();
        assert_eq!(
            request.framed_ipv6_prefix,
            Some("2001:db8:1:ff::/64".parse().unwrap())
        );
    }

    #[test]
    fn response_authenticator_matches_rfc_2866() {
        let request_authenticator = [7u8; 16];
        let response = encode_accounting_response(9, &request_authenticator, SECRET);
        let mut md5 = Md5::new();
        md5.update([5, 9, 0, 20]);
        md5.update(request_authenticator);
        md5.update(SECRET);
        assert_eq!(&response[4..], md5.finalize().as_slice());
        assert_eq!(&response[..4], &[5, 9, 0, 20]);
        assert!(response_is_valid(
            &response,
            9,
            &request_authenticator,
            SECRET
        ));
        assert!(!response_is_valid(
            &response,
            9,
            &request_authenticator,
            b"x"
        ));
    }

    fn arbitrary_request() -> impl Strategy<Value = AccountingRequest> {
        (
            any::<u8>(),
            prop_oneof![Just(1u32), Just(2), Just(3), Just(7), Just(8), 9u32..100],
            proptest::option::of(any::<[u8; 4]>()),
            proptest::option::of((any::<[u8; 16]>(), 0u8..=128)),
            proptest::option::of("[0-9+]{1,20}"),
            proptest::option::of("[a-zA-Z0-9-]{1,40}"),
            proptest::option::of("[0-9]{14,15}"),
        )
            .prop_map(|(identifier, status, ip, prefix, calling, session, imsi)| {
                AccountingRequest {
                    identifier,
                    authenticator: [0; 16],
                    status: AcctStatusType::from_u32(status),
                    framed_ip: ip.map(Ipv4Addr::from),
                    framed_ipv6_prefix: prefix
                        .and_then(|(octets, len)| Ipv6Net::new(Ipv6Addr::from(octets), len).ok())
                        .map(|net| net.trunc()),
                    calling_station_id: calling,
                    session_id: session,
                    nas_ip: None,
                    nas_identifier: Some("pgw".into()),
                    imsi,
                }
            })
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(request in arbitrary_request()) {
            let packet = encode_accounting_request(&request, SECRET);
            let mut decoded = decode_accounting_request(&packet, SECRET).unwrap();
            decoded.authenticator = [0; 16];
            prop_assert_eq!(decoded, request);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode_accounting_request(&bytes, SECRET);
            // With a valid header and authenticator, the attribute parser is reached too.
            let packet = hand_built(&bytes, SECRET);
            let _ = decode_accounting_request(&packet, SECRET);
        }
    }
}
