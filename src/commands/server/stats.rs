//! Statistics that INFO, LATENCY and CONFIG RESETSTAT report but that no
//! other part of the server keeps: per-command calls and times
//! (commandstats), error replies by code (errorstats), per-command latency
//! percentiles (latencystats), latency spikes (the latency monitor) and the
//! "instantaneous" rates.
//!
//! Commands only ever run on the engine thread, so this state lives in a
//! thread-local there rather than in `ServerState`; connection dispatch
//! feeds it through [`record_call`], [`record_rejected`] and
//! [`record_error_reply`].

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use crate::server::{unix_ms, ServerState};

thread_local! {
    static STATS: RefCell<Collector> = RefCell::new(Collector::default());
}

/// Runs `f` with the engine thread's statistics.
pub(super) fn with<R>(f: impl FnOnce(&mut Collector) -> R) -> R {
    STATS.with(|s| f(&mut s.borrow_mut()))
}

/// Records one executed command: its full name ("get", "config|set"), how
/// long it ran, and whether it replied with an error. `fast` is the
/// command's `fast` flag (the latency monitor files such commands under
/// "fast-command").
pub fn record_call(st: &ServerState, name: &'static str, fast: bool, micros: u64, failed: bool) {
    with(|c| {
        c.settings.load_once(st);
        let calls = c.commands.entry(name).or_default();
        calls.calls += 1;
        calls.micros += micros;
        if failed {
            calls.failed += 1;
        }
        if c.settings.latency_tracking {
            calls.histogram.get_or_insert_with(Histogram::default).record(micros.saturating_mul(1000));
        }
        let threshold = c.settings.latency_monitor_threshold_ms;
        if threshold > 0 && micros / 1000 >= threshold as u64 {
            let event = if fast { "fast-command" } else { "command" };
            c.latency.add_sample(event, (micros / 1000) as i64, unix_ms() / 1000);
        }
    })
}

/// Updates the instantaneous rates; the server cron calls it, so the hot
/// path of every command does not read the clock for it.
pub fn sample_rates(st: &ServerState) {
    with(|c| c.rates.sample(st))
}

/// Records a command refused before it ran (wrong arity, no auth, ...).
pub fn record_rejected(name: &'static str) {
    with(|c| c.commands.entry(name).or_default().rejected += 1)
}

/// Records an error reply under its code, the first word of the message
/// ("ERR", "WRONGTYPE", ...), as INFO errorstats lists them. A message
/// whose first 32 bytes hold no space is counted as "ERR".
pub fn record_error_reply(message: &str) {
    let bytes = message.as_bytes();
    let window = &bytes[..bytes.len().min(31)];
    let code = match window.iter().position(|&b| b == b' ') {
        Some(end) => &message[..end],
        None => "ERR",
    };
    with(|c| *c.errors.entry(code.to_string()).or_default() += 1)
}

#[derive(Default)]
pub(super) struct Collector {
    /// Keyed by the command table's own names, so counting allocates nothing.
    pub commands: HashMap<&'static str, CommandCalls, foldhash::fast::RandomState>,
    /// Error counts by code, in byte order (as Valkey's radix tree lists them).
    pub errors: BTreeMap<String, u64>,
    pub latency: LatencyMonitor,
    pub rates: Rates,
    pub settings: Settings,
}

impl Collector {
    /// CONFIG RESETSTAT: forgets calls, errors and rates. Latency spikes
    /// stay, as in Valkey (only LATENCY RESET clears them).
    pub fn reset(&mut self) {
        self.commands.clear();
        self.errors.clear();
        self.rates = Rates::default();
    }
}

#[derive(Default)]
pub(super) struct CommandCalls {
    pub calls: u64,
    pub micros: u64,
    pub failed: u64,
    pub rejected: u64,
    pub histogram: Option<Histogram>,
}

/// The configuration the hot path needs, cached so that recording a call
/// never formats a config value. Loaded on first use and refreshed by
/// CONFIG SET.
#[derive(Default)]
pub(super) struct Settings {
    loaded: bool,
    pub latency_tracking: bool,
    pub latency_monitor_threshold_ms: i64,
    pub percentiles: Vec<f64>,
}

impl Settings {
    fn load_once(&mut self, st: &ServerState) {
        if !self.loaded {
            self.reload(st);
        }
    }

    pub fn reload(&mut self, st: &ServerState) {
        let got =
            st.config.get(&[b"latency-tracking", b"latency-monitor-threshold", b"latency-tracking-info-percentiles"]);
        let value = |name: &str| got.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or("");
        self.latency_tracking = value("latency-tracking") == "yes";
        self.latency_monitor_threshold_ms = value("latency-monitor-threshold").parse().unwrap_or(0);
        self.percentiles =
            value("latency-tracking-info-percentiles").split_whitespace().filter_map(|p| p.parse().ok()).collect();
        self.loaded = true;
    }

    pub fn ensure_loaded(&mut self, st: &ServerState) {
        self.load_once(st);
    }
}

// ---------------------------------------------------------------------------
// Latency histograms
// ---------------------------------------------------------------------------

/// A latency histogram with the bucketing of an HDR histogram keeping two
/// significant digits over 1 ns ..= 1 s, the layout Valkey reports
/// percentiles from, so the reported values fall on the same bucket edges.
/// Counts are kept sparsely: most commands touch a handful of buckets.
#[derive(Default)]
pub(super) struct Histogram {
    counts: BTreeMap<u32, u64>,
    total: u64,
}

/// Two significant digits need 256 sub-buckets (the next power of two
/// above 2 * 10^2); each bucket's lower half repeats the previous one.
const SUB_BUCKET_HALF_MAGNITUDE: u32 = 7;
const SUB_BUCKET_HALF_COUNT: u64 = 1 << SUB_BUCKET_HALF_MAGNITUDE;
const SUB_BUCKET_MASK: u64 = (SUB_BUCKET_HALF_COUNT << 1) - 1;
const HISTOGRAM_MIN_NS: u64 = 1;
const HISTOGRAM_MAX_NS: u64 = 1_000_000_000;
/// Buckets of doubling width cover 1 s in 23 steps past the first, each
/// adding half a bucket's worth of counts.
const COUNTS_LEN: u32 = 24 << SUB_BUCKET_HALF_MAGNITUDE;

impl Histogram {
    pub fn record(&mut self, nanos: u64) {
        let v = nanos.clamp(HISTOGRAM_MIN_NS, HISTOGRAM_MAX_NS);
        *self.counts.entry(counts_index(v)).or_default() += 1;
        self.total += 1;
    }

    /// The value at `percentile` (0..=100), as the highest value of the
    /// bucket that holds it.
    pub fn value_at_percentile(&self, percentile: f64) -> u64 {
        let wanted = (((percentile.min(100.0) / 100.0) * self.total as f64) + 0.5) as u64;
        let wanted = wanted.max(1);
        let mut seen = 0;
        for (&index, &count) in &self.counts {
            seen += count;
            if seen >= wanted {
                let value = value_at_index(index);
                return if percentile == 0.0 { value } else { highest_equivalent(value) };
            }
        }
        0
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// The cumulative distribution LATENCY HISTOGRAM reports: at 1 µs, 2 µs,
    /// 4 µs, ... (the upper edge of the bucket holding each power of two
    /// nanoseconds from 1024), the number of calls up to there; levels that
    /// add no calls are left out.
    pub fn cumulative_by_powers_of_two(&self) -> Vec<(u64, u64)> {
        // Past the histogram's last bucket, that bucket stands for the rest.
        let last_index = COUNTS_LEN - 1;
        let mut points = Vec::new();
        let mut previous = 0;
        let mut level: u64 = 1024;
        loop {
            let index = counts_index(level);
            let (edge, cumulative, past_end) = if index <= last_index {
                (highest_equivalent(level), self.counts.range(..=index).map(|(_, c)| c).sum(), false)
            } else {
                (highest_equivalent(value_at_index(last_index)), self.total, true)
            };
            if cumulative > previous {
                points.push((edge / 1000, cumulative));
            }
            previous = cumulative;
            if past_end || cumulative >= self.total {
                return points;
            }
            level *= 2;
        }
    }
}

fn bucket_of(v: u64) -> (u32, u64) {
    let pow2_ceiling = 64 - (v | SUB_BUCKET_MASK).leading_zeros();
    let bucket = pow2_ceiling - (SUB_BUCKET_HALF_MAGNITUDE + 1);
    (bucket, v >> bucket)
}

fn counts_index(v: u64) -> u32 {
    let (bucket, sub) = bucket_of(v);
    // The first bucket uses its lower half too, so its offsets start at 0.
    (((bucket + 1) << SUB_BUCKET_HALF_MAGNITUDE) as u64 + sub - SUB_BUCKET_HALF_COUNT) as u32
}

fn value_at_index(index: u32) -> u64 {
    let mut bucket = (index >> SUB_BUCKET_HALF_MAGNITUDE) as i64 - 1;
    let mut sub = (index as u64 & (SUB_BUCKET_HALF_COUNT - 1)) + SUB_BUCKET_HALF_COUNT;
    if bucket < 0 {
        sub -= SUB_BUCKET_HALF_COUNT;
        bucket = 0;
    }
    sub << bucket
}

fn highest_equivalent(v: u64) -> u64 {
    let (bucket, sub) = bucket_of(v);
    let lowest = sub << bucket;
    let adjusted = if sub >= SUB_BUCKET_HALF_COUNT << 1 { bucket + 1 } else { bucket };
    lowest + (1u64 << adjusted) - 1
}

// ---------------------------------------------------------------------------
// Latency monitor
// ---------------------------------------------------------------------------

/// How many one-per-second samples each latency event keeps.
const LATENCY_HISTORY_LEN: usize = 160;

#[derive(Default)]
pub(super) struct LatencyMonitor {
    /// Events in the order they were first seen.
    pub events: Vec<(String, LatencySeries)>,
}

#[derive(Default)]
pub(super) struct LatencySeries {
    /// (unix seconds, milliseconds), oldest first, at most one per second.
    pub samples: VecDeque<(i64, i64)>,
    pub max: i64,
}

impl LatencyMonitor {
    pub fn add_sample(&mut self, event: &str, millis: i64, now_s: i64) {
        let series = match self.events.iter().position(|(e, _)| e == event) {
            Some(i) => &mut self.events[i].1,
            None => {
                self.events.push((event.to_string(), LatencySeries::default()));
                &mut self.events.last_mut().expect("just pushed").1
            }
        };
        series.max = series.max.max(millis);
        // Within one second only the worst latency is kept.
        if let Some(last) = series.samples.back_mut() {
            if last.0 == now_s {
                last.1 = last.1.max(millis);
                return;
            }
        }
        if series.samples.len() == LATENCY_HISTORY_LEN {
            series.samples.pop_front();
        }
        series.samples.push_back((now_s, millis));
    }

    pub fn get(&self, event: &[u8]) -> Option<(&str, &LatencySeries)> {
        self.events.iter().find(|(e, _)| e.as_bytes() == event).map(|(e, s)| (e.as_str(), s))
    }

    /// Drops one event's history (case-insensitively), or all of them;
    /// returns how many were dropped.
    pub fn reset(&mut self, event: Option<&[u8]>) -> usize {
        let before = self.events.len();
        match event {
            None => self.events.clear(),
            Some(name) => self.events.retain(|(e, _)| !e.as_bytes().eq_ignore_ascii_case(name)),
        }
        before - self.events.len()
    }
}

// ---------------------------------------------------------------------------
// Instantaneous rates
// ---------------------------------------------------------------------------

/// Rates are averaged over this many samples taken every 100 ms, so they
/// describe about the last 1.6 seconds.
const RATE_SAMPLES: usize = 16;
const RATE_PERIOD_MS: u128 = 100;

#[derive(Default)]
pub(super) struct Rates {
    last: Option<(Instant, Totals)>,
    /// Per-period rates, per second: (ops, input bytes, output bytes).
    samples: VecDeque<(f64, f64, f64)>,
}

#[derive(Clone, Copy)]
struct Totals {
    commands: u64,
    input: u64,
    output: u64,
}

impl Rates {
    /// Takes samples when at least one period has passed. A long quiet gap
    /// fills every period it covers with the same average rate, so rates
    /// fall to zero after idling as they do in Valkey's cron sampling.
    pub fn sample(&mut self, st: &ServerState) {
        let now = Instant::now();
        let totals = Totals {
            commands: st.stats.total_commands_processed,
            input: st.stats.total_net_input_bytes,
            output: st.stats.total_net_output_bytes,
        };
        let Some((then, before)) = self.last else {
            self.last = Some((now, totals));
            return;
        };
        let elapsed_ms = now.duration_since(then).as_millis();
        if elapsed_ms < RATE_PERIOD_MS {
            return;
        }
        let secs = elapsed_ms as f64 / 1000.0;
        let per_sec = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
        let rate = (
            per_sec(totals.commands, before.commands),
            per_sec(totals.input, before.input),
            per_sec(totals.output, before.output),
        );
        let periods = ((elapsed_ms / RATE_PERIOD_MS) as usize).min(RATE_SAMPLES);
        for _ in 0..periods {
            if self.samples.len() == RATE_SAMPLES {
                self.samples.pop_front();
            }
            self.samples.push_back(rate);
        }
        self.last = Some((now, totals));
    }

    /// (ops per second, input KB/s, output KB/s).
    pub fn current(&self) -> (u64, f64, f64) {
        if self.samples.is_empty() {
            return (0, 0.0, 0.0);
        }
        let n = self.samples.len() as f64;
        let (ops, input, output) =
            self.samples.iter().fold((0.0, 0.0, 0.0), |acc, s| (acc.0 + s.0, acc.1 + s.1, acc.2 + s.2));
        ((ops / n) as u64, input / n / 1024.0, output / n / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_reports_bucket_upper_edges() {
        let mut h = Histogram::default();
        // 1 µs lands in a bucket 4 ns wide: [1000, 1003].
        h.record(1000);
        assert_eq!(h.value_at_percentile(50.0), 1003);
        // Small values have unit resolution.
        let mut small = Histogram::default();
        small.record(100);
        assert_eq!(small.value_at_percentile(99.0), 100);
    }

    #[test]
    fn histogram_percentiles_follow_counts() {
        let mut h = Histogram::default();
        for _ in 0..99 {
            h.record(10);
        }
        h.record(5000);
        assert_eq!(h.value_at_percentile(50.0), 10);
        assert_eq!(h.value_at_percentile(99.0), 10);
        assert!(h.value_at_percentile(99.9) >= 5000);
    }

    #[test]
    fn cumulative_distribution_by_powers_of_two() {
        let mut h = Histogram::default();
        h.record(500);
        h.record(10_000);
        h.record(10_500);
        // Up to 1 µs: one call; up to 16 µs: all three. Empty levels are skipped.
        assert_eq!(h.cumulative_by_powers_of_two(), vec![(1, 1), (16, 3)]);
        let mut slow = Histogram::default();
        slow.record(5_000_000_000);
        // Clamped to 1 s, reported at the last bucket's edge.
        assert_eq!(slow.cumulative_by_powers_of_two(), vec![(1_073_741, 1)]);
    }

    #[test]
    fn error_codes_are_first_words() {
        with(|c| c.errors.clear());
        record_error_reply("WRONGTYPE Operation against a key holding the wrong kind of value");
        record_error_reply("ERR syntax error");
        record_error_reply("ERR value is not an integer or out of range");
        record_error_reply("NOSPACEINTHEFIRSTTHIRTYTWOBYTESATALL");
        with(|c| {
            assert_eq!(c.errors.get("ERR"), Some(&3));
            assert_eq!(c.errors.get("WRONGTYPE"), Some(&1));
        });
    }

    #[test]
    fn latency_samples_keep_the_worst_per_second() {
        let mut m = LatencyMonitor::default();
        m.add_sample("command", 5, 100);
        m.add_sample("command", 9, 100);
        m.add_sample("command", 3, 101);
        let (_, s) = m.get(b"command").unwrap();
        assert_eq!(s.samples.iter().copied().collect::<Vec<_>>(), vec![(100, 9), (101, 3)]);
        assert_eq!(s.max, 9);
        assert_eq!(m.reset(Some(b"COMMAND")), 1);
        assert!(m.get(b"command").is_none());
    }
}
