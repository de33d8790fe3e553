//! Pub/sub: the registry of channel, pattern and shard channel
//! subscriptions, and message delivery.
//!
//! Every subscription is kept twice: by name (who receives a message
//! published there) and by client (what a client leaves on UNSUBSCRIBE
//! without arguments, RESET or disconnect). A client's counts are mirrored
//! in its [`ClientInfo`], where CLIENT LIST and the dispatcher read them.
//! Messages go out through [`ClientInfo::push_output`], encoded for the
//! protocol each subscriber speaks.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use indexmap::IndexMap;

use crate::client::{Client, ClientInfo};
use crate::reply::Reply;
use crate::server::ServerState;

/// The three subscription spaces. Shard channels are separate from plain
/// channels: SPUBLISH reaches only SSUBSCRIBE, and patterns never match them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    /// The first element of a subscription confirmation.
    pub fn subscribe_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"subscribe",
            Kind::Pattern => b"psubscribe",
            Kind::Shard => b"ssubscribe",
        }
    }

    /// The first element of an unsubscription confirmation.
    pub fn unsubscribe_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"unsubscribe",
            Kind::Pattern => b"punsubscribe",
            Kind::Shard => b"sunsubscribe",
        }
    }
}

/// The clients subscribed to one name, by id (stable delivery order).
type Subscribers = BTreeMap<u64, Rc<ClientInfo>>;

/// What one client is subscribed to: each name with the number of its
/// subscription, so that leaving one name costs the same however many the
/// client has (a Celery client listens on one channel per task it awaits,
/// tens of thousands of them), while leaving everything still goes in
/// subscription order.
#[derive(Default)]
struct ClientSubscriptions {
    channels: HashMap<Box<[u8]>, u64>,
    patterns: HashMap<Box<[u8]>, u64>,
    shard_channels: HashMap<Box<[u8]>, u64>,
    subscriptions_made: u64,
}

impl ClientSubscriptions {
    fn of(&mut self, kind: Kind) -> &mut HashMap<Box<[u8]>, u64> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard_channels,
        }
    }

    /// Adds `name`; false when it was there already.
    fn insert(&mut self, kind: Kind, name: &[u8]) -> bool {
        let number = self.subscriptions_made;
        match self.of(kind).entry(name.into()) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(number);
                self.subscriptions_made += 1;
                true
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.is_empty() && self.shard_channels.is_empty()
    }
}

/// Every subscription of every client.
#[derive(Default)]
pub struct PubSub {
    channels: HashMap<Box<[u8]>, Subscribers>,
    /// Kept in the order patterns first appeared: a message matching
    /// several patterns is delivered once per pattern, in this order.
    patterns: IndexMap<Box<[u8]>, Subscribers>,
    shard_channels: HashMap<Box<[u8]>, Subscribers>,
    by_client: HashMap<u64, ClientSubscriptions>,
}

impl PubSub {
    /// Channels with at least one subscriber (INFO pubsub_channels).
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Patterns with at least one subscriber (INFO pubsub_patterns, PUBSUB NUMPAT).
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// Shard channels with at least one subscriber (INFO pubsubshard_channels).
    pub fn shard_channel_count(&self) -> usize {
        self.shard_channels.len()
    }

    /// Clients subscribed to anything (INFO pubsub_clients).
    pub fn client_count(&self) -> usize {
        self.by_client.len()
    }

    /// The channels (or shard channels) with subscribers, those matching
    /// `pattern` when one is given (PUBSUB CHANNELS / SHARDCHANNELS).
    pub fn active_channels(&self, shard: bool, pattern: Option<&[u8]>) -> Vec<&[u8]> {
        self.channel_map(shard)
            .keys()
            .map(|name| &name[..])
            .filter(|name| pattern.is_none_or(|p| crate::glob::glob_match(p, name, false)))
            .collect()
    }

    /// How many clients are subscribed to the channel (or shard channel)
    /// `name` itself, patterns aside (PUBSUB NUMSUB / SHARDNUMSUB).
    pub fn subscriber_count(&self, shard: bool, name: &[u8]) -> usize {
        self.channel_map(shard).get(name).map_or(0, BTreeMap::len)
    }

    fn channel_map(&self, shard: bool) -> &HashMap<Box<[u8]>, Subscribers> {
        if shard {
            &self.shard_channels
        } else {
            &self.channels
        }
    }

    /// Subscribes a client; false when it already was.
    fn subscribe(&mut self, info: &Rc<ClientInfo>, kind: Kind, name: &[u8]) -> bool {
        let mine = self.by_client.entry(info.id).or_default();
        if !mine.insert(kind, name) {
            return false;
        }
        let subscribers = match kind {
            Kind::Channel => self.channels.entry(name.into()).or_default(),
            Kind::Pattern => self.patterns.entry(name.into()).or_default(),
            Kind::Shard => self.shard_channels.entry(name.into()).or_default(),
        };
        subscribers.insert(info.id, info.clone());
        adjust_count(info, kind, 1);
        true
    }

    /// Unsubscribes a client; false when it was not subscribed.
    fn unsubscribe(&mut self, info: &ClientInfo, kind: Kind, name: &[u8]) -> bool {
        let Some(mine) = self.by_client.get_mut(&info.id) else { return false };
        if mine.of(kind).remove(name).is_none() {
            return false;
        }
        if mine.is_empty() {
            self.by_client.remove(&info.id);
        }
        // A name nobody listens to any more is forgotten, so that the
        // registry holds only live channels.
        match kind {
            Kind::Channel => remove_subscriber(&mut self.channels, name, info.id),
            Kind::Shard => remove_subscriber(&mut self.shard_channels, name, info.id),
            Kind::Pattern => {
                if let Some(subscribers) = self.patterns.get_mut(name) {
                    subscribers.remove(&info.id);
                    if subscribers.is_empty() {
                        self.patterns.shift_remove(name);
                    }
                }
            }
        }
        adjust_count(info, kind, -1);
        true
    }

    /// A client's subscriptions of `kind`, in the order it made them.
    fn subscriptions_of(&self, id: u64, kind: Kind) -> Vec<Box<[u8]>> {
        let Some(mine) = self.by_client.get(&id) else { return Vec::new() };
        let names = match kind {
            Kind::Channel => &mine.channels,
            Kind::Pattern => &mine.patterns,
            Kind::Shard => &mine.shard_channels,
        };
        let mut numbered: Vec<(u64, &Box<[u8]>)> = names.iter().map(|(name, &number)| (number, name)).collect();
        numbered.sort_unstable_by_key(|&(number, _)| number);
        numbered.into_iter().map(|(_, name)| name.clone()).collect()
    }
}

fn remove_subscriber(map: &mut HashMap<Box<[u8]>, Subscribers>, name: &[u8], id: u64) {
    if let Some(subscribers) = map.get_mut(name) {
        subscribers.remove(&id);
        if subscribers.is_empty() {
            map.remove(name);
        }
    }
}

fn adjust_count(info: &ClientInfo, kind: Kind, delta: isize) {
    let cell = match kind {
        Kind::Channel => &info.subscribed_channels,
        Kind::Pattern => &info.subscribed_patterns,
        Kind::Shard => &info.subscribed_shard_channels,
    };
    cell.set(cell.get().saturating_add_signed(delta));
}

/// The count a confirmation reports: channels and patterns together, shard
/// channels on their own (as Valkey counts them).
fn confirmation_count(info: &ClientInfo, kind: Kind) -> usize {
    match kind {
        Kind::Channel | Kind::Pattern => info.subscribed_channels.get() + info.subscribed_patterns.get(),
        Kind::Shard => info.subscribed_shard_channels.get(),
    }
}

/// SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE of one name, answering the client's
/// confirmation (a push in RESP3) with its new count, even when it was
/// already subscribed.
pub fn subscribe(st: &mut ServerState, client: &Client, out: &mut Reply, kind: Kind, name: &[u8]) {
    st.pubsub.subscribe(&client.info, kind, name);
    out.push(3);
    out.bulk(kind.subscribe_word());
    out.bulk(name);
    out.int(confirmation_count(&client.info, kind) as i64);
}

/// UNSUBSCRIBE / PUNSUBSCRIBE / SUNSUBSCRIBE of the given names, or of
/// everything of `kind` when `names` is empty. Every name left gets its
/// confirmation; leaving nothing at all is still confirmed, with a null
/// name.
pub fn unsubscribe(st: &mut ServerState, client: &Client, out: &mut Reply, kind: Kind, names: &[&[u8]]) {
    let confirm = |out: &mut Reply, name: Option<&[u8]>| {
        out.push(3);
        out.bulk(kind.unsubscribe_word());
        match name {
            Some(name) => out.bulk(name),
            None => out.null(),
        }
        out.int(confirmation_count(&client.info, kind) as i64);
    };
    if !names.is_empty() {
        for &name in names {
            st.pubsub.unsubscribe(&client.info, kind, name);
            confirm(out, Some(name));
        }
        return;
    }
    let all = st.pubsub.subscriptions_of(client.info.id, kind);
    if all.is_empty() {
        confirm(out, None);
    }
    for name in all {
        st.pubsub.unsubscribe(&client.info, kind, &name);
        confirm(out, Some(&name));
    }
}

/// Drops every subscription of a client that disconnected.
pub fn forget_client(st: &mut ServerState, info: &ClientInfo) {
    leave_everything(st, info);
}

/// Leaves every channel, pattern and shard channel without replying (RESET).
pub fn unsubscribe_all(st: &mut ServerState, client: &mut Client) {
    leave_everything(st, &client.info);
}

fn leave_everything(st: &mut ServerState, info: &ClientInfo) {
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        for name in st.pubsub.subscriptions_of(info.id, kind) {
            st.pubsub.unsubscribe(info, kind, &name);
        }
    }
}

/// Sends `message` to the subscribers of `channel` (and of the patterns
/// matching it); returns how many clients received it, a client counted
/// once per subscription that matched.
pub fn publish(st: &mut ServerState, channel: &[u8], message: &[u8]) -> usize {
    let mut frames = Frames::default();
    let mut receivers = 0;
    if let Some(subscribers) = st.pubsub.channels.get(channel) {
        for info in subscribers.values() {
            info.push_output(frames.get(info, |out| {
                out.push(3);
                out.bulk(b"message");
                out.bulk(channel);
                out.bulk(message);
            }));
            receivers += 1;
        }
    }
    for (pattern, subscribers) in &st.pubsub.patterns {
        if !crate::glob::glob_match(pattern, channel, false) {
            continue;
        }
        // Each pattern has its own frame (it names the pattern).
        let mut frames = Frames::default();
        for info in subscribers.values() {
            info.push_output(frames.get(info, |out| {
                out.push(4);
                out.bulk(b"pmessage");
                out.bulk(pattern);
                out.bulk(channel);
                out.bulk(message);
            }));
            receivers += 1;
        }
    }
    receivers
}

/// SPUBLISH: sends `message` to the subscribers of shard channel `channel`.
pub fn publish_shard(st: &mut ServerState, channel: &[u8], message: &[u8]) -> usize {
    let Some(subscribers) = st.pubsub.shard_channels.get(channel) else { return 0 };
    let mut frames = Frames::default();
    for info in subscribers.values() {
        info.push_output(frames.get(info, |out| {
            out.push(3);
            out.bulk(b"smessage");
            out.bulk(channel);
            out.bulk(message);
        }));
    }
    subscribers.len()
}

/// One message encoded at most once per protocol, as subscribers need it.
#[derive(Default)]
struct Frames {
    resp2: Option<Vec<u8>>,
    resp3: Option<Vec<u8>>,
}

impl Frames {
    fn get(&mut self, info: &ClientInfo, encode: impl FnOnce(&mut Reply)) -> &[u8] {
        let resp3 = info.resp.get() == 3;
        let slot = if resp3 { &mut self.resp3 } else { &mut self.resp2 };
        slot.get_or_insert_with(|| {
            let mut out = Reply { buf: Vec::new(), resp3, errors: 0 };
            encode(&mut out);
            out.buf
        })
    }
}
