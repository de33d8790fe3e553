//! Lua scripting: EVAL and functions, on an embedded Lua 5.1 as Valkey has.

pub mod libs;
