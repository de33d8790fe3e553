//! Numbers of the RDB format: opcodes, object types, length and string
//! encodings.

/// Highest RDB version Valkey 8 writes and loads.
pub const RDB_VERSION_VALKEY8: u32 = 11;
/// Highest version this reader accepts (Redis 7.4's RDB 12 is read as far as
/// its object types are ones Valkey knows).
pub const RDB_VERSION_MAX: u32 = 12;

/// Opcodes: bytes that, where an object type is expected, introduce
/// something other than a key.
pub mod opcode {
    /// Redis 7.4 cluster mode: slot id, keys, keys with expire (three lengths).
    pub const SLOT_INFO: u8 = 244;
    /// A function library (its source as one string).
    pub const FUNCTION2: u8 = 245;
    /// Functions in the format of Redis 7.0 release candidates (refused).
    pub const FUNCTION_PRE_GA: u8 = 246;
    /// Module auxiliary data.
    pub const MODULE_AUX: u8 = 247;
    /// LRU idle time of the next key, in seconds (a length).
    pub const IDLE: u8 = 248;
    /// LFU counter of the next key (one byte).
    pub const FREQ: u8 = 249;
    /// Aux field: two strings.
    pub const AUX: u8 = 250;
    /// Hash table size hints: two lengths.
    pub const RESIZEDB: u8 = 251;
    /// Expire time of the next key, 8 bytes little-endian milliseconds.
    pub const EXPIRETIME_MS: u8 = 252;
    /// Expire time of the next key, 4 bytes little-endian seconds.
    pub const EXPIRETIME: u8 = 253;
    /// Database number of the following keys (a length).
    pub const SELECTDB: u8 = 254;
    /// End of the data; an 8-byte CRC-64 follows from version 5 on.
    pub const EOF: u8 = 255;
}

/// Object types (the byte before each key).
pub mod rdb_type {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE_PRE_GA: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
    pub const STREAM_LISTPACKS_3: u8 = 21;
    /// Redis 7.4 release candidates (hash-field expiry).
    pub const HASH_METADATA_PRE_GA: u8 = 22;
    pub const HASH_LISTPACK_EX_PRE_GA: u8 = 23;
    /// Redis 7.4 (RDB 12): hashtable hash with field TTLs.
    pub const HASH_METADATA: u8 = 24;
    /// Redis 7.4 (RDB 12): listpack hash with field TTLs.
    pub const HASH_LISTPACK_EX: u8 = 25;
}

/// Quicklist node containers (RDB type LIST_QUICKLIST_2).
pub const QUICKLIST_NODE_PLAIN: u64 = 1;
pub const QUICKLIST_NODE_PACKED: u64 = 2;

/// Special string encodings (a length byte with top bits 11).
pub const ENC_INT8: u8 = 0;
pub const ENC_INT16: u8 = 1;
pub const ENC_INT32: u8 = 2;
pub const ENC_LZF: u8 = 3;

/// The name of an object type as in Valkey's rdb.h (without `RDB_TYPE_`),
/// plus Redis 7.4's hash-field-expiry types.
pub fn rdb_type_name(t: u8) -> Option<&'static str> {
    Some(match t {
        0 => "STRING",
        1 => "LIST",
        2 => "SET",
        3 => "ZSET",
        4 => "HASH",
        5 => "ZSET_2",
        6 => "MODULE_PRE_GA",
        7 => "MODULE_2",
        9 => "HASH_ZIPMAP",
        10 => "LIST_ZIPLIST",
        11 => "SET_INTSET",
        12 => "ZSET_ZIPLIST",
        13 => "HASH_ZIPLIST",
        14 => "LIST_QUICKLIST",
        15 => "STREAM_LISTPACKS",
        16 => "HASH_LISTPACK",
        17 => "ZSET_LISTPACK",
        18 => "LIST_QUICKLIST_2",
        19 => "STREAM_LISTPACKS_2",
        20 => "SET_LISTPACK",
        21 => "STREAM_LISTPACKS_3",
        22 => "HASH_METADATA_PRE_GA",
        23 => "HASH_LISTPACK_EX_PRE_GA",
        24 => "HASH_METADATA",
        25 => "HASH_LISTPACK_EX",
        _ => return None,
    })
}

/// The object types this reader decodes (the ones Valkey 8 loads, modules
/// excepted).
pub fn is_supported_type(t: u8) -> bool {
    matches!(t, 0..=5 | 9..=21)
}
