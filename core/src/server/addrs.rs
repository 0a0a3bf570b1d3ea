//! The host a kite listening on every interface puts in the URL it registers: the first
//! non-loopback address of the machine's interfaces (the reference's `localIP`), found by
//! enumerating them (`getifaddrs`) — nothing is sent anywhere to find it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address of one network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddr {
    /// Interface name (`eth0`, `lo`).
    pub name: String,
    /// The address.
    pub ip: IpAddr,
    /// Whether the interface is up.
    pub up: bool,
    /// Whether it is a loopback interface.
    pub loopback: bool,
}

/// The machine's interface addresses, in the order the system lists them.
pub fn interface_addrs() -> Vec<InterfaceAddr> {
    use nix::net::if_::InterfaceFlags;
    let Ok(list) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    list.filter_map(|a| {
        let addr = a.address?;
        let ip = if let Some(v4) = addr.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else {
            IpAddr::V6(addr.as_sockaddr_in6()?.ip())
        };
        Some(InterfaceAddr {
            name: a.interface_name,
            ip,
            up: a.flags.contains(InterfaceFlags::IFF_UP),
            loopback: a.flags.contains(InterfaceFlags::IFF_LOOPBACK),
        })
    })
    .collect()
}

fn usable(a: &InterfaceAddr) -> bool {
    a.up && !a.loopback && !a.ip.is_loopback() && !a.ip.is_unspecified()
}

/// IPv6 link-local addresses (fe80::/10) need a zone to be dialed; a URL cannot carry one
/// that other hosts could use.
fn link_local_v6(ip: &Ipv6Addr) -> bool {
    (ip.segments()[0] & 0xffc0) == 0xfe80
}

/// The host to register for a kite bound to `bound`: `bound` itself unless it is
/// unspecified; for `0.0.0.0` the first usable IPv4 address of `interfaces`; for `::`
/// (which also accepts IPv4 on Linux) the first usable IPv4 address, else the first usable
/// IPv6 address that is not link-local; the loopback address when there is none.
pub fn register_host(bound: IpAddr, interfaces: &[InterfaceAddr]) -> IpAddr {
    if !bound.is_unspecified() {
        return bound;
    }
    let v4 = interfaces
        .iter()
        .filter(|a| usable(a) && a.ip.is_ipv4())
        .map(|a| a.ip)
        .next();
    match bound {
        IpAddr::V4(_) => v4.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(_) => v4
            .or_else(|| {
                interfaces
                    .iter()
                    .filter(|a| usable(a))
                    .filter_map(|a| match a.ip {
                        IpAddr::V6(v6) if !link_local_v6(&v6) => Some(a.ip),
                        _ => None,
                    })
                    .next()
            })
            .unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    }
}

/// `ip` as a URL host (IPv6 in brackets).
pub fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(name: &str, ip: &str, up: bool, loopback: bool) -> InterfaceAddr {
        InterfaceAddr {
            name: name.into(),
            ip: ip.parse().unwrap(),
            up,
            loopback,
        }
    }

    #[test]
    fn first_non_loopback_address() {
        let list = vec![
            a("lo", "127.0.0.1", true, true),
            a("lo", "::1", true, true),
            a("docker0", "172.17.0.1", false, false),
            a("eth0", "fe80::1", true, false),
            a("eth0", "2001:db8::5", true, false),
            a("eth0", "192.0.2.7", true, false),
            a("eth1", "198.51.100.3", true, false),
        ];
        let any4: IpAddr = "0.0.0.0".parse().unwrap();
        let any6: IpAddr = "::".parse().unwrap();
        assert_eq!(
            register_host(any4, &list),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            register_host(any6, &list),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        // An IPv6-only host: the global address, never the link-local one.
        let v6_only: Vec<_> = list.iter().filter(|x| x.ip.is_ipv6()).cloned().collect();
        assert_eq!(
            register_host(any6, &v6_only),
            "2001:db8::5".parse::<IpAddr>().unwrap()
        );
        assert_eq!(url_host(register_host(any6, &v6_only)), "[2001:db8::5]");
        // Nothing but loopback: loopback.
        let lo = &list[..2];
        assert_eq!(
            register_host(any4, lo),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(register_host(any6, lo), "::1".parse::<IpAddr>().unwrap());
        // A specific address is kept.
        let one: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(register_host(one, &list), one);
    }

    #[test]
    fn this_machine_lists_its_loopback() {
        let list = interface_addrs();
        assert!(list.iter().any(|x| x.ip.is_loopback()), "{list:?}");
    }
}
