//! LATENCY: the latency monitor's spikes (recorded when a command runs at
//! least `latency-monitor-threshold` milliseconds) and the per-command
//! latency histograms (recorded while `latency-tracking` is on).

use std::fmt::Write as _;

use crate::command::{table, CmdResult, Ctx};
use crate::server::unix_ms;

use super::config_value;
use super::stats::{self, Histogram, LatencySeries};

/// LATENCY LATEST: per event, its last sample and its all-time high.
pub(super) fn latency_latest(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let out = &mut *ctx.out;
    stats::with(|c| {
        out.array(c.latency.events.len());
        for (event, series) in &c.latency.events {
            let (time, millis) = series.samples.back().copied().unwrap_or((0, 0));
            out.array(4);
            out.bulk_str(event);
            out.int(time);
            out.int(millis);
            out.int(series.max);
        }
    });
    Ok(())
}

/// LATENCY HISTORY event: the event's [time, latency] samples, oldest first.
pub(super) fn latency_history(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let out = &mut *ctx.out;
    stats::with(|c| match c.latency.get(args[2]) {
        None => out.array(0),
        Some((_, series)) => {
            out.array(series.samples.len());
            for &(time, millis) in &series.samples {
                out.array(2);
                out.int(time);
                out.int(millis);
            }
        }
    });
    Ok(())
}

/// LATENCY RESET [event ...]: how many events were cleared.
pub(super) fn latency_reset(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let cleared = stats::with(|c| {
        if args.len() == 2 {
            c.latency.reset(None)
        } else {
            args[2..].iter().map(|event| c.latency.reset(Some(event))).sum()
        }
    });
    ctx.out.int(cleared as i64);
    Ok(())
}

/// LATENCY GRAPH event: an ASCII sparkline of the event's samples.
pub(super) fn latency_graph(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let graph = stats::with(|c| c.latency.get(args[2]).map(|(event, series)| graph(event, series, unix_ms() / 1000)));
    match graph {
        Some(text) => {
            ctx.out.verbatim(text.as_bytes());
            Ok(())
        }
        None => Err(format!("ERR No samples available for event '{}'", String::from_utf8_lossy(args[2])).into()),
    }
}

const GRAPH_COLUMNS: usize = 80;
const GRAPH_ROWS: usize = 4;

fn graph(event: &str, series: &LatencySeries, now_s: i64) -> String {
    let values: Vec<i64> = series.samples.iter().map(|s| s.1).collect();
    let min = values.iter().copied().min().unwrap_or(0);
    let max = values.iter().copied().max().unwrap_or(0);
    let labels: Vec<String> = series.samples.iter().map(|&(time, _)| age_label(now_s - time)).collect();
    let mut out = format!("{event} - high {max} ms, low {min} ms (all time high {} ms)\n", series.max);
    out.push_str(&"-".repeat(GRAPH_COLUMNS));
    out.push('\n');
    let mut start = 0;
    while start < values.len() {
        let end = (start + GRAPH_COLUMNS).min(values.len());
        if start != 0 {
            out.push('\n');
        }
        render_sparkline(&mut out, &values[start..end], &labels[start..end], min, max);
        start = end;
    }
    out
}

/// How long ago a sample was: "12s", "5m", "3h", "2d".
fn age_label(seconds: i64) -> String {
    if seconds < 60 {
        format!("{seconds}s")
    } else if seconds < 3600 {
        format!("{}m", seconds / 60)
    } else if seconds < 86400 {
        format!("{}h", seconds / 3600)
    } else {
        format!("{}d", seconds / 86400)
    }
}

/// Draws values as filled columns of `GRAPH_ROWS` rows, three levels per
/// row ('_', 'o', '#', with '|' below the top), then each label written
/// vertically under its column after one blank row.
fn render_sparkline(out: &mut String, values: &[i64], labels: &[String], min: i64, max: i64) {
    const LEVELS: &[u8] = b"_o#";
    let steps = (LEVELS.len() * GRAPH_ROWS) as i64;
    let range = if max == min { 1.0 } else { (max - min) as f64 };
    let step_of = |v: i64| {
        let step = (((v - min) as f64 * steps as f64) as i64 as f64 / range) as i64;
        step.clamp(0, steps - 1)
    };
    for row in 0..GRAPH_ROWS {
        let line: String = values
            .iter()
            .map(|&v| {
                let level = step_of(v) - ((GRAPH_ROWS - row - 1) * LEVELS.len()) as i64;
                if level < 0 {
                    ' '
                } else if (level as usize) < LEVELS.len() {
                    LEVELS[level as usize] as char
                } else {
                    '|'
                }
            })
            .collect();
        out.push_str(&line);
        out.push('\n');
    }
    if !labels.is_empty() {
        out.push_str(&" ".repeat(values.len()));
        out.push('\n');
    }
    let tallest = labels.iter().map(String::len).max().unwrap_or(0);
    for i in 0..tallest {
        let line: String = labels.iter().map(|l| l.as_bytes().get(i).map(|&b| b as char).unwrap_or(' ')).collect();
        out.push_str(&line);
        out.push('\n');
    }
}

/// LATENCY DOCTOR: a human-readable analysis of the recorded spikes.
pub(super) fn latency_doctor(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let threshold: i64 = config_value(ctx.srv, "latency-monitor-threshold").parse().unwrap_or(0);
    let slowlog = (ctx.srv.slowlog.slower_than, ctx.srv.slowlog.max_len);
    let hz = ctx.srv.config.hz;
    let report = stats::with(|c| doctor_report(&c.latency.events, threshold, slowlog, hz, unix_ms() / 1000));
    ctx.out.verbatim(report.as_bytes());
    Ok(())
}

fn doctor_report(
    events: &[(String, LatencySeries)],
    threshold: i64,
    slowlog: (i64, usize),
    hz: u32,
    now_s: i64,
) -> String {
    if events.is_empty() && threshold == 0 {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Valkey instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it.\n".into();
    }
    let mut report = String::new();
    let mut advice = Advice::default();
    for (n, (event, series)) in events.iter().enumerate() {
        if n == 0 {
            report.push_str("Latency spikes are observed in this Valkey instance.\n\n");
        }
        let samples = series.samples.len() as i64;
        let sum: i64 = series.samples.iter().map(|s| s.1).sum();
        let avg = if samples > 0 { sum / samples } else { 0 };
        let mad = if samples > 0 { series.samples.iter().map(|s| (avg - s.1).abs()).sum::<i64>() / samples } else { 0 };
        let oldest = series.samples.iter().map(|s| s.0).min().unwrap_or(now_s);
        let period = if samples > 0 { (now_s - oldest).max(1) } else { 0 };
        let _ = write!(
            report,
            "{}. {event}: {samples} latency spikes (average {avg}ms, mean deviation {mad}ms, period {:.2} sec). Worst all time event {}ms.",
            n + 1,
            period as f64 / samples.max(1) as f64,
            series.max
        );
        match event.as_str() {
            "command" => {
                if slowlog.0 < 0 || slowlog.1 == 0 {
                    advice.slowlog_enable = true;
                } else if slowlog.0 / 1000 > threshold {
                    advice.slowlog_tune = true;
                }
                advice.slowlog_inspect = true;
                advice.large_objects = true;
            }
            "fast-command" => advice.scheduler = true,
            "expire-cycle" => {
                advice.hz = true;
                advice.large_objects = true;
            }
            _ => {}
        }
        report.push('\n');
    }
    let transparent_huge_pages = anon_huge_pages() > 0;
    if events.is_empty() && !advice.any() && !transparent_huge_pages {
        report.push_str(
            "No latency spike was observed during the lifetime of this Valkey instance, not in the slightest bit.\n",
        );
        return report;
    }
    if !events.is_empty() && !advice.any() && !transparent_huge_pages {
        report.push_str("\nThere are latency events logged that are not easy to fix. Please get some help from Valkey community, providing this report in your help request.\n");
        return report;
    }
    report.push_str("\nHere is some advice for you:\n\n");
    if advice.slowlog_enable {
        let _ = writeln!(report, "- There are latency issues with potentially slow commands you are using. Try to enable the Slow Log Valkey feature using the command 'CONFIG SET slowlog-log-slower-than {}'. If the Slow log is disabled Valkey is not able to log slow commands execution for you.", threshold * 1000);
    }
    if advice.slowlog_tune {
        let _ = writeln!(report, "- Your current Slow Log configuration only logs events that are slower than your configured latency monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than {}'.", threshold * 1000);
    }
    if advice.slowlog_inspect {
        report.push_str("- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://valkey.io/commands/slowlog for more information.\n");
    }
    if advice.scheduler {
        report.push_str("- The system is slow to execute Valkey code paths not containing system calls. This usually means the system does not provide Valkey CPU time to run for long periods. You should try to:\n  1) Lower the system load.\n  2) Use a computer / VM just for Valkey if you are running other software in the same system.\n  3) Check if you have a \"noisy neighbour\" problem.\n  4) Check with 'valkey-cli --intrinsic-latency 100' what is the intrinsic latency in your system.\n  5) Check if the problem is allocator-related by recompiling Valkey with MALLOC=libc, if you are using Jemalloc. However this may create fragmentation problems.\n");
    }
    if advice.hz && hz < 100 {
        report.push_str("- In order to make the Valkey keys expiring process more incremental, try to set the 'hz' configuration parameter to 100 using 'CONFIG SET hz 100'.\n");
    }
    if advice.large_objects {
        report.push_str("- Deleting, expiring or evicting (because of maxmemory policy) large objects is a blocking operation. If you have very large objects that are often deleted, expired, or evicted, try to fragment those objects into multiple smaller objects.\n");
    }
    if transparent_huge_pages {
        report.push_str("- I detected a non zero amount of anonymous huge pages used by your process. This creates very serious latency events in different conditions, especially when Valkey is persisting on disk. To disable THP support use the command 'echo never > /sys/kernel/mm/transparent_hugepage/enabled', make sure to also add it into /etc/rc.local so that the command will be executed again after a reboot. Note that even if you have already disabled THP, you still need to restart the Valkey process to get rid of the huge pages already created.\n");
    }
    report
}

#[derive(Default)]
struct Advice {
    slowlog_enable: bool,
    slowlog_tune: bool,
    slowlog_inspect: bool,
    scheduler: bool,
    hz: bool,
    large_objects: bool,
}

impl Advice {
    fn any(&self) -> bool {
        self.slowlog_enable
            || self.slowlog_tune
            || self.slowlog_inspect
            || self.scheduler
            || self.hz
            || self.large_objects
    }
}

/// Kilobytes of transparent huge pages the process uses.
fn anon_huge_pages() -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    smaps
        .lines()
        .filter_map(|l| l.strip_prefix("AnonHugePages:"))
        .filter_map(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .sum()
}

/// LATENCY HISTOGRAM [command ...]: per command, its call count and the
/// cumulative distribution of its run times in power-of-two microseconds.
pub(super) fn latency_histogram(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let t = table();
    let mut names: Vec<String> = Vec::new();
    if args.len() == 2 {
        names = super::info::command_names();
    } else {
        for arg in &args[2..] {
            let text = String::from_utf8_lossy(arg).to_ascii_lowercase();
            let mut parts = text.splitn(2, '|');
            let base = parts.next().unwrap_or("");
            let Some(spec) = t.commands.get(base.as_bytes()) else { continue };
            match parts.next() {
                Some(sub) => {
                    if let Some(sub) = spec.subcommands.get(sub.as_bytes()).filter(|_| !sub.contains('|')) {
                        names.push(sub.name.clone());
                    }
                }
                None => {
                    names.push(spec.name.clone());
                    names.extend(super::command_cmd::subcommands_in_order(spec).iter().map(|s| s.name.clone()));
                }
            }
        }
    }
    let out = &mut *ctx.out;
    stats::with(|c| {
        let with_data: Vec<(&String, &Histogram)> = names
            .iter()
            .filter_map(|n| c.commands.get(n.as_str()).and_then(|calls| calls.histogram.as_ref()).map(|h| (n, h)))
            .collect();
        out.map(with_data.len());
        for (name, histogram) in with_data {
            out.bulk_str(name);
            out.map(2);
            out.bulk_str("calls");
            out.int(histogram.total() as i64);
            out.bulk_str("histogram_usec");
            let points = histogram.cumulative_by_powers_of_two();
            out.map(points.len());
            for (micros, count) in points {
                out.int(micros as i64);
                out.int(count as i64);
            }
        }
    });
    Ok(())
}

/// LATENCY HELP
pub(super) fn latency_help(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ctx.out.help(args[0],
        &[
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "GRAPH <event>",
            "    Return an ASCII latency graph for the <event> class.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "HISTOGRAM [COMMAND ...]",
            "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
            "    If no commands are specified then all histograms are replied.",
        ],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_draws_columns_and_labels() {
        let mut series = LatencySeries::default();
        series.samples.push_back((100, 10));
        series.samples.push_back((101, 20));
        series.max = 20;
        let text = graph("command", &series, 105);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "command - high 20 ms, low 10 ms (all time high 20 ms)");
        assert_eq!(lines[1], "-".repeat(80));
        // The highest sample reaches the top row; the lowest only the bottom.
        assert_eq!(lines[2], " #");
        assert_eq!(lines[5], "_|");
        // A blank row, then the labels "5s" and "4s" written downwards.
        assert_eq!(lines[6], "  ");
        assert_eq!(lines[7], "54");
        assert_eq!(lines[8], "ss");
    }

    #[test]
    fn doctor_without_monitoring() {
        let text = doctor_report(&[], 0, (10000, 128), 10, 0);
        assert!(text.starts_with("I'm sorry, Dave"));
    }
}
