//! Per-address allowances for what anyone may ask of the control plane without credentials
//! (Dynamic Client Registration, fetching Client ID Metadata Documents), kept per node in
//! memory: token buckets keyed by the request's address ([`crate::client_ip`]: the connection's,
//! or the client a trusted proxy forwarded it for; never a header a client wrote itself), IPv6 by
//! its /64.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_quotas::TokenBucket;

/// Addresses tracked at once; past it, those back to a full allowance are forgotten, and new
/// addresses wait while none is.
const TRACKED_ADDRESSES: usize = 10_000;

/// Per-address allowances of something anyone may ask for, on this node.
#[derive(Debug)]
pub struct AddressLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, TokenBucket>>,
}

impl AddressLimiter {
    /// `per_minute` per address.
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one from `address`'s allowance, or says how long until it has one.
    pub(crate) fn admit(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = limit_key(address);
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !buckets.contains_key(&key) && buckets.len() >= TRACKED_ADDRESSES {
            buckets.retain(|_, bucket| bucket.check(0, now).is_ok() && !bucket.until_full().is_zero());
            if buckets.len() >= TRACKED_ADDRESSES {
                return Err(Duration::from_secs(60));
            }
        }
        let bucket = buckets.entry(key).or_insert_with(|| TokenBucket::new(self.per_minute, now));
        bucket.check(1, now)?;
        bucket.take(1);
        Ok(())
    }
}

/// The key an address is limited under: IPv4 as is (also when mapped into IPv6), IPv6 by its
/// /64, which one host usually holds whole.
fn limit_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_allowance_then_waits_and_refills() {
        let limiter = AddressLimiter::new(3);
        let now = Instant::now();
        let (one, two): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            assert!(limiter.admit(one, now).is_ok());
        }
        let wait = limiter.admit(one, now).unwrap_err();
        assert!(wait > Duration::from_secs(15) && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(limiter.admit(two, now).is_ok(), "another address has its own allowance");
        assert!(limiter.admit(one, now + Duration::from_secs(20)).is_ok(), "refilled");
    }

    #[test]
    fn ipv6_addresses_share_their_64_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(limit_key(a), limit_key(b));
        assert_ne!(limit_key(a), limit_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(limit_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn tracked_addresses_stay_bounded() {
        let limiter = AddressLimiter::new(1);
        let now = Instant::now();
        for i in 0..TRACKED_ADDRESSES {
            let address = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + u32::try_from(i).unwrap()));
            assert!(limiter.admit(address, now).is_ok());
        }
        let newcomer: IpAddr = "192.0.2.9".parse().unwrap();
        assert!(limiter.admit(newcomer, now).is_err(), "every tracked address is still limited");
        assert!(limiter.admit(newcomer, now + Duration::from_secs(61)).is_ok(), "full buckets are forgotten");
        assert!(limiter.buckets.lock().unwrap().len() <= TRACKED_ADDRESSES);
    }
}
