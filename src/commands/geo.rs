//! Geo: GEOADD, GEOPOS, GEOHASH, GEODIST, GEOSEARCH, GEOSEARCHSTORE,
//! GEORADIUS, GEORADIUSBYMEMBER and their read-only forms.
//!
//! A geo set is a plain sorted set whose scores are 52-bit geohashes: the
//! latitude and longitude, each scaled to 26 bits of its range
//! (±85.05112878° and ±180°), interleaved with the latitude on the even
//! bits. Valkey's arithmetic is reproduced operation for operation (same
//! order of floating point operations, same C integer conversions, libm's
//! trigonometry), so scores, decoded positions, distances and the set of
//! points a search finds, in the order it finds them, are Valkey's.
//!
//! A search covers its shape with the geohash box of the centre plus its
//! eight neighbours, at the precision the radius calls for, reads each box
//! as a score range of the sorted set, and keeps the points whose haversine
//! distance (or offsets, for a box) fits the shape.

use std::f64::consts::PI;

use ferrokey_formats::resp::parse_i64;

use super::args::c_str;
use super::sort::{partial_sort_by, stable_sort_by};
use crate::command::{errors, CmdError, CmdResult, Ctx, Handler, Lookup};
use crate::db::Entry;
use crate::double;
use crate::notify::{self, notify};
use crate::reply::Reply;
use crate::types::zset::{Limits, Range, ScoreRange, ZSet};
use crate::value::Value;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("geoadd", geoadd),
    ("geopos", geopos),
    ("geohash", geohash),
    ("geodist", geodist),
    ("geosearch", geosearch),
    ("geosearchstore", geosearchstore),
    ("georadius", georadius),
    ("georadius_ro", georadius_ro),
    ("georadiusbymember", georadiusbymember),
    ("georadiusbymember_ro", georadiusbymember_ro),
];

// ---------------------------------------------------------------------------
// Geohash arithmetic
// ---------------------------------------------------------------------------

/// Bits per coordinate in a stored score (26 + 26 = 52, a double's mantissa).
const STEP_MAX: u8 = 26;
/// Web Mercator's limits: no point can be indexed closer to the poles.
const LAT_MIN: f64 = -85.05112878;
const LAT_MAX: f64 = 85.05112878;
const LON_MIN: f64 = -180.0;
const LON_MAX: f64 = 180.0;
/// Valkey's earth radius (the quadratic mean of WGS-84's), in meters.
const EARTH_RADIUS_M: f64 = 6372797.560856;
/// Half the earth's circumference in Web Mercator meters: the radius that
/// makes a one-bit geohash box.
const MERCATOR_MAX: f64 = 20037726.37;
const DEG_TO_RAD: f64 = PI / 180.0;

fn deg_rad(degrees: f64) -> f64 {
    degrees * DEG_TO_RAD
}

fn rad_deg(radians: f64) -> f64 {
    radians / DEG_TO_RAD
}

/// A geohash of `step` bits per coordinate; all zero stands for "no box".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HashBits {
    bits: u64,
    step: u8,
}

impl HashBits {
    const NONE: HashBits = HashBits { bits: 0, step: 0 };

    fn is_none(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The hash as the high bits of a 52-bit score.
    fn aligned_52(&self) -> u64 {
        self.bits << (52 - u32::from(self.step) * 2)
    }
}

#[derive(Clone, Copy, Debug)]
struct Span {
    min: f64,
    max: f64,
}

/// The ranges scores are computed over.
const STORED_LON: Span = Span { min: LON_MIN, max: LON_MAX };
const STORED_LAT: Span = Span { min: LAT_MIN, max: LAT_MAX };
/// The ranges of the standard geohash, which GEOHASH prints.
const STANDARD_LAT: Span = Span { min: -90.0, max: 90.0 };

/// The cell a hash stands for.
#[derive(Clone, Copy, Debug)]
struct Area {
    lon: Span,
    lat: Span,
}

/// Spreads the 32 bits of `v` over the even bits of a u64.
fn spread_bits(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// Gathers the even bits of `x` into a u32 (the inverse of `spread_bits`).
fn gather_bits(x: u64) -> u32 {
    let mut x = x & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// Latitude bits on the even positions, longitude bits on the odd ones.
fn interleave(lat: u32, lon: u32) -> u64 {
    spread_bits(lat) | (spread_bits(lon) << 1)
}

/// (latitude bits, longitude bits) of an interleaved hash.
fn deinterleave(bits: u64) -> (u32, u32) {
    (gather_bits(bits), gather_bits(bits >> 1))
}

/// The hash of a position at `step` bits per coordinate over the given
/// ranges; None outside Valkey's limits or the ranges.
fn encode(lon_range: Span, lat_range: Span, lon: f64, lat: f64, step: u8) -> Option<HashBits> {
    if !(LON_MIN..=LON_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_range.min || lat > lat_range.max || lon < lon_range.min || lon > lon_range.max {
        return None;
    }
    let cells = (1u64 << step) as f64;
    let mut lat_offset = (lat - lat_range.min) / (lat_range.max - lat_range.min);
    let mut lon_offset = (lon - lon_range.min) / (lon_range.max - lon_range.min);
    lat_offset *= cells;
    lon_offset *= cells;
    // C converts the offsets to 32-bit unsigned integers by truncation.
    Some(HashBits { bits: interleave(lat_offset as u32, lon_offset as u32), step })
}

/// The cell of a hash over the stored ranges; None for the "no box" hash.
fn decode(hash: HashBits) -> Option<Area> {
    if hash.is_none() {
        return None;
    }
    let (lat_bits, lon_bits) = deinterleave(hash.bits);
    let cells = (1u64 << hash.step) as f64;
    let lat_scale = STORED_LAT.max - STORED_LAT.min;
    let lon_scale = STORED_LON.max - STORED_LON.min;
    // The upper edge is computed in 32-bit unsigned arithmetic, as in C.
    Some(Area {
        lat: Span {
            min: STORED_LAT.min + (f64::from(lat_bits) / cells) * lat_scale,
            max: STORED_LAT.min + (f64::from(lat_bits.wrapping_add(1)) / cells) * lat_scale,
        },
        lon: Span {
            min: STORED_LON.min + (f64::from(lon_bits) / cells) * lon_scale,
            max: STORED_LON.min + (f64::from(lon_bits.wrapping_add(1)) / cells) * lon_scale,
        },
    })
}

/// The centre of a cell, kept within Valkey's limits: (longitude, latitude).
fn area_center(area: &Area) -> (f64, f64) {
    let lon = ((area.lon.min + area.lon.max) / 2.0).clamp(LON_MIN, LON_MAX);
    let lat = ((area.lat.min + area.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// 2^63, where C's conversions of doubles to 64-bit integers change course.
const TWO_63: f64 = 9_223_372_036_854_775_808.0;

/// C's conversion of a double to an unsigned 64-bit integer as x86-64 code
/// performs it (scores that are not geohashes still get decoded).
fn c_double_to_u64(d: f64) -> u64 {
    if d >= TWO_63 {
        (c_double_to_i64(d - TWO_63) as u64) ^ (1 << 63)
    } else {
        c_double_to_i64(d) as u64
    }
}

/// C's truncating conversion of a double to a signed 64-bit integer on
/// x86-64: NaN and values out of range become i64::MIN.
fn c_double_to_i64(d: f64) -> i64 {
    if !(-TWO_63..TWO_63).contains(&d) {
        i64::MIN
    } else {
        d as i64
    }
}

/// The position a score stands for: (longitude, latitude).
fn decode_score(score: f64) -> (f64, f64) {
    let hash = HashBits { bits: c_double_to_u64(score), step: STEP_MAX };
    decode(hash).map_or((0.0, 0.0), |area| area_center(&area))
}

/// The score of a position (which the caller has checked is in range).
fn score_of(lon: f64, lat: f64) -> u64 {
    encode(STORED_LON, STORED_LAT, lon, lat, STEP_MAX).unwrap_or(HashBits { bits: 0, step: STEP_MAX }).aligned_52()
}

/// Moves a hash one cell east (`+1`) or west (`-1`), wrapping around.
fn move_lon(hash: &mut HashBits, direction: i8) {
    let width = 64 - u32::from(hash.step) * 2;
    let lon = hash.bits & 0xAAAA_AAAA_AAAA_AAAA;
    let lat = hash.bits & 0x5555_5555_5555_5555;
    // The latitude bits set to one make a carry (or borrow) run across them.
    let filler = 0x5555_5555_5555_5555u64 >> width;
    let moved = if direction > 0 { lon.wrapping_add(filler + 1) } else { (lon | filler).wrapping_sub(filler + 1) };
    hash.bits = (moved & (0xAAAA_AAAA_AAAA_AAAA >> width)) | lat;
}

/// Moves a hash one cell north (`+1`) or south (`-1`), wrapping around.
fn move_lat(hash: &mut HashBits, direction: i8) {
    let width = 64 - u32::from(hash.step) * 2;
    let lon = hash.bits & 0xAAAA_AAAA_AAAA_AAAA;
    let lat = hash.bits & 0x5555_5555_5555_5555;
    let filler = 0xAAAA_AAAA_AAAA_AAAAu64 >> width;
    let moved = if direction > 0 { lat.wrapping_add(filler + 1) } else { (lat | filler).wrapping_sub(filler + 1) };
    hash.bits = lon | (moved & (0x5555_5555_5555_5555 >> width));
}

/// A hash moved by (east, north) cells.
fn neighbor(hash: HashBits, east: i8, north: i8) -> HashBits {
    let mut moved = hash;
    if east != 0 {
        move_lon(&mut moved, east);
    }
    if north != 0 {
        move_lat(&mut moved, north);
    }
    moved
}

/// The number of bits per coordinate whose cells are about as large as
/// the search radius (smaller near the poles, where cells narrow).
fn steps_for_radius(mut range_m: f64, lat: f64) -> u8 {
    if range_m == 0.0 {
        return STEP_MAX;
    }
    let mut step: i32 = 1;
    while range_m < MERCATOR_MAX {
        range_m *= 2.0;
        step += 1;
    }
    // Two steps coarser so that the radius fits in most cases.
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, i32::from(STEP_MAX)) as u8
}

/// How far a search reaches from its centre.
#[derive(Clone, Copy, Debug)]
enum Extent {
    Radius(f64),
    Box { width: f64, height: f64 },
}

/// A search area: its centre, its extent in the user's unit, and the
/// unit's size in meters.
#[derive(Clone, Copy, Debug)]
struct Shape {
    lon: f64,
    lat: f64,
    to_meters: f64,
    extent: Extent,
}

/// A latitude/longitude rectangle enclosing a shape.
struct Bounds {
    min_lon: f64,
    min_lat: f64,
    max_lon: f64,
    max_lat: f64,
}

impl Shape {
    fn bounds(&self) -> Bounds {
        let (half_height, half_width) = match self.extent {
            Extent::Radius(r) => (r, r),
            Extent::Box { width, height } => (height / 2.0, width / 2.0),
        };
        let height = self.to_meters * half_height;
        let width = self.to_meters * half_width;
        let lat_delta = rad_deg(height / EARTH_RADIUS_M);
        // Meridians converge toward the poles: the side nearer the pole is
        // the wider one in degrees.
        let lon_delta_top = rad_deg(width / EARTH_RADIUS_M / deg_rad(self.lat + lat_delta).cos());
        let lon_delta_bottom = rad_deg(width / EARTH_RADIUS_M / deg_rad(self.lat - lat_delta).cos());
        let lon_delta = if self.lat < 0.0 { lon_delta_bottom } else { lon_delta_top };
        Bounds {
            min_lon: self.lon - lon_delta,
            max_lon: self.lon + lon_delta,
            min_lat: self.lat - lat_delta,
            max_lat: self.lat + lat_delta,
        }
    }

    /// The radius of the circle around the shape, in meters.
    fn reach_meters(&self) -> f64 {
        let reach = match self.extent {
            Extent::Radius(r) => r,
            Extent::Box { width, height } => ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt(),
        };
        reach * self.to_meters
    }

    /// The distance of a point from the centre, in meters, if it lies
    /// within the shape.
    fn distance_if_within(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.extent {
            Extent::Radius(r) => {
                let distance = distance(self.lon, self.lat, lon, lat);
                // Written so that a NaN distance counts as within, as in C.
                if distance > r * self.to_meters {
                    None
                } else {
                    Some(distance)
                }
            }
            Extent::Box { width, height } => {
                let (width_m, height_m) = (width * self.to_meters, height * self.to_meters);
                if lat_distance(lat, self.lat) > height_m / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > width_m / 2.0 {
                    return None;
                }
                Some(distance(self.lon, self.lat, lon, lat))
            }
        }
    }

    /// The nine boxes to search, in Valkey's order: the centre's, then
    /// north, south, east, west, north-east, north-west, south-east,
    /// south-west ([`HashBits::NONE`] for the ones that cannot hold a
    /// match).
    fn boxes(&self) -> [HashBits; 9] {
        let bounds = self.bounds();
        let mut steps = steps_for_radius(self.reach_meters(), self.lat);
        let cell_of = |steps: u8| {
            let hash =
                encode(STORED_LON, STORED_LAT, self.lon, self.lat, steps).unwrap_or(HashBits { bits: 0, step: steps });
            let area = decode(hash).unwrap_or(Area { lon: STORED_LON, lat: STORED_LAT });
            (hash, area)
        };
        let (mut hash, mut area) = cell_of(steps);
        // Near a cell's edge the neighbours may still not reach the whole
        // bounding box: then one step coarser.
        let reaches = |hash: HashBits, east: i8, north: i8| decode(neighbor(hash, east, north));
        let too_small = reaches(hash, 0, 1).is_some_and(|a| a.lat.max < bounds.max_lat)
            || reaches(hash, 0, -1).is_some_and(|a| a.lat.min > bounds.min_lat)
            || reaches(hash, 1, 0).is_some_and(|a| a.lon.max < bounds.max_lon)
            || reaches(hash, -1, 0).is_some_and(|a| a.lon.min > bounds.min_lon);
        if steps > 1 && too_small {
            steps -= 1;
            (hash, area) = cell_of(steps);
        }
        let mut north = neighbor(hash, 0, 1);
        let mut south = neighbor(hash, 0, -1);
        let mut east = neighbor(hash, 1, 0);
        let mut west = neighbor(hash, -1, 0);
        let mut north_east = neighbor(hash, 1, 1);
        let mut north_west = neighbor(hash, -1, 1);
        let mut south_east = neighbor(hash, 1, -1);
        let mut south_west = neighbor(hash, -1, -1);
        // Drop the neighbours on the sides where the centre's cell already
        // covers the whole bounding box.
        if steps >= 2 {
            if area.lat.min < bounds.min_lat {
                south = HashBits::NONE;
                south_west = HashBits::NONE;
                south_east = HashBits::NONE;
            }
            if area.lat.max > bounds.max_lat {
                north = HashBits::NONE;
                north_east = HashBits::NONE;
                north_west = HashBits::NONE;
            }
            if area.lon.min < bounds.min_lon {
                west = HashBits::NONE;
                south_west = HashBits::NONE;
                north_west = HashBits::NONE;
            }
            if area.lon.max > bounds.max_lon {
                east = HashBits::NONE;
                south_east = HashBits::NONE;
                north_east = HashBits::NONE;
            }
        }
        [hash, north, south, east, west, north_east, north_west, south_east, south_west]
    }
}

/// The distance along a meridian between two latitudes, in meters.
fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// The haversine great-circle distance between two points, in meters.
fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let lon1r = deg_rad(lon1);
    let lon2r = deg_rad(lon2);
    let v = ((lon2r - lon1r) / 2.0).sin();
    // On one meridian the formula reduces to the difference of latitudes.
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let lat1r = deg_rad(lat1);
    let lat2r = deg_rad(lat2);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

// ---------------------------------------------------------------------------
// Replies and arguments
// ---------------------------------------------------------------------------

/// A distance with four decimals, rounded half to even (Valkey's
/// fixed-point formatter, which GEODIST and WITHDIST use).
fn format_distance(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".to_string();
    }
    // llrint: NaN and out-of-range values come out as i64::MIN.
    let fixed = c_double_to_i64((d * 10000.0).round_ties_even());
    let magnitude = fixed.unsigned_abs();
    let sign = if fixed < 0 { "-" } else { "" };
    format!("{sign}{}.{:04}", magnitude / 10000, magnitude % 10000)
}

fn reply_distance(out: &mut Reply, d: f64) {
    out.bulk(format_distance(d).as_bytes());
}

/// A coordinate as Valkey prints a long double for humans: 17 decimals,
/// trailing zeros (and a bare point) dropped, "-0" as "0".
fn format_coordinate(x: f64) -> String {
    let mut text = format!("{x:.17}");
    if text.contains('.') {
        let kept = text.trim_end_matches('0').trim_end_matches('.').len();
        text.truncate(kept);
    }
    if text == "-0" {
        text = "0".to_string();
    }
    text
}

fn reply_coordinates(out: &mut Reply, lon: f64, lat: f64) {
    out.array(2);
    out.double_text(format_coordinate(lon).as_bytes());
    out.double_text(format_coordinate(lat).as_bytes());
}

/// Case-insensitive option match, as strcasecmp on the argument.
fn is(arg: &[u8], word: &str) -> bool {
    c_str(arg).eq_ignore_ascii_case(word.as_bytes())
}

fn parse_double(arg: &[u8], message: &'static str) -> Result<f64, CmdError> {
    double::parse(arg).ok_or(CmdError::from(message))
}

/// A longitude and a latitude within Valkey's limits.
fn parse_position(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), CmdError> {
    let lon = parse_double(lon, errors::NOT_FLOAT)?;
    let lat = parse_double(lat, errors::NOT_FLOAT)?;
    if !(LON_MIN..=LON_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return Err(format!("ERR invalid longitude,latitude pair {lon:.6},{lat:.6}").into());
    }
    Ok((lon, lat))
}

/// The size of a unit in meters.
fn parse_unit(arg: &[u8]) -> Result<f64, CmdError> {
    match c_str(arg).to_ascii_lowercase().as_slice() {
        b"m" => Ok(1.0),
        b"km" => Ok(1000.0),
        b"ft" => Ok(0.3048),
        b"mi" => Ok(1609.34),
        _ => Err("ERR unsupported unit provided. please use M, KM, FT, MI".into()),
    }
}

/// `radius unit`: the radius and the unit's size in meters.
fn parse_radius(radius: &[u8], unit: &[u8]) -> Result<(f64, f64), CmdError> {
    let radius = parse_double(radius, "ERR need numeric radius")?;
    if radius < 0.0 {
        return Err("ERR radius cannot be negative".into());
    }
    Ok((radius, parse_unit(unit)?))
}

/// `width height unit`: the box and the unit's size in meters.
fn parse_box(width: &[u8], height: &[u8], unit: &[u8]) -> Result<(f64, f64, f64), CmdError> {
    let width = parse_double(width, "ERR need numeric width")?;
    let height = parse_double(height, "ERR need numeric height")?;
    if height < 0.0 || width < 0.0 {
        return Err("ERR height or width cannot be negative".into());
    }
    Ok((width, height, parse_unit(unit)?))
}

/// The sorted set a looked-up key holds: None when absent, WRONGTYPE for
/// another type.
fn zset_of(entry: Option<&mut Entry>) -> Result<Option<&ZSet>, CmdError> {
    match entry {
        None => Ok(None),
        Some(Entry { value: Value::ZSet(z), .. }) => Ok(Some(z)),
        Some(_) => Err(errors::WRONG_TYPE.into()),
    }
}

/// A member's position, if it is in the set.
fn member_position(zset: &ZSet, member: &[u8]) -> Option<(f64, f64)> {
    zset.score(member).map(decode_score)
}

// ---------------------------------------------------------------------------
// GEOADD, GEOPOS, GEOHASH, GEODIST
// ---------------------------------------------------------------------------

/// GEOADD key [NX|XX] [CH] lon lat member ...: checks every position, then
/// hands ZADD the scores, as Valkey does (so replies, conditions and
/// encodings are ZADD's).
fn geoadd(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mut first = 2;
    let (mut nx, mut xx) = (false, false);
    while first < args.len() {
        let opt = args[first];
        if is(opt, "nx") {
            nx = true;
        } else if is(opt, "xx") {
            xx = true;
        } else if !is(opt, "ch") {
            break;
        }
        first += 1;
    }
    let triples = &args[first..];
    if !triples.len().is_multiple_of(3) || (nx && xx) {
        return Err(errors::SYNTAX.into());
    }
    let mut zadd_args: Vec<Vec<u8>> = Vec::with_capacity(first + triples.len() / 3 * 2);
    zadd_args.push(b"zadd".to_vec());
    zadd_args.extend(args[1..first].iter().map(|a| a.to_vec()));
    for triple in triples.chunks(3) {
        let (lon, lat) = parse_position(triple[0], triple[1])?;
        zadd_args.push(score_of(lon, lat).to_string().into_bytes());
        zadd_args.push(triple[2].to_vec());
    }
    let zadd_args: Vec<&[u8]> = zadd_args.iter().map(|a| a.as_slice()).collect();
    super::sorted_sets::zadd(ctx, &zadd_args)
}

fn geopos(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let zset = zset_of(entry)?;
    out.array(args.len() - 2);
    for member in &args[2..] {
        match zset.and_then(|z| member_position(z, member)) {
            Some((lon, lat)) => reply_coordinates(out, lon, lat),
            None => out.null_array(),
        }
    }
    Ok(())
}

/// The standard 11-character geohash of a position: the position is
/// re-encoded over ±90° of latitude (scores use ±85.05°), and the 11th
/// character, for which 52 bits have no data, is always '0'.
fn standard_geohash(lon: f64, lat: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let bits = encode(STORED_LON, STANDARD_LAT, lon, lat, STEP_MAX).map_or(0, |h| h.bits);
    let mut text = [ALPHABET[0]; 11];
    for (i, c) in text.iter_mut().take(10).enumerate() {
        let index = (bits >> (52 - (i + 1) * 5)) & 0x1f;
        *c = ALPHABET[index as usize];
    }
    text
}

fn geohash(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let zset = zset_of(entry)?;
    out.array(args.len() - 2);
    for member in &args[2..] {
        match zset.and_then(|z| member_position(z, member)) {
            Some((lon, lat)) => out.bulk(&standard_geohash(lon, lat)),
            None => out.null(),
        }
    }
    Ok(())
}

fn geodist(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let to_meters = match args.len() {
        5 => parse_unit(args[4])?,
        n if n > 5 => return Err(errors::SYNTAX.into()),
        _ => 1.0,
    };
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let Some(zset) = zset_of(entry)? else {
        out.null();
        return Ok(());
    };
    match (member_position(zset, args[2]), member_position(zset, args[3])) {
        (Some((lon1, lat1)), Some((lon2, lat2))) => reply_distance(out, distance(lon1, lat1, lon2, lat2) / to_meters),
        _ => out.null(),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Searches
// ---------------------------------------------------------------------------

/// The search commands, which share one parser with different rules.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SearchCommand {
    Radius,
    RadiusReadOnly,
    RadiusByMember,
    RadiusByMemberReadOnly,
    Search,
    SearchStore,
}

impl SearchCommand {
    fn is_search(self) -> bool {
        matches!(self, SearchCommand::Search | SearchCommand::SearchStore)
    }

    /// Whether the STORE and STOREDIST options (with a key) are accepted.
    fn takes_store_option(self) -> bool {
        matches!(self, SearchCommand::Radius | SearchCommand::RadiusByMember)
    }

    /// The index of the source key.
    fn source(self) -> usize {
        if self == SearchCommand::SearchStore {
            2
        } else {
            1
        }
    }
}

fn geosearch(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    search(ctx, args, SearchCommand::Search)
}

fn geosearchstore(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    search(ctx, args, SearchCommand::SearchStore)
}

fn georadius(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    search(ctx, args, SearchCommand::Radius)
}

fn georadius_ro(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    search(ctx, args, SearchCommand::RadiusReadOnly)
}

fn georadiusbymember(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    search(ctx, args, SearchCommand::RadiusByMember)
}

fn georadiusbymember_ro(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    search(ctx, args, SearchCommand::RadiusByMemberReadOnly)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Order {
    Unsorted,
    Ascending,
    Descending,
}

/// A parsed search. `shape` is None when the source key does not exist
/// (its centre could not be known, and is not needed).
struct Request<'a> {
    shape: Option<Shape>,
    destination: Option<&'a [u8]>,
    store_distances: bool,
    with_dist: bool,
    with_hash: bool,
    with_coord: bool,
    order: Order,
    /// 0: no limit.
    count: u64,
    /// Stop as soon as `count` matches are found, wherever they are.
    any: bool,
}

const DECODE_FAILED: &str = "ERR could not decode requested zset member";

/// Reads a search's arguments in Valkey's order, failing on the first
/// problem, against the source set (None when the key does not exist).
fn parse_search<'a>(args: &[&'a [u8]], command: SearchCommand, zset: Option<&ZSet>) -> Result<Request<'a>, CmdError> {
    let mut center: Option<(f64, f64)> = None;
    let mut extent: Option<(Extent, f64)> = None;
    let mut destination = None;
    let first_option = match command {
        SearchCommand::Radius | SearchCommand::RadiusReadOnly => {
            center = Some(parse_position(args[2], args[3])?);
            let (radius, unit) = parse_radius(args[4], args[5])?;
            extent = Some((Extent::Radius(radius), unit));
            6
        }
        SearchCommand::RadiusByMember | SearchCommand::RadiusByMemberReadOnly => {
            // Without a source key nothing is parsed but the options.
            if let Some(zset) = zset {
                center = Some(member_position(zset, args[2]).ok_or(CmdError::from(DECODE_FAILED))?);
                let (radius, unit) = parse_radius(args[3], args[4])?;
                extent = Some((Extent::Radius(radius), unit));
            }
            5
        }
        SearchCommand::Search => 2,
        SearchCommand::SearchStore => {
            destination = Some(args[1]);
            3
        }
    };
    let mut request = Request {
        shape: None,
        destination,
        store_distances: false,
        with_dist: false,
        with_hash: false,
        with_coord: false,
        order: Order::Unsorted,
        count: 0,
        any: false,
    };
    let (mut from_member, mut from_position, mut by_radius, mut by_box) = (false, false, false, false);
    let options = &args[first_option.min(args.len())..];
    let mut i = 0;
    while i < options.len() {
        let arg = options[i];
        let left = options.len() - i - 1;
        let search = command.is_search();
        if is(arg, "withdist") {
            request.with_dist = true;
        } else if is(arg, "withhash") {
            request.with_hash = true;
        } else if is(arg, "withcoord") {
            request.with_coord = true;
        } else if is(arg, "any") {
            request.any = true;
        } else if is(arg, "asc") {
            request.order = Order::Ascending;
        } else if is(arg, "desc") {
            request.order = Order::Descending;
        } else if is(arg, "count") && left >= 1 {
            let count = parse_i64(options[i + 1]).ok_or(CmdError::from(errors::NOT_INTEGER))?;
            if count <= 0 {
                return Err("ERR COUNT must be > 0".into());
            }
            request.count = count as u64;
            i += 1;
        } else if (is(arg, "store") || is(arg, "storedist")) && left >= 1 && command.takes_store_option() {
            request.destination = Some(options[i + 1]);
            request.store_distances = is(arg, "storedist");
            i += 1;
        } else if is(arg, "storedist") && command == SearchCommand::SearchStore {
            request.store_distances = true;
        } else if is(arg, "frommember") && left >= 1 && search && !from_position {
            if let Some(zset) = zset {
                center = Some(member_position(zset, options[i + 1]).ok_or(CmdError::from(DECODE_FAILED))?);
            }
            from_member = true;
            i += 1;
        } else if is(arg, "fromlonlat") && left >= 2 && search && !from_member {
            center = Some(parse_position(options[i + 1], options[i + 2])?);
            from_position = true;
            i += 2;
        } else if is(arg, "byradius") && left >= 2 && search && !by_box {
            let (radius, unit) = parse_radius(options[i + 1], options[i + 2])?;
            extent = Some((Extent::Radius(radius), unit));
            by_radius = true;
            i += 2;
        } else if is(arg, "bybox") && left >= 3 && search && !by_radius {
            let (width, height, unit) = parse_box(options[i + 1], options[i + 2], options[i + 3])?;
            extent = Some((Extent::Box { width, height }, unit));
            by_box = true;
            i += 3;
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 1;
    }
    if request.destination.is_some() && (request.with_dist || request.with_hash || request.with_coord) {
        let what = if command == SearchCommand::SearchStore { "GEOSEARCHSTORE" } else { "STORE option in GEORADIUS" };
        return Err(format!("ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options").into());
    }
    let name = String::from_utf8_lossy(c_str(args[0]));
    if command.is_search() && !(from_member || from_position) {
        return Err(format!("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}").into());
    }
    if command.is_search() && !(by_radius || by_box) {
        return Err(format!("ERR exactly one of BYRADIUS and BYBOX can be specified for {name}").into());
    }
    if request.any && request.count == 0 {
        return Err("ERR the ANY argument requires COUNT argument".into());
    }
    if let (Some((lon, lat)), Some((extent, to_meters)), Some(_)) = (center, extent, zset) {
        request.shape = Some(Shape { lon, lat, to_meters, extent });
    }
    Ok(request)
}

/// A point a search found.
struct Found {
    member: Vec<u8>,
    lon: f64,
    lat: f64,
    /// In meters until the reply converts it to the request's unit.
    dist: f64,
    score: f64,
}

/// The points of the set within the shape, box after box, each box in
/// score order; stops once `limit` points are found (0: no limit).
fn find_points(zset: &ZSet, shape: &Shape, limit: usize) -> Vec<Found> {
    let boxes = shape.boxes();
    let mut found = Vec::new();
    let reached = |found: &Vec<Found>| limit > 0 && found.len() >= limit;
    // Index of the box searched last; 0 (the centre) never counts as a
    // previous box, as in Valkey, so a neighbour equal to the centre's box
    // is searched again.
    let mut last_searched = 0;
    for (i, cell) in boxes.iter().enumerate() {
        if cell.is_none() {
            continue;
        }
        // Huge radii can make adjacent neighbours the same box.
        if last_searched != 0 && *cell == boxes[last_searched] {
            continue;
        }
        if reached(&found) {
            break;
        }
        points_in_box(zset, *cell, shape, &mut found, limit);
        last_searched = i;
    }
    found
}

/// Appends the points of one geohash box (the scores sharing its prefix)
/// that lie within the shape.
fn points_in_box(zset: &ZSet, cell: HashBits, shape: &Shape, found: &mut Vec<Found>, limit: usize) {
    let min = cell.aligned_52();
    let max = HashBits { bits: cell.bits.wrapping_add(1), step: cell.step }.aligned_52();
    let range = ScoreRange { min: min as f64, max: max as f64, min_exclusive: false, max_exclusive: true };
    let Some(start) = zset.range_start(Range::Score(&range), 0, false) else { return };
    for (member, score) in zset.iter_from(start, false) {
        if !range.below_max(score) {
            break;
        }
        let (lon, lat) = decode_score(score);
        if let Some(dist) = shape.distance_if_within(lon, lat) {
            found.push(Found { member: member.to_vec(), lon, lat, dist, score });
        }
        if limit > 0 && found.len() >= limit {
            break;
        }
    }
}

/// Valkey's comparison of two distances (equal only when ==).
fn by_distance(a: &Found, b: &Found) -> std::cmp::Ordering {
    if a.dist > b.dist {
        std::cmp::Ordering::Greater
    } else if a.dist == b.dist {
        std::cmp::Ordering::Equal
    } else {
        std::cmp::Ordering::Less
    }
}

fn search(ctx: &mut Ctx, args: &[&[u8]], command: SearchCommand) -> CmdResult {
    let (entry, out) = ctx.lookup(args[command.source()], Lookup::Read);
    let zset = zset_of(entry)?;
    let mut request = parse_search(args, command, zset)?;
    let (Some(zset), Some(shape)) = (zset, request.shape) else {
        // No source set: nothing found.
        match request.destination {
            Some(destination) => {
                out.int(0);
                delete_destination(ctx, destination);
            }
            None => out.array(0),
        }
        return Ok(());
    };
    // A count asks for the nearest points, unless any will do.
    if request.count != 0 && request.order == Order::Unsorted && !request.any {
        request.order = Order::Ascending;
    }
    let limit = if request.any { usize::try_from(request.count).unwrap_or(usize::MAX) } else { 0 };
    let mut found = find_points(zset, &shape, limit);
    if found.is_empty() && request.destination.is_none() {
        out.array(0);
        return Ok(());
    }
    let total = found.len();
    let returned = match usize::try_from(request.count) {
        Ok(count) if count != 0 && count < total => count,
        _ => total,
    };
    if request.order != Order::Unsorted {
        let descending = request.order == Order::Descending;
        let compare = |a: &Found, b: &Found| {
            let order = by_distance(a, b);
            if descending {
                order.reverse()
            } else {
                order
            }
        };
        if returned == total {
            stable_sort_by(&mut found, compare);
        } else {
            partial_sort_by(&mut found, compare, 0, returned - 1);
        }
    }
    found.truncate(returned);
    for point in &mut found {
        point.dist /= shape.to_meters;
    }
    match request.destination {
        None => reply_points(out, &found, &request),
        Some(destination) => {
            let elements: Vec<(Vec<u8>, f64)> = found
                .into_iter()
                .map(|p| {
                    let score = if request.store_distances { p.dist } else { p.score };
                    (p.member, score)
                })
                .collect();
            let event = if command.is_search() { "geosearchstore" } else { "georadiusstore" };
            store_points(ctx, destination, elements, event);
        }
    }
    Ok(())
}

fn reply_points(out: &mut Reply, found: &[Found], request: &Request) {
    let extras = [request.with_dist, request.with_hash, request.with_coord].iter().filter(|&&on| on).count();
    out.array(found.len());
    for point in found {
        if extras > 0 {
            out.array(extras + 1);
        }
        out.bulk(&point.member);
        if request.with_dist {
            reply_distance(out, point.dist);
        }
        if request.with_hash {
            out.int(c_double_to_i64(point.score));
        }
        if request.with_coord {
            reply_coordinates(out, point.lon, point.lat);
        }
    }
}

/// Deletes the destination of a search that found nothing.
fn delete_destination(ctx: &mut Ctx, destination: &[u8]) {
    if ctx.db().remove(destination).is_some() {
        ctx.dirty(1);
        notify(ctx, notify::GENERIC, "del", destination);
    }
}

/// Stores what a search found as a sorted set, announced as `event`
/// (deleting the destination when nothing was found), and answers how many
/// points there were.
fn store_points(ctx: &mut Ctx, destination: &[u8], mut elements: Vec<(Vec<u8>, f64)>, event: &str) {
    let count = elements.len();
    if count == 0 {
        ctx.out.int(0);
        delete_destination(ctx, destination);
        return;
    }
    elements.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    // A member is found once unless the boxes overlap; keep one of each.
    elements.dedup_by(|a, b| a.0 == b.0);
    let zset = ZSet::from_sorted(elements, Limits::from_config(&ctx.srv.config));
    let lru = ctx.lru_now();
    let existed = ctx.lookup(destination, Lookup::Write).0.is_some();
    ctx.db().set(destination, Value::ZSet(zset), lru);
    ctx.out.int(count as i64);
    ctx.dirty(count as u64);
    if !existed {
        notify::new_key(ctx, destination);
    }
    notify(ctx, notify::ZSET, event, destination);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_and_positions_match_valkey() {
        // Values read from Valkey 8.0.1 (ZSCORE, GEOPOS, GEOHASH).
        assert_eq!(score_of(13.361389, 38.115556), 3479099956230698);
        assert_eq!(score_of(15.087269, 37.502669), 3479447370796909);
        let (lon, lat) = decode_score(3479099956230698.0);
        assert_eq!(format_coordinate(lon), "13.36138933897018433");
        assert_eq!(format_coordinate(lat), "38.11555639549629859");
        assert_eq!(&standard_geohash(lon, lat), b"sqc8b49rny0");
    }

    #[test]
    fn distances_print_like_valkey() {
        let (lon1, lat1) = decode_score(3479099956230698.0);
        let (lon2, lat2) = decode_score(3479447370796909.0);
        assert_eq!(format_distance(distance(lon1, lat1, lon2, lat2) / 1000.0), "166.2742");
        assert_eq!(format_distance(0.0), "0.0000");
        assert_eq!(format_distance(0.00005), "0.0000");
        assert_eq!(format_distance(1.23456), "1.2346");
        assert_eq!(format_distance(f64::NAN), "-922337203685477.5808");
    }

    #[test]
    fn interleaving_round_trips() {
        for (lat, lon) in [(0u32, 0u32), (1, 0), (0, 1), (0x3ff_ffff, 0x155_5555), (u32::MAX, 7)] {
            assert_eq!(deinterleave(interleave(lat, lon)), (lat, lon));
        }
    }

    #[test]
    fn neighbours_wrap_around() {
        let corner = HashBits { bits: 0, step: 2 };
        // West of the first column is the last one; south of the first row, the last.
        let west = neighbor(corner, -1, 0);
        assert_eq!(deinterleave(west.bits), (0, 3));
        let south = neighbor(corner, 0, -1);
        assert_eq!(deinterleave(south.bits), (3, 0));
        assert_eq!(neighbor(west, 1, 0), corner);
    }

    #[test]
    fn c_conversions() {
        assert_eq!(c_double_to_u64(-1.0), u64::MAX);
        assert_eq!(c_double_to_u64(f64::NAN), 1 << 63);
        assert_eq!(c_double_to_u64(f64::INFINITY), 0);
        assert_eq!(c_double_to_i64(1e300), i64::MIN);
    }
}
