//! ferrokey's formats: everything about bytes on the wire and on disk.
//!
//! This crate has no async runtime and no server types, so the check tools,
//! fuzz targets and benchmarks can use it alone.

pub mod aof;
pub mod crc64;
pub mod double;
pub mod listpack;
pub mod lzf;
pub mod rdb;
pub mod repr;
pub mod resp;
