//! One MMDB record, decoded in either of the two layouts found in the wild, without copying: every
//! string borrows from the memory-mapped file.
//!
//! - Nested (MaxMind's GeoIP2/GeoLite2 City, DB-IP's own files): `city.names.en`,
//!   `subdivisions[0].names.en`, `country.iso_code`, `country.names.en`, `location.latitude`, …
//! - Flat (the ip-location-db files): `city`, `state1`, `country_code`, `latitude`, `timezone`, …
//!
//! Both spell the ASN fields alike (`autonomous_system_number`, `autonomous_system_organization`).
//! The only key the layouts share with different shapes is `city` (a string or a map), so one
//! struct decodes both and nothing has to guess the layout from the database's metadata. Numbers
//! are read by value whatever their MMDB type: ip-location-db stores coordinates as 32-bit floats
//! where MaxMind stores doubles.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use vigil_proto::v1 as pb;

use crate::countries;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Record<'a> {
    #[serde(borrow, default)]
    city: CityName<'a>,
    #[serde(borrow, default)]
    country: Option<Place<'a>>,
    /// Where the network is registered; stands in when a record has no `country`.
    #[serde(borrow, default)]
    registered_country: Option<Place<'a>>,
    #[serde(borrow, default)]
    subdivisions: FirstSubdivision<'a>,
    #[serde(borrow, default)]
    location: Option<NestedLocation<'a>>,

    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(borrow, default)]
    state1: Option<&'a str>,
    #[serde(default)]
    latitude: Option<Number>,
    #[serde(default)]
    longitude: Option<Number>,
    #[serde(borrow, default)]
    timezone: Option<&'a str>,

    #[serde(default)]
    autonomous_system_number: Option<Number>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
}

impl Record<'_> {
    /// Copies what this record knows about the place into `location`. Returns whether it knew
    /// anything (a country or coordinates): a record with neither does not locate.
    pub fn fill_place(&self, location: &mut pb::Location) -> bool {
        let nested_country = self.country.as_ref().or(self.registered_country.as_ref());
        location.city = self.city.0.unwrap_or_default().to_owned();
        location.region = self.subdivisions.0.or(self.state1).unwrap_or_default().to_owned();
        let code = nested_country
            .and_then(|country| country.iso_code)
            .or(self.country_code)
            .unwrap_or_default();
        location.country_code = code.to_owned();
        location.country_name = nested_country
            .and_then(Place::english_name)
            .or_else(|| countries::name(code))
            .unwrap_or_default()
            .to_owned();

        let nested = self.location.as_ref();
        let latitude = nested.and_then(|location| location.latitude).or(self.latitude);
        let longitude = nested.and_then(|location| location.longitude).or(self.longitude);
        if let (Some(Number(latitude)), Some(Number(longitude))) = (latitude, longitude)
            && (-90.0..=90.0).contains(&latitude)
            && (-180.0..=180.0).contains(&longitude)
            // (0, 0) is the conventional "no coordinates" of GeoIP exports, not a place in the sea.
            && (latitude, longitude) != (0.0, 0.0)
        {
            location.latitude = latitude;
            location.longitude = longitude;
            location.has_coordinates = true;
            location.accuracy_radius_km = nested
                .and_then(|location| location.accuracy_radius)
                .map_or(0, |Number(radius)| radius.clamp(0.0, f64::from(u32::MAX)) as u32);
        }
        location.time_zone = nested
            .and_then(|location| location.time_zone)
            .or(self.timezone)
            .unwrap_or_default()
            .to_owned();
        !location.country_code.is_empty() || location.has_coordinates
    }

    /// Copies the autonomous system, when the record names one, into `location`. Returns whether
    /// it did.
    pub fn fill_asn(&self, location: &mut pb::Location) -> bool {
        let Some(Number(number)) = self.autonomous_system_number else {
            return false;
        };
        if !(1.0..=f64::from(u32::MAX)).contains(&number) {
            return false;
        }
        location.asn = number as u32;
        location.asn_organization = self.autonomous_system_organization.unwrap_or_default().to_owned();
        true
    }
}

/// `country` / `registered_country` of the nested layout.
#[derive(Debug, Default, Deserialize)]
struct Place<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
    #[serde(borrow, default)]
    names: Option<Names<'a>>,
}

impl<'a> Place<'a> {
    fn english_name(&self) -> Option<&'a str> {
        self.names.as_ref().and_then(|names| names.en)
    }
}

/// A `names` map; only English is kept.
#[derive(Debug, Default, Deserialize)]
struct Names<'a> {
    #[serde(borrow, default)]
    en: Option<&'a str>,
}

/// `location` of the nested layout.
#[derive(Debug, Default, Deserialize)]
struct NestedLocation<'a> {
    #[serde(default)]
    latitude: Option<Number>,
    #[serde(default)]
    longitude: Option<Number>,
    /// Kilometres.
    #[serde(default)]
    accuracy_radius: Option<Number>,
    #[serde(borrow, default)]
    time_zone: Option<&'a str>,
}

/// `city`: a name (flat layout) or a map with `names` (nested layout).
#[derive(Debug, Default)]
struct CityName<'a>(Option<&'a str>);

impl<'de: 'a, 'a> Deserialize<'de> for CityName<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CityVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for CityVisitor<'a> {
            type Value = CityName<'a>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a city name or a map with names")
            }

            fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Self::Value, E> {
                Ok(CityName(Some(name)))
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                let place = Place::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(CityName(place.english_name()))
            }
        }
        deserializer.deserialize_any(CityVisitor(std::marker::PhantomData))
    }
}

/// The English name of the first (largest) of `subdivisions`, without collecting the list.
#[derive(Debug, Default)]
struct FirstSubdivision<'a>(Option<&'a str>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstSubdivision<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FirstVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for FirstVisitor<'a> {
            type Value = FirstSubdivision<'a>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a list of subdivisions")
            }

            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                let first = seq.next_element::<Place<'a>>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstSubdivision(first.and_then(|place| place.english_name())))
            }
        }
        deserializer.deserialize_seq(FirstVisitor(std::marker::PhantomData))
    }
}

/// A number of any MMDB numeric type, as `f64` (exact for every integer type MMDB uses for the
/// fields read here: ASNs are `uint32`, radii `uint16`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Number(f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl Visitor<'_> for NumberVisitor {
            type Value = Number;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a number")
            }

            fn visit_f32<E: de::Error>(self, value: f32) -> Result<Number, E> {
                // A 32-bit float holds about seven significant digits; widened as it is, the
                // 51.5143 of London reads 51.51430130004883. Four decimals (about 11 m) is all
                // the precision a 32-bit coordinate has.
                Ok(Number((f64::from(value) * 1e4).round() / 1e4))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Number, E> {
                Ok(Number(value))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Number, E> {
                Ok(Number(value as f64))
            }

            fn visit_u128<E: de::Error>(self, value: u128) -> Result<Number, E> {
                Ok(Number(value as f64))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Number, E> {
                Ok(Number(value as f64))
            }
        }
        deserializer.deserialize_any(NumberVisitor)
    }
}
