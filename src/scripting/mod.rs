//! Lua scripting: EVAL and functions, on an embedded Lua 5.1 as Valkey has.
//!
//! [`engine`] builds the sandboxed Lua state and runs a script or function
//! in it; [`convert`] turns replies into Lua values and back; [`libs`] are
//! the C libraries Valkey preloads (cjson, cmsgpack, struct, bit). The
//! EVAL family and its script cache live in `commands/scripting.rs`;
//! [`functions`] holds the function libraries FUNCTION LOAD adds.

pub mod convert;
pub mod engine;
pub mod functions;
pub mod libs;
