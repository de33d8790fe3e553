//! Pub/sub: channel and pattern subscriptions and message delivery.
//! (Being written: see the pub/sub task.)

use crate::client::ClientInfo;
use crate::server::ServerState;

/// Every subscription of every client.
#[derive(Default)]
pub struct PubSub {}

/// Drops every subscription of a client that disconnected.
pub fn forget_client(_st: &mut ServerState, _info: &ClientInfo) {}

/// Sends `message` to the subscribers of `channel` (and of the patterns
/// matching it); returns how many clients received it.
pub fn publish(_st: &mut ServerState, _channel: &[u8], _message: &[u8]) -> usize {
    0
}

/// Leaves every channel, pattern and shard channel without replying (RESET).
pub fn unsubscribe_all(_st: &mut ServerState, _client: &mut crate::client::Client) {}
