//! The Lua libraries Valkey scripts see (placeholder until the libraries land).

pub fn register_all(_lua: &mlua::Lua) -> mlua::Result<()> {
    Ok(())
}
