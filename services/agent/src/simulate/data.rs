//! Realistic, seeded data for simulated gateways: gateway ids, users with a home network and a device,
//! resources, and the sessions they open.
//!
//! Users are a fixed population: user `k` always has the same name, groups, device and home address for a
//! given seed, whichever gateway they reach, so the registry's anomaly rules see ordinary habits plus the
//! odd trip abroad, not random noise.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime};

use prost_types::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vigil_proto::v1::{ResourceType, SessionStart};

/// Regions that gateway ids are named after, in the order gateways are numbered.
const REGIONS: &[&str] = &["fra", "nyc", "lon", "sin", "sto", "sfo", "syd", "tyo", "ams", "chi"];

const FIRST_NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "kenji", "lars", "mallory",
    "noah", "olivia", "peggy", "priya", "rupert", "sofia", "trent", "ursula", "victor", "walter", "yusuf", "amara",
    "chen", "fatima", "ingrid", "mateo", "zoe",
];

const LAST_NAMES: &[&str] = &[
    "martin",
    "nguyen",
    "schmidt",
    "rossi",
    "garcia",
    "kowalski",
    "tanaka",
    "okafor",
    "dubois",
    "larsen",
    "silva",
    "novak",
    "johansson",
    "fischer",
    "kim",
    "patel",
    "cohen",
    "moreau",
    "lindqvist",
    "oconnor",
    "haddad",
    "ivanova",
    "mendes",
    "weber",
];

const GROUPS: &[&str] = &["engineering", "sre", "finance", "support", "sales", "contractors"];

/// Resources behind the gateways, with how often they are used.
const RESOURCES: &[((&str, ResourceType), u32)] = &[
    (("prod-db-01", ResourceType::Ssh), 8),
    (("prod-db-02", ResourceType::Ssh), 5),
    (("bastion-eu-01", ResourceType::Ssh), 6),
    (("k8s-node-12", ResourceType::Ssh), 4),
    (("build-runner-07", ResourceType::Ssh), 4),
    (("staging-api-02", ResourceType::Ssh), 5),
    (("finance-portal", ResourceType::Web), 7),
    (("grafana", ResourceType::Web), 8),
    (("jenkins", ResourceType::Web), 5),
    (("hr-self-service", ResourceType::Web), 3),
    (("admin-console", ResourceType::Web), 3),
    (("win-jump-03", ResourceType::Rdp), 6),
    (("win-jump-04", ResourceType::Rdp), 4),
    (("citrix-host-02", ResourceType::Rdp), 3),
    (("ws-accounting-05", ResourceType::Rdp), 2),
];

/// A network users connect from.
#[derive(Debug, Clone, Copy)]
enum Network {
    /// `a.b.c.lo` to `a.b.c.hi`: a slice of a public /24.
    V4 { net: [u8; 3], hosts: (u8, u8) },
    /// A private /16 (`a.b.x.y`): on-premises users and the VPN.
    Private16 { net: [u8; 2] },
    /// A public IPv6 /32 (`a:b:…`).
    V6 { net: [u16; 2] },
}

/// Where users are, with weights. Public ranges are well-known GeoIP test networks, so a test GeoIP
/// database locates them.
const NETWORKS: &[(Network, u32)] = &[
    // London, GB
    (
        Network::V4 {
            net: [81, 2, 69],
            hosts: (160, 191),
        },
        14,
    ),
    // Boxford, GB
    (
        Network::V4 {
            net: [2, 125, 160],
            hosts: (216, 223),
        },
        5,
    ),
    // Linköping, SE
    (
        Network::V4 {
            net: [89, 160, 20],
            hosts: (112, 254),
        },
        10,
    ),
    // Milton, US
    (
        Network::V4 {
            net: [216, 160, 83],
            hosts: (56, 63),
        },
        12,
    ),
    // United States
    (
        Network::V4 {
            net: [149, 101, 100],
            hosts: (1, 14),
        },
        5,
    ),
    // Changchun, CN
    (
        Network::V4 {
            net: [175, 16, 199],
            hosts: (1, 254),
        },
        5,
    ),
    // Philippines
    (
        Network::V4 {
            net: [202, 196, 224],
            hosts: (1, 254),
        },
        4,
    ),
    // Bhutan
    (
        Network::V4 {
            net: [67, 43, 156],
            hosts: (1, 254),
        },
        2,
    ),
    // United States, IPv6
    (Network::V6 { net: [0x2001, 0x0480] }, 8),
    // Japan, IPv6
    (Network::V6 { net: [0x2001, 0x0218] }, 4),
    // On-premises offices
    (Network::Private16 { net: [10, 20] }, 12),
    // Corporate VPN
    (Network::Private16 { net: [10, 64] }, 6),
];

/// Letters Windows uses in generated machine names (no I or O).
const WINDOWS_NAME_CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";

/// Fraction of sessions opened from somewhere other than the user's home network (travel, tethering).
const ROAMING: f64 = 0.03;

/// The id of the `index`-th simulated gateway (0-based): `gw-fra-01`, `gw-nyc-02`, …
pub fn gateway_id(index: usize) -> String {
    format!("gw-{}-{:02}", REGIONS[index % REGIONS.len()], index + 1)
}

/// A member of the simulated population.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimUser {
    /// `alice.martin@acme.example` (with a number once the name combinations run out).
    pub email: String,
    /// One or two groups.
    pub groups: Vec<String>,
    /// `alice-macbook`, `DESKTOP-7QH2K4M`, …
    pub device: String,
    /// Where the user usually connects from.
    pub home: IpAddr,
}

/// User `k` of the population for `seed`.
pub fn user(seed: u64, k: usize) -> SimUser {
    let first = FIRST_NAMES[k % FIRST_NAMES.len()];
    // Shifting the surname by the first-name index gives small populations varied surnames while
    // keeping every (first, last) pair of a round distinct.
    let last = LAST_NAMES[(k + k / FIRST_NAMES.len()) % LAST_NAMES.len()];
    let round = k / (FIRST_NAMES.len() * LAST_NAMES.len());
    let email = match round {
        0 => format!("{first}.{last}@acme.example"),
        round => format!("{first}.{last}{round}@acme.example"),
    };
    let mut rng = StdRng::seed_from_u64(mix(seed, k as u64));
    let mut groups = vec![GROUPS[rng.random_range(0..GROUPS.len())].to_owned()];
    if rng.random_bool(0.3) {
        let second = GROUPS[rng.random_range(0..GROUPS.len())];
        if second != groups[0] {
            groups.push(second.to_owned());
        }
    }
    let device = match rng.random_range(0..100) {
        0..40 => format!("{first}-macbook"),
        40..55 => format!("{first}-thinkpad"),
        55..90 => format!("DESKTOP-{}", windows_suffix(&mut rng)),
        _ => format!("LAPTOP-{}", windows_suffix(&mut rng)),
    };
    let home = address(pick_network(&mut rng), &mut rng);
    SimUser {
        email,
        groups,
        device,
        home,
    }
}

/// A session start and how its user will behave.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedStart {
    /// What the gateway reports to the registry.
    pub start: SessionStart,
    /// Whether the user stops typing after `stops_typing_after`.
    pub idle: bool,
    /// When an idle user's input stops, counted from the start.
    pub stops_typing_after: Duration,
    /// Seed of the session's own behaviour (bytes, input timing), so it does not depend on the order in which
    /// sessions are visited.
    pub behaviour_seed: u64,
}

/// The sessions one gateway opens, in a fixed order for a given seed and gateway.
#[derive(Debug)]
pub struct SessionFactory {
    rng: StdRng,
    seed: u64,
    population: usize,
    idle_fraction: f64,
}

impl SessionFactory {
    /// The factory of gateway `gateway_index`, drawing users from a population of `population`.
    pub fn new(seed: u64, gateway_index: usize, population: usize, idle_fraction: f64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(mix(seed ^ 0x5EED_CAFE_F00D_0001, gateway_index as u64)),
            seed,
            population: population.max(1),
            idle_fraction: idle_fraction.clamp(0.0, 1.0),
        }
    }

    /// The next session start, stamped with `now`.
    pub fn next_start(&mut self, now: SystemTime) -> SimulatedStart {
        let user = user(self.seed, self.rng.random_range(0..self.population));
        let client_ip = if self.rng.random_bool(ROAMING) {
            let network = pick_network(&mut self.rng);
            address(network, &mut self.rng)
        } else {
            user.home
        };
        let (resource_name, resource_type) = pick_resource(&mut self.rng);
        let start = SessionStart {
            user: user.email,
            resource_name: resource_name.to_owned(),
            resource_type: resource_type as i32,
            device: user.device,
            client_ip: client_ip.to_string(),
            started_at: Some(Timestamp::from(now)),
            user_groups: user.groups,
        };
        SimulatedStart {
            start,
            idle: self.rng.random_bool(self.idle_fraction),
            stops_typing_after: Duration::from_secs(self.rng.random_range(5..=60)),
            behaviour_seed: self.rng.random(),
        }
    }
}

/// Mixes a seed and an index into a well-spread seed (SplitMix64's finaliser).
pub(crate) fn mix(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn windows_suffix(rng: &mut impl Rng) -> String {
    (0..7)
        .map(|_| char::from(WINDOWS_NAME_CHARS[rng.random_range(0..WINDOWS_NAME_CHARS.len())]))
        .collect()
}

fn pick_weighted<T: Copy>(items: &[(T, u32)], rng: &mut impl Rng) -> T {
    let total: u32 = items.iter().map(|(_, weight)| weight).sum();
    let mut ticket = rng.random_range(0..total);
    for (item, weight) in items {
        if ticket < *weight {
            return *item;
        }
        ticket -= weight;
    }
    items[items.len() - 1].0
}

fn pick_network(rng: &mut impl Rng) -> Network {
    pick_weighted(NETWORKS, rng)
}

fn pick_resource(rng: &mut impl Rng) -> (&'static str, ResourceType) {
    pick_weighted(RESOURCES, rng)
}

fn address(network: Network, rng: &mut impl Rng) -> IpAddr {
    match network {
        Network::V4 {
            net: [a, b, c],
            hosts: (lo, hi),
        } => IpAddr::V4(Ipv4Addr::new(a, b, c, rng.random_range(lo..=hi))),
        Network::Private16 { net: [a, b] } => IpAddr::V4(Ipv4Addr::new(
            a,
            b,
            rng.random_range(0..=255),
            rng.random_range(1..=254),
        )),
        Network::V6 { net: [a, b] } => IpAddr::V6(Ipv6Addr::new(
            a,
            b,
            rng.random(),
            rng.random(),
            0,
            0,
            0,
            rng.random_range(1..=0xffff),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn starts(seed: u64, gateway: usize, n: usize) -> Vec<SimulatedStart> {
        let mut factory = SessionFactory::new(seed, gateway, 500, 0.2);
        (0..n).map(|_| factory.next_start(SystemTime::UNIX_EPOCH)).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_sessions() {
        assert_eq!(starts(7, 3, 200), starts(7, 3, 200));
        assert_eq!(user(7, 42), user(7, 42));
    }

    #[test]
    fn other_seeds_and_gateways_give_other_sessions() {
        assert_ne!(starts(7, 3, 50), starts(8, 3, 50));
        assert_ne!(starts(7, 3, 50), starts(7, 4, 50));
    }

    #[test]
    fn a_user_keeps_their_name_and_device_across_gateways() {
        let mut by_user = std::collections::HashMap::new();
        for gateway in 0..5 {
            for simulated in starts(11, gateway, 200) {
                let device = by_user
                    .entry(simulated.start.user.clone())
                    .or_insert(simulated.start.device.clone());
                assert_eq!(*device, simulated.start.device);
            }
        }
    }

    #[test]
    fn generated_starts_are_valid_and_varied() {
        let all = starts(1, 0, 1000);
        for simulated in &all {
            crate::validate::session_start(&simulated.start).unwrap();
            assert!(simulated.start.user.ends_with("@acme.example"));
        }
        let kinds: HashSet<i32> = all.iter().map(|s| s.start.resource_type).collect();
        assert_eq!(kinds.len(), 3, "SSH, RDP and WEB all appear");
        let ips: Vec<IpAddr> = all.iter().map(|s| s.start.client_ip.parse().unwrap()).collect();
        assert!(ips.iter().any(IpAddr::is_ipv6));
        assert!(ips.iter().any(|ip| matches!(ip, IpAddr::V4(v4) if v4.is_private())));
        assert!(
            ips.iter()
                .any(|ip| matches!(ip, IpAddr::V4(v4) if v4.octets()[..3] == [81, 2, 69]))
        );
        let idle = all.iter().filter(|s| s.idle).count();
        assert!((100..=300).contains(&idle), "about 20% idle, got {idle}");
    }

    #[test]
    fn devices_look_like_devices() {
        let devices: Vec<String> = (0..300).map(|k| user(3, k).device).collect();
        assert!(devices.iter().any(|d| d.ends_with("-macbook")));
        let windows = devices.iter().find(|d| d.starts_with("DESKTOP-")).unwrap();
        assert_eq!(windows.len(), "DESKTOP-".len() + 7);
        assert!(
            windows["DESKTOP-".len()..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
    }

    #[test]
    fn names_stay_unique_past_the_name_combinations() {
        let combinations = FIRST_NAMES.len() * LAST_NAMES.len();
        let emails: HashSet<String> = (0..combinations * 3).map(|k| user(0, k).email).collect();
        assert_eq!(emails.len(), combinations * 3);
        assert_eq!(user(0, 0).email, "alice.martin@acme.example");
        assert_eq!(user(0, combinations).email, "alice.martin1@acme.example");
    }

    #[test]
    fn gateway_ids_follow_the_naming_scheme() {
        assert_eq!(gateway_id(0), "gw-fra-01");
        assert_eq!(gateway_id(1), "gw-nyc-02");
        assert_eq!(gateway_id(10), "gw-fra-11");
        assert_eq!(gateway_id(9_999), "gw-chi-10000");
        let ids: HashSet<String> = (0..10_000).map(gateway_id).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
