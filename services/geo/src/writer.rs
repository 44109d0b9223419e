//! Writing MMDB files: the demo databases, databases for tests, and the ASN database `make geoip`
//! builds from ip-location-db's CSV (that project publishes its ASN data on npm as CSV only).
//!
//! Every file is written next to its destination and renamed over it, so a running service sees
//! either the old file or the new one, never half of one (see [`crate::databases`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use mmdb_writer::ipnet::IpNet;
use mmdb_writer::{IpVersion, Value, Writer};

/// The shape of a city database's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// MaxMind's GeoIP2 City layout (nested maps with `names`), as GeoLite2 and DB-IP's own
    /// files use.
    GeoIp2,
    /// ip-location-db's flat layout (`city`, `state1`, `country_code`, 32-bit float coordinates).
    Flat,
}

/// A network and where it is, for a generated city database. Empty strings are left out of the
/// record, as real databases leave out what they do not know.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CityEntry<'a> {
    /// CIDR notation: `81.2.69.160/27`, `2001:218::/32`.
    pub network: &'a str,
    pub city: &'a str,
    pub region: &'a str,
    /// ISO 3166-1 alpha-2.
    pub country_code: &'a str,
    /// English; the flat layout has no country names and leaves it out.
    pub country_name: &'a str,
    pub latitude: f64,
    pub longitude: f64,
    /// Kilometres; the flat layout has no radius and leaves it out.
    pub accuracy_radius_km: u16,
    /// IANA name, `Europe/London`.
    pub time_zone: &'a str,
}

/// A network and the autonomous system that announces it, for a generated ASN database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsnEntry<'a> {
    /// CIDR notation.
    pub network: &'a str,
    pub asn: u32,
    pub organization: &'a str,
}

/// Writes a city database with `entries` to `path`. An IPv6 database, in which IPv4 addresses
/// are found too; except that a flat-layout database of IPv4 networks only is an IPv4 database,
/// as ip-location-db's `*-ipv4.mmdb` files are.
pub fn write_city_database(path: &Path, entries: &[CityEntry<'_>], layout: Layout) -> io::Result<()> {
    let networks = entries
        .iter()
        .map(|entry| network(entry.network))
        .collect::<io::Result<Vec<IpNet>>>()?;
    let ipv4_only = layout == Layout::Flat && networks.iter().all(|network| matches!(network, IpNet::V4(_)));
    let mut writer = match (layout, ipv4_only) {
        (Layout::GeoIp2, _) => Writer::new("Vigil-Demo-City"),
        (Layout::Flat, false) => Writer::new("city ipv6"),
        (Layout::Flat, true) => Writer::builder("city ipv4").ip_version(IpVersion::V4).build(),
    };
    for (entry, network) in entries.iter().zip(networks) {
        let value = match layout {
            Layout::GeoIp2 => nested_city(entry),
            Layout::Flat => flat_city(entry),
        };
        writer.insert_value(network, value).map_err(invalid)?;
    }
    write_atomically(path, &writer.to_bytes().map_err(invalid)?)
}

/// Writes an ASN database (GeoLite2-ASN layout) with `entries` to `path`.
pub fn write_asn_database(path: &Path, entries: &[AsnEntry<'_>]) -> io::Result<()> {
    let mut writer = Writer::new("Vigil-Demo-ASN");
    for entry in entries {
        writer
            .insert_value(network(entry.network)?, asn_value(entry.asn, entry.organization))
            .map_err(invalid)?;
    }
    write_atomically(path, &writer.to_bytes().map_err(invalid)?)
}

/// What [`import_asn_csv`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportSummary {
    /// Address ranges written.
    pub ranges: u64,
    /// Ranges left out because they lie in IPv6 networks that stand for IPv4 addresses (the
    /// IPv4 records answer for them).
    pub skipped: u64,
    /// Bytes of the written database.
    pub bytes: u64,
}

/// Builds an ASN database at `out` from ip-location-db ASN CSV files (`asn-ipv4.csv`,
/// `asn-ipv6.csv`: `first,last,number,"organization"` per line).
pub fn import_asn_csv(csv_files: &[PathBuf], out: &Path) -> io::Result<ImportSummary> {
    let mut writer = Writer::new("ip-location-db-ASN");
    let (mut ranges, mut skipped) = (0_u64, 0_u64);
    for file in csv_files {
        let reader = io::BufReader::new(fs::File::open(file)?);
        for (index, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let at = |reason: &str| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}:{}: {reason}", file.display(), index + 1),
                )
            };
            let fields = csv_fields(&line).ok_or_else(|| at("unbalanced quotes"))?;
            let [first, last, number, organization] = fields.as_slice() else {
                return Err(at("expected 4 fields: first,last,number,organization"));
            };
            let first: IpAddr = first.parse().map_err(|_| at("first address is not an IP address"))?;
            let last: IpAddr = last.parse().map_err(|_| at("last address is not an IP address"))?;
            let number: u32 = number.parse().map_err(|_| at("AS number is not a number"))?;
            if within_ipv4_alias(first, last) {
                // IPv4 addresses in IPv6 clothing (6to4, Teredo): the database answers them from
                // the IPv4 records, and the writer refuses records of their own.
                skipped += 1;
                continue;
            }
            writer
                .insert_range(first, last, &asn_value(number, organization))
                .map_err(|error| at(&error.to_string()))?;
            ranges += 1;
        }
    }
    let bytes = writer.to_bytes().map_err(invalid)?;
    write_atomically(out, &bytes)?;
    Ok(ImportSummary {
        ranges,
        skipped,
        bytes: bytes.len() as u64,
    })
}

/// Whether `first..=last` lies inside one of the IPv6 networks an IPv6 database aliases to its
/// IPv4 records: IPv4-mapped `::ffff:0:0/96`, Teredo `2001::/32`, 6to4 `2002::/16`.
fn within_ipv4_alias(first: IpAddr, last: IpAddr) -> bool {
    const ALIASES: [(u128, u8); 3] = [(0xffff_0000_0000, 96), (0x2001_0000 << 96, 32), (0x2002 << 112, 16)];
    let (IpAddr::V6(first), IpAddr::V6(last)) = (first, last) else {
        return false;
    };
    let (first, last) = (u128::from(first), u128::from(last));
    ALIASES.iter().any(|&(network, prefix)| {
        let mask = u128::MAX << (128 - u32::from(prefix));
        first & mask == network && last & mask == network
    })
}

/// The fields of one CSV line: comma-separated, a field in double quotes may hold commas, and
/// `""` inside quotes is a quote. `None` when a quote is left open.
fn csv_fields(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return None;
    }
    fields.push(field);
    Some(fields)
}

fn network(text: &str) -> io::Result<IpNet> {
    text.parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{text:?} is not a network in CIDR notation"),
        )
    })
}

fn invalid(error: mmdb_writer::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, error.to_string())
}

/// A map of the non-empty `entries`.
fn map_of(entries: impl IntoIterator<Item = (&'static str, Option<Value>)>) -> Value {
    Value::from(
        entries
            .into_iter()
            .filter_map(|(key, value)| Some((key.to_owned(), value?)))
            .collect::<BTreeMap<String, Value>>(),
    )
}

fn text(value: &str) -> Option<Value> {
    (!value.is_empty()).then(|| Value::from(value))
}

fn english(name: &str) -> Option<Value> {
    text(name).map(|name| map_of([("en", Some(name))]))
}

fn nested_city(entry: &CityEntry<'_>) -> Value {
    let country = map_of([
        ("iso_code", text(entry.country_code)),
        ("names", english(entry.country_name)),
    ]);
    let subdivisions = text(entry.region).map(|_| Value::array([map_of([("names", english(entry.region))])]));
    map_of([
        (
            "city",
            english(entry.city).map(|names| map_of([("names", Some(names))])),
        ),
        ("country", Some(country.clone())),
        ("registered_country", Some(country)),
        ("subdivisions", subdivisions),
        (
            "location",
            Some(map_of([
                ("latitude", Some(Value::from(entry.latitude))),
                ("longitude", Some(Value::from(entry.longitude))),
                (
                    "accuracy_radius",
                    (entry.accuracy_radius_km > 0).then(|| Value::from(entry.accuracy_radius_km)),
                ),
                ("time_zone", text(entry.time_zone)),
            ])),
        ),
    ])
}

fn flat_city(entry: &CityEntry<'_>) -> Value {
    // ip-location-db writes every key, empty or not, and its coordinates as 32-bit floats.
    map_of([
        ("city", Some(Value::from(entry.city))),
        ("country_code", Some(Value::from(entry.country_code))),
        ("state1", Some(Value::from(entry.region))),
        ("state2", Some(Value::from(""))),
        ("postcode", Some(Value::from(""))),
        ("latitude", Some(Value::from(entry.latitude as f32))),
        ("longitude", Some(Value::from(entry.longitude as f32))),
        ("timezone", Some(Value::from(entry.time_zone))),
    ])
}

fn asn_value(number: u32, organization: &str) -> Value {
    map_of([
        ("autonomous_system_number", Some(Value::from(number))),
        ("autonomous_system_organization", text(organization)),
    ])
}

/// Writes `bytes` to a new file beside `path` and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::create_dir_all(directory)?;
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{} names no file", path.display())))?;
    let mut temporary_name = file_name.to_owned();
    temporary_name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let temporary = directory.join(temporary_name);
    let written = fs::write(&temporary, bytes).and_then(|()| fs::rename(&temporary, path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_honour_quotes() {
        assert_eq!(
            csv_fields(r#"1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc.""#).unwrap(),
            ["1.0.0.0", "1.0.0.255", "13335", "Cloudflare, Inc."]
        );
        assert_eq!(
            csv_fields(r#"a,"say ""hi""",,c"#).unwrap(),
            ["a", r#"say "hi""#, "", "c"]
        );
        assert_eq!(csv_fields(r#"a,"open"#), None);
    }

    #[test]
    fn ipv4_alias_networks_are_recognised() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(within_ipv4_alias(ip("2001::"), ip("2001:0:ffff::1")));
        assert!(within_ipv4_alias(ip("2002:ab::"), ip("2002:ffff::")));
        assert!(within_ipv4_alias(ip("::ffff:1.2.3.4"), ip("::ffff:1.2.3.9")));
        assert!(!within_ipv4_alias(ip("2001::"), ip("2001:1::")));
        assert!(!within_ipv4_alias(ip("2001:218::"), ip("2001:218::ff")));
        assert!(!within_ipv4_alias(ip("1.2.3.4"), ip("1.2.3.9")));
    }
}
