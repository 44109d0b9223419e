//! A GeoIP database file as geo reads it: any bytes, opened as a city and as an ASN database, then
//! asked about a few addresses. Must never panic (a damaged or hostile file is refused or answers
//! "unknown").

use std::net::IpAddr;
use std::path::PathBuf;

use vigil_geo::Locator;

/// Addresses every opened file is asked about: a demo city's, public IPv4 and IPv6, an IPv4-mapped.
const ADDRESSES: [&str; 5] = [
    "81.2.69.142",
    "8.8.8.8",
    "2001:218::1",
    "::ffff:1.1.1.1",
    "175.16.199.1",
];

pub fn mmdb(data: &[u8]) {
    // A new file each time (geo maps files; one replaced under a mapping must be a new inode).
    let path = file_path();
    let _ = std::fs::remove_file(&path);
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let opened = Locator::open(std::slice::from_ref(&path), std::slice::from_ref(&path));
    if let Ok(locator) = opened {
        let mut addresses: Vec<IpAddr> = ADDRESSES.iter().filter_map(|text| text.parse().ok()).collect();
        // And one the input chooses (its last 16 bytes).
        if data.len() >= 16 {
            let bytes: [u8; 16] = data[data.len() - 16..].try_into().expect("sixteen bytes");
            addresses.push(IpAddr::from(bytes));
            addresses.push(IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]]));
        }
        for address in addresses {
            let location = locator.locate_ip(address);
            assert!((-90.0..=90.0).contains(&location.latitude), "{location:?}");
            assert!((-180.0..=180.0).contains(&location.longitude), "{location:?}");
        }
    }
    let _ = std::fs::remove_file(&path);
}

fn file_path() -> PathBuf {
    std::env::temp_dir().join(format!("vigil-fuzz-mmdb-{}.mmdb", std::process::id()))
}
