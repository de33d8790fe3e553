//! Geo searches against a running ferrokey: radius and box searches over
//! 10,000 random points checked against a brute-force filter (haversine
//! distance, or the box's offsets), COUNT checked against the nearest
//! points, GEOSEARCHSTORE against the search it stores; and the same
//! random searches compared byte for byte with the reference valkey-server.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Server, Valkey};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use redis::Connection;

/// Valkey's earth radius, in meters.
const EARTH_RADIUS_M: f64 = 6372797.560856;
/// Points this close to a shape's edge (in meters) may fall either way
/// between two computations of the distance and are not judged.
const EDGE_TOLERANCE_M: f64 = 0.01;

fn haversine(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lat1, lat2) = (lat1.to_radians(), lat2.to_radians());
    let u = ((lat2 - lat1) / 2.0).sin();
    let v = ((lon2.to_radians() - lon1.to_radians()) / 2.0).sin();
    let a = u * u + lat1.cos() * lat2.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// Adds `count` random points within the given ranges to `key`, in
/// batches; returns their names.
fn add_points(con: &mut Connection, key: &str, count: usize, lon: (f64, f64), lat: (f64, f64), seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    for batch in (0..count).collect::<Vec<_>>().chunks(500) {
        let mut cmd = redis::cmd("GEOADD");
        cmd.arg(key);
        for i in batch {
            cmd.arg(rng.gen_range(lon.0..lon.1)).arg(rng.gen_range(lat.0..lat.1)).arg(format!("p{i}"));
        }
        let added: usize = cmd.query(con).unwrap();
        assert_eq!(added, batch.len());
    }
}

/// Every point's position as the server decodes it from its score.
fn positions(con: &mut Connection, key: &str) -> BTreeMap<String, (f64, f64)> {
    let members: Vec<String> = redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).query(con).unwrap();
    let mut out = BTreeMap::new();
    for chunk in members.chunks(1000) {
        let found: Vec<Option<(f64, f64)>> = redis::cmd("GEOPOS").arg(key).arg(chunk).query(con).unwrap();
        for (member, position) in chunk.iter().zip(found) {
            out.insert(member.clone(), position.expect("every member has a position"));
        }
    }
    out
}

/// The members whose distance from the centre is clearly within `radius`
/// and those clearly outside; the ones on the edge are in neither.
fn brute_force_circle(
    points: &BTreeMap<String, (f64, f64)>,
    lon: f64,
    lat: f64,
    radius: f64,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut inside, mut outside) = (BTreeSet::new(), BTreeSet::new());
    for (member, &(plon, plat)) in points {
        let d = haversine(lon, lat, plon, plat);
        if d <= radius - EDGE_TOLERANCE_M {
            inside.insert(member.clone());
        } else if d > radius + EDGE_TOLERANCE_M {
            outside.insert(member.clone());
        }
    }
    (inside, outside)
}

/// The same for a box: the point's latitude distance within half the
/// height, and its distance from the centre's meridian along its own
/// parallel within half the width.
fn brute_force_box(
    points: &BTreeMap<String, (f64, f64)>,
    lon: f64,
    lat: f64,
    width: f64,
    height: f64,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut inside, mut outside) = (BTreeSet::new(), BTreeSet::new());
    for (member, &(plon, plat)) in points {
        let dy = EARTH_RADIUS_M * (lat.to_radians() - plat.to_radians()).abs();
        let dx = haversine(plon, plat, lon, plat);
        let (y_margin, x_margin) = (height / 2.0 - dy, width / 2.0 - dx);
        if y_margin >= EDGE_TOLERANCE_M && x_margin >= EDGE_TOLERANCE_M {
            inside.insert(member.clone());
        } else if y_margin < -EDGE_TOLERANCE_M || x_margin < -EDGE_TOLERANCE_M {
            outside.insert(member.clone());
        }
    }
    (inside, outside)
}

fn check_found(found: &BTreeSet<String>, inside: &BTreeSet<String>, outside: &BTreeSet<String>, what: &str) {
    let missed: Vec<_> = inside.difference(found).collect();
    assert!(missed.is_empty(), "{what}: missed {} points, e.g. {:?}", missed.len(), &missed[..missed.len().min(5)]);
    let extra: Vec<_> = found.intersection(outside).collect();
    assert!(extra.is_empty(), "{what}: {} points outside, e.g. {:?}", extra.len(), &extra[..extra.len().min(5)]);
}

#[test]
fn radius_searches_match_a_brute_force_haversine_filter() {
    let server = Server::start();
    let mut con = server.client();
    // A dense region (hundreds of points per search) and the whole world.
    add_points(&mut con, "europe", 10_000, (-10.0, 30.0), (35.0, 60.0), 1);
    add_points(&mut con, "world", 10_000, (-180.0, 180.0), (-85.0, 85.0), 2);
    let mut rng = SmallRng::seed_from_u64(3);
    for (key, lon_range, lat_range, radii_km) in [
        ("europe", (-12.0, 32.0), (33.0, 62.0), [1.0, 20.0, 80.0, 300.0, 1200.0]),
        ("world", (-180.0, 180.0), (-84.0, 84.0), [50.0, 400.0, 1500.0, 5000.0, 12000.0]),
    ] {
        let points = positions(&mut con, key);
        assert_eq!(points.len(), 10_000);
        for round in 0..60 {
            let lon: f64 = rng.gen_range(lon_range.0..lon_range.1);
            let lat: f64 = rng.gen_range(lat_range.0..lat_range.1);
            let radius_km = radii_km[round % radii_km.len()];
            let radius_m = radius_km * 1000.0;
            let what = format!("{key} around {lon},{lat} within {radius_km} km");

            let reply: Vec<(String, String)> = redis::cmd("GEOSEARCH")
                .arg(key)
                .arg("FROMLONLAT")
                .arg(lon)
                .arg(lat)
                .arg("BYRADIUS")
                .arg(radius_km)
                .arg("km")
                .arg("WITHDIST")
                .arg("ASC")
                .query(&mut con)
                .unwrap();
            let found: BTreeSet<String> = reply.iter().map(|(m, _)| m.clone()).collect();
            assert_eq!(found.len(), reply.len(), "{what}: duplicates");
            let (inside, outside) = brute_force_circle(&points, lon, lat, radius_m);
            check_found(&found, &inside, &outside, &what);

            // Ascending distances, each as the brute force computes it.
            let distances: Vec<f64> = reply.iter().map(|(_, d)| d.parse().unwrap()).collect();
            assert!(distances.windows(2).all(|w| w[0] <= w[1]), "{what}: not ascending");
            for (member, shown) in &reply {
                let (plon, plat) = points[member];
                let expected = haversine(lon, lat, plon, plat) / 1000.0;
                let shown: f64 = shown.parse().unwrap();
                assert!((expected - shown).abs() <= 0.00006, "{what}: {member} at {shown} km, not {expected}");
            }

            // COUNT: the nearest ones.
            if reply.len() > 3 {
                let nearest: Vec<String> = redis::cmd("GEORADIUS")
                    .arg(key)
                    .arg(lon)
                    .arg(lat)
                    .arg(radius_km)
                    .arg("km")
                    .arg("COUNT")
                    .arg(3)
                    .query(&mut con)
                    .unwrap();
                let expected: Vec<String> = reply.iter().take(3).map(|(m, _)| m.clone()).collect();
                assert_eq!(nearest, expected, "{what}: COUNT 3");
            }

            // The same area as a box of twice the radius on each side.
            let side_km = radius_km * 2.0;
            let boxed: Vec<String> = redis::cmd("GEOSEARCH")
                .arg(key)
                .arg("FROMLONLAT")
                .arg(lon)
                .arg(lat)
                .arg("BYBOX")
                .arg(side_km)
                .arg(side_km / 2.0)
                .arg("km")
                .query(&mut con)
                .unwrap();
            let boxed: BTreeSet<String> = boxed.into_iter().collect();
            let (inside, outside) = brute_force_box(&points, lon, lat, side_km * 1000.0, side_km * 500.0);
            check_found(&boxed, &inside, &outside, &format!("{what} (box)"));
        }
    }
}

#[test]
fn searchstore_stores_what_the_search_finds() {
    let server = Server::start();
    let mut con = server.client();
    add_points(&mut con, "pts", 2_000, (0.0, 10.0), (40.0, 50.0), 4);
    let found: Vec<(String, String)> = redis::cmd("GEOSEARCH")
        .arg("pts")
        .arg("FROMLONLAT")
        .arg(5)
        .arg(45)
        .arg("BYRADIUS")
        .arg(150)
        .arg("km")
        .arg("WITHDIST")
        .query(&mut con)
        .unwrap();
    assert!(found.len() > 10);
    let stored: usize = redis::cmd("GEOSEARCHSTORE")
        .arg("near")
        .arg("pts")
        .arg("FROMLONLAT")
        .arg(5)
        .arg(45)
        .arg("BYRADIUS")
        .arg(150)
        .arg("km")
        .arg("STOREDIST")
        .query(&mut con)
        .unwrap();
    assert_eq!(stored, found.len());
    let scores: Vec<(String, f64)> =
        redis::cmd("ZRANGE").arg("near").arg(0).arg(-1).arg("WITHSCORES").query(&mut con).unwrap();
    let expected: BTreeMap<String, f64> = found.into_iter().map(|(m, d)| (m, d.parse().unwrap())).collect();
    for (member, distance) in &scores {
        assert!((expected[member] - distance).abs() < 0.00006, "{member}: {distance}");
    }
    // A search that finds nothing deletes the destination.
    let stored: usize = redis::cmd("GEOSEARCHSTORE")
        .arg("near")
        .arg("pts")
        .arg("FROMLONLAT")
        .arg(-100)
        .arg(0)
        .arg("BYRADIUS")
        .arg(1)
        .arg("km")
        .query(&mut con)
        .unwrap();
    assert_eq!(stored, 0);
    let exists: bool = redis::cmd("EXISTS").arg("near").query(&mut con).unwrap();
    assert!(!exists);
}

#[test]
fn random_searches_answer_like_valkey() {
    let ferrokey = Server::start();
    let valkey = Valkey::start();
    let mut servers = [ferrokey.raw(), valkey.raw()];
    let mut rng = SmallRng::seed_from_u64(5);
    // A skiplist-encoded set (3,000 points) and a listpack one (100).
    for (key, count) in [("big", 3_000usize), ("small", 100)] {
        for batch in (0..count).collect::<Vec<_>>().chunks(500) {
            let mut args: Vec<Vec<u8>> = vec![b"GEOADD".to_vec(), key.as_bytes().to_vec()];
            for i in batch {
                args.push(format!("{:.6}", rng.gen_range(-180.0..180.0f64)).into_bytes());
                args.push(format!("{:.6}", rng.gen_range(-85.0..85.0f64)).into_bytes());
                args.push(format!("m{i}").into_bytes());
            }
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
            let replies: Vec<Vec<u8>> = servers.iter_mut().map(|s| s.cmd(&args)).collect();
            assert_eq!(replies[0], replies[1]);
        }
    }
    let units = ["m", "km", "mi", "ft"];
    for round in 0..200 {
        let key = if round % 4 == 0 { "small" } else { "big" };
        let unit = units[rng.gen_range(0..units.len())];
        let scale = match unit {
            "m" => 1000.0,
            "ft" => 3280.0,
            "mi" => 0.62,
            _ => 1.0,
        };
        let reach_km = [10.0, 200.0, 1000.0, 4000.0, 15000.0][rng.gen_range(0..5)];
        let mut line = vec!["GEOSEARCH".to_string(), key.to_string()];
        if rng.gen_bool(0.3) {
            line.extend(["FROMMEMBER".to_string(), format!("m{}", rng.gen_range(0..100))]);
        } else {
            line.extend([
                "FROMLONLAT".to_string(),
                format!("{:.5}", rng.gen_range(-180.0..180.0f64)),
                format!("{:.5}", rng.gen_range(-85.0..85.0f64)),
            ]);
        }
        if rng.gen_bool(0.5) {
            line.extend(["BYRADIUS".to_string(), format!("{:.3}", reach_km * scale), unit.to_string()]);
        } else {
            line.extend([
                "BYBOX".to_string(),
                format!("{:.3}", reach_km * scale * rng.gen_range(0.5..2.0)),
                format!("{:.3}", reach_km * scale * rng.gen_range(0.5..2.0)),
                unit.to_string(),
            ]);
        }
        match rng.gen_range(0..4) {
            0 => line.push("ASC".to_string()),
            1 => line.push("DESC".to_string()),
            _ => {}
        }
        if rng.gen_bool(0.3) {
            line.extend(["COUNT".to_string(), rng.gen_range(1..20).to_string()]);
            if rng.gen_bool(0.3) {
                line.push("ANY".to_string());
            }
        }
        line.extend(["WITHDIST", "WITHHASH", "WITHCOORD"].iter().filter(|_| rng.gen_bool(0.5)).map(|s| s.to_string()));
        let args: Vec<&[u8]> = line.iter().map(|a| a.as_bytes()).collect();
        let replies: Vec<Vec<u8>> = servers.iter_mut().map(|s| s.cmd(&args)).collect();
        assert_eq!(String::from_utf8_lossy(&replies[0]), String::from_utf8_lossy(&replies[1]), "{}", line.join(" "));
    }
}
