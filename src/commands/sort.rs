//! SORT and SORT_RO: sorting lists, sets and sorted sets by their elements
//! or by values found through key patterns, with GET, LIMIT and STORE.
//!
//! The order of the result is Valkey's to the byte: numbers compare as
//! doubles with ties broken by the elements' bytes, ALPHA compares C
//! strings (strcoll, which the C.UTF-8 locale makes strcmp) or, when
//! storing, whole byte strings. Whole-vector sorts are stable, like glibc's
//! merge sort behind `qsort`; a BY pattern with a LIMIT sorts only the
//! requested window with Valkey's partial quicksort, whose order among
//! equal elements clients can see. Both sorts are here and serve the geo
//! searches too.

use std::cmp::Ordering;

use ferrokey_formats::listpack::Item;
use ferrokey_formats::resp::parse_i64;

use super::args::c_str;
use crate::command::{errors, CmdError, CmdResult, Ctx, Handler, Lookup};
use crate::double;
use crate::notify::{self, notify};
use crate::types::list::{End, List};
use crate::value::Value;

pub const COMMANDS: &[(&str, Handler)] = &[("sort", sort), ("sort_ro", sort_ro)];

fn sort(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    sort_generic(ctx, args, false)
}

/// SORT_RO knows no STORE: the word is a syntax error there.
fn sort_ro(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    sort_generic(ctx, args, true)
}

/// Case-insensitive option match, as strcasecmp on the argument.
fn is(arg: &[u8], word: &str) -> bool {
    c_str(arg).eq_ignore_ascii_case(word.as_bytes())
}

/// The options of one SORT call.
struct Options<'a> {
    desc: bool,
    alpha: bool,
    limit_start: i64,
    limit_count: i64,
    store: Option<&'a [u8]>,
    by: Option<&'a [u8]>,
    /// A BY pattern without '*' (conventionally `nosort`): keep the
    /// elements in their stored order. Any such BY sets it for good.
    dont_sort: bool,
    gets: Vec<&'a [u8]>,
}

fn parse_options<'a>(args: &[&'a [u8]], read_only: bool) -> Result<Options<'a>, CmdError> {
    let mut options = Options {
        desc: false,
        alpha: false,
        limit_start: 0,
        limit_count: -1,
        store: None,
        by: None,
        dont_sort: false,
        gets: Vec::new(),
    };
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let arg = args[j];
        if is(arg, "asc") {
            options.desc = false;
        } else if is(arg, "desc") {
            options.desc = true;
        } else if is(arg, "alpha") {
            options.alpha = true;
        } else if is(arg, "limit") && left >= 2 {
            options.limit_start = parse_i64(args[j + 1]).ok_or(CmdError::from(errors::NOT_INTEGER))?;
            options.limit_count = parse_i64(args[j + 2]).ok_or(CmdError::from(errors::NOT_INTEGER))?;
            j += 2;
        } else if !read_only && is(arg, "store") && left >= 1 {
            options.store = Some(args[j + 1]);
            j += 1;
        } else if is(arg, "by") && left >= 1 {
            let pattern = args[j + 1];
            options.by = Some(pattern);
            if !c_str(pattern).contains(&b'*') {
                options.dont_sort = true;
            }
            j += 1;
        } else if is(arg, "get") && left >= 1 {
            options.gets.push(args[j + 1]);
            j += 1;
        } else {
            return Err(errors::SYNTAX.into());
        }
        j += 1;
    }
    Ok(options)
}

/// One element being sorted, with what it is compared by.
struct Element {
    bytes: Vec<u8>,
    /// The numeric weight (0 when a BY pattern finds nothing).
    score: f64,
    /// The ALPHA weight found through a BY pattern.
    weight: Option<Vec<u8>>,
}

impl Element {
    fn new(bytes: Vec<u8>) -> Element {
        Element { bytes, score: 0.0, weight: None }
    }
}

/// Valkey's numeric reading of a sort weight: `strtod` over the C string,
/// which must read all of it, without overflow, underflow or NaN.
fn parse_weight(text: &[u8]) -> Option<f64> {
    let text = c_str(text);
    let read = double::strtod(text);
    (read.consumed == text.len() && !read.out_of_range && !read.value.is_nan()).then_some(read.value)
}

/// The value a pattern leads to for one element: the element itself for
/// `#`; else the pattern's first '*' replaced by the element names a key,
/// a string, or with `->field` after the '*', a hash holding that field.
/// None when the pattern has no '*' or nothing is there.
fn lookup_by_pattern(ctx: &mut Ctx, pattern: &[u8], element: &[u8]) -> Option<Vec<u8>> {
    // The pattern is read as a C string, except for the field name, which
    // runs to the end of the argument.
    let text = c_str(pattern);
    if text == b"#" {
        return Some(element.to_vec());
    }
    let star = text.iter().position(|&c| c == b'*')?;
    let field_at = text[star + 1..]
        .windows(2)
        .position(|w| w == b"->")
        .map(|at| star + 1 + at)
        .filter(|&arrow| text.len() > arrow + 2);
    let suffix_end = field_at.unwrap_or(pattern.len());
    let mut key = Vec::with_capacity(pattern.len() + element.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(&pattern[star + 1..suffix_end]);
    let entry = ctx.lookup(&key, Lookup::Read).0?;
    match (field_at, &entry.value) {
        (Some(arrow), Value::Hash(hash)) => hash.get(&pattern[arrow + 2..]).map(|v| v.to_vec()),
        (Some(_), _) => None,
        (None, value) => value.string_bytes().map(|b| b.into_owned()),
    }
}

/// Valkey's sort comparison.
fn compare(a: &Element, b: &Element, options: &Options, by_pattern: bool) -> Ordering {
    let storing = options.store.is_some();
    let order = if !options.alpha {
        // Equal weights fall back to the elements, so the result is
        // deterministic.
        if a.score > b.score {
            Ordering::Greater
        } else if a.score < b.score {
            Ordering::Less
        } else {
            a.bytes.cmp(&b.bytes)
        }
    } else if by_pattern {
        match (&a.weight, &b.weight) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) if storing => x.cmp(y),
            (Some(x), Some(y)) => c_str(x).cmp(c_str(y)),
        }
    } else if storing {
        a.bytes.cmp(&b.bytes)
    } else {
        c_str(&a.bytes).cmp(c_str(&b.bytes))
    };
    if options.desc {
        order.reverse()
    } else {
        order
    }
}

fn sort_generic(ctx: &mut Ctx, args: &[&[u8]], read_only: bool) -> CmdResult {
    let mut options = parse_options(args, read_only)?;
    let (entry, _) = ctx.lookup(args[1], Lookup::Read);
    let mut source = match entry {
        None => None,
        Some(entry) => match &mut entry.value {
            value @ (Value::List(_) | Value::Set(_) | Value::ZSet(_)) => Some(value),
            _ => return Err(errors::WRONG_TYPE.into()),
        },
    };
    // A set has no order of its own: when the result is stored, it is
    // sorted so that replicas and the journal see the same list.
    if options.dont_sort && matches!(source, Some(Value::Set(_))) && options.store.is_some() {
        options.dont_sort = false;
        options.alpha = true;
        options.by = None;
    }
    // Valkey sorts sorted sets in their skiplist form, converting them.
    if let Some(Value::ZSet(zset)) = &mut source {
        zset.convert_to_skiplist();
    }
    let total = match &source {
        Some(Value::List(list)) => list.len(),
        Some(Value::Set(set)) => set.len(),
        Some(Value::ZSet(zset)) => zset.len(),
        _ => 0,
    } as i64;

    // LIMIT, clamped to the elements there are.
    let mut start = options.limit_start.clamp(0, total);
    let count = options.limit_count.clamp(-1, total);
    let mut end = if count < 0 { total - 1 } else { start + count - 1 };
    if start >= total {
        start = total - 1;
        end = total - 2;
    }
    if end >= total {
        end = total - 1;
    }

    // Ordered sources that need no sorting are read for the window only.
    let mut elements: Vec<Element> = Vec::new();
    let windowed = options.dont_sort && matches!(source, Some(Value::List(_) | Value::ZSet(_)));
    match &source {
        Some(Value::List(list)) if windowed => {
            // An empty window reads nothing and leaves the bounds as they are.
            let wanted = usize::try_from(end - start + 1).unwrap_or(0);
            let first = usize::try_from(if options.desc { total - start - 1 } else { start }).unwrap_or(0);
            if wanted > 0 {
                let items = list.iter_from(first, options.desc).take(wanted);
                elements.extend(items.map(|item| Element::new(item.to_vec())));
                end -= start;
                start = 0;
            }
        }
        Some(Value::ZSet(zset)) if windowed => {
            let wanted = usize::try_from(end - start + 1).unwrap_or(0);
            let first = usize::try_from(if options.desc { total - start - 1 } else { start }).unwrap_or(0);
            let items = zset.iter_from(first, options.desc).take(wanted);
            elements.extend(items.map(|(member, _)| Element::new(member.to_vec())));
            end -= start;
            start = 0;
        }
        Some(Value::List(list)) => elements.extend(list.iter().map(|item| Element::new(item.to_vec()))),
        Some(Value::Set(set)) => elements.extend(set.iter().map(|item: Item<'_>| Element::new(item.to_vec()))),
        Some(Value::ZSet(zset)) => elements.extend(zset.iter().map(|(member, _)| Element::new(member.to_vec()))),
        _ => {}
    }

    let mut unconvertible = false;
    if !options.dont_sort {
        for element in &mut elements {
            let weight = match options.by {
                Some(pattern) => match lookup_by_pattern(ctx, pattern, &element.bytes) {
                    Some(found) => found,
                    None => continue,
                },
                None => element.bytes.clone(),
            };
            if options.alpha {
                if options.by.is_some() {
                    element.weight = Some(weight);
                }
            } else {
                match parse_weight(&weight) {
                    Some(score) => element.score = score,
                    None => unconvertible = true,
                }
            }
        }
        let by_pattern = options.by.is_some();
        let compare = |a: &Element, b: &Element| compare(a, b, &options, by_pattern);
        let whole = start == 0 && end == elements.len() as i64 - 1;
        if by_pattern && !whole {
            // Outside the window the order does not matter; with an empty
            // window nothing is returned at all.
            if end >= start {
                partial_sort_by(&mut elements, compare, start as usize, end as usize);
            }
        } else {
            stable_sort_by(&mut elements, compare);
        }
    }

    if unconvertible {
        return Err("ERR One or more scores can't be converted into double".into());
    }
    let window: &[Element] = if end >= start { &elements[start as usize..=end as usize] } else { &[] };
    let per_element = options.gets.len().max(1);
    let output_len = window.len() * per_element;
    let Some(destination) = options.store else {
        ctx.out.array(output_len);
        for element in window {
            if options.gets.is_empty() {
                ctx.out.bulk(&element.bytes);
            }
            for pattern in &options.gets {
                match lookup_by_pattern(ctx, pattern, &element.bytes) {
                    Some(value) => ctx.out.bulk(&value),
                    None => ctx.out.null(),
                }
            }
        }
        return Ok(());
    };
    let fill = ctx.srv.config.list_max_listpack_size;
    // Built as a quicklist, then made a listpack if it fits one, as Valkey does.
    let mut list = List::quicklist_from_nodes(std::iter::empty(), fill);
    for element in window {
        if options.gets.is_empty() {
            list.push(&element.bytes, End::Tail);
        }
        for pattern in &options.gets {
            let value = lookup_by_pattern(ctx, pattern, &element.bytes).unwrap_or_default();
            list.push(&value, End::Tail);
        }
    }
    if output_len > 0 {
        list.settle_encoding(fill);
        let lru = ctx.lru_now();
        let existed = ctx.lookup(destination, Lookup::Write).0.is_some();
        ctx.db().set(destination, Value::List(list), lru);
        ctx.dirty(output_len as u64);
        if !existed {
            notify::new_key(ctx, destination);
        }
        notify(ctx, notify::LIST, "sortstore", destination);
    } else if ctx.db().remove(destination).is_some() {
        ctx.dirty(1);
        notify(ctx, notify::GENERIC, "del", destination);
    }
    ctx.out.int(output_len as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// The sorts
// ---------------------------------------------------------------------------

/// A stable merge sort that splits like glibc's `qsort` (the left half
/// gets n/2 elements) and takes from the left on ties. For a consistent
/// comparison any stable sort gives the same order; this one also agrees
/// with glibc when a comparison is not consistent (NaN distances), and it
/// never panics on one.
pub(crate) fn stable_sort_by<T>(items: &mut Vec<T>, mut compare: impl FnMut(&T, &T) -> Ordering) {
    let all = std::mem::take(items);
    *items = merge_sort(all, &mut compare);
}

fn merge_sort<T>(mut items: Vec<T>, compare: &mut impl FnMut(&T, &T) -> Ordering) -> Vec<T> {
    let n = items.len();
    if n <= 1 {
        return items;
    }
    let right = items.split_off(n / 2);
    let left = merge_sort(items, compare);
    let right = merge_sort(right, compare);
    let mut merged = Vec::with_capacity(n);
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    while let (Some(a), Some(b)) = (left.peek(), right.peek()) {
        let next = if compare(a, b) != Ordering::Greater { left.next() } else { right.next() };
        merged.extend(next);
    }
    merged.extend(left);
    merged.extend(right);
    merged
}

/// Valkey's partial quicksort (Bentley and McIlroy's, skipping the
/// partitions that lie wholly outside `first..=last`): afterwards the
/// elements at those positions are the ones a full sort would put there.
/// It is not stable, and the order it leaves equal elements in is part of
/// what clients see.
pub(crate) fn partial_sort_by<T>(
    items: &mut [T],
    mut compare: impl FnMut(&T, &T) -> Ordering,
    first: usize,
    last: usize,
) {
    quicksort_window(items, 0, &mut compare, first, last);
}

/// Whether positions `first..=last` meet a partition of `len` elements
/// starting at `offset`.
fn window_meets(offset: usize, len: usize, first: usize, last: usize) -> bool {
    let end = offset + len;
    !((first < offset && last < offset) || (first >= end && last >= end))
}

/// The median of three positions.
fn median_of_three<T>(v: &[T], a: usize, b: usize, c: usize, compare: &mut impl FnMut(&T, &T) -> Ordering) -> usize {
    if compare(&v[a], &v[b]) == Ordering::Less {
        if compare(&v[b], &v[c]) == Ordering::Less {
            b
        } else if compare(&v[a], &v[c]) == Ordering::Less {
            c
        } else {
            a
        }
    } else if compare(&v[b], &v[c]) == Ordering::Greater {
        b
    } else if compare(&v[a], &v[c]) == Ordering::Less {
        a
    } else {
        c
    }
}

/// Swaps `n` elements at `a` with `n` elements at `b`, pairwise.
fn swap_blocks<T>(v: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        v.swap(a + i, b + i);
    }
}

/// Sorts `v`, which sits at `offset` in the whole array, as far as the
/// window `first..=last` needs.
fn quicksort_window<T>(
    mut v: &mut [T],
    mut offset: usize,
    compare: &mut impl FnMut(&T, &T) -> Ordering,
    first: usize,
    last: usize,
) {
    loop {
        let n = v.len();
        if n < 7 {
            for m in 1..n {
                let mut l = m;
                while l > 0 && compare(&v[l - 1], &v[l]) == Ordering::Greater {
                    v.swap(l, l - 1);
                    l -= 1;
                }
            }
            return;
        }
        let mut pivot = n / 2;
        if n > 7 {
            let mut low = 0;
            let mut high = n - 1;
            if n > 40 {
                let d = n / 8;
                low = median_of_three(v, low, low + d, low + 2 * d, compare);
                pivot = median_of_three(v, pivot - d, pivot, pivot + d, compare);
                high = median_of_three(v, high - 2 * d, high - d, high, compare);
            }
            pivot = median_of_three(v, low, pivot, high, compare);
        }
        v.swap(0, pivot);
        // Three-way partition around v[0]: equal elements gather at both
        // ends ([1, pa) and (pd, n)) and are swapped into the middle after.
        let (mut pa, mut pb) = (1, 1);
        let (mut pc, mut pd) = (n - 1, n - 1);
        loop {
            while pb <= pc {
                let order = compare(&v[pb], &v[0]);
                if order == Ordering::Greater {
                    break;
                }
                if order == Ordering::Equal {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb <= pc {
                let order = compare(&v[pc], &v[0]);
                if order == Ordering::Less {
                    break;
                }
                if order == Ordering::Equal {
                    v.swap(pc, pd);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            pb += 1;
            pc -= 1;
        }
        let r = pa.min(pb - pa);
        swap_blocks(v, 0, pb - r, r);
        let r = (pd - pc).min(n - pd - 1);
        swap_blocks(v, pb, n - r, r);
        let smaller = pb - pa;
        if smaller > 1 && window_meets(offset, smaller, first, last) {
            quicksort_window(&mut v[..smaller], offset, compare, first, last);
        }
        let larger = pd - pc;
        if larger > 1 && window_meets(offset + n - larger, larger, first, last) {
            let rest = v;
            v = &mut rest[n - larger..];
            offset += n - larger;
            continue;
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn partial_sort_orders_the_window() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for len in [0usize, 1, 5, 7, 8, 40, 41, 100, 1000] {
            let values: Vec<u32> = (0..len).map(|_| rng.gen_range(0..50)).collect();
            let mut sorted = values.clone();
            sorted.sort();
            for (first, last) in [(0, 0), (0, 9), (3, 20), (len / 2, len / 2 + 5)] {
                if len == 0 || first >= len {
                    continue;
                }
                let last = last.min(len - 1);
                let mut v = values.clone();
                partial_sort_by(&mut v, |a, b| a.cmp(b), first, last);
                assert_eq!(v[first..=last], sorted[first..=last], "len {len} window {first}..={last}");
            }
        }
    }

    #[test]
    fn merge_sort_is_stable() {
        let mut v: Vec<(u8, usize)> = (0..200).map(|i| ((i * 7 % 5) as u8, i)).collect();
        stable_sort_by(&mut v, |a, b| a.0.cmp(&b.0));
        for w in v.windows(2) {
            assert!(w[0].0 < w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1));
        }
    }

    #[test]
    fn weights_read_like_strtod() {
        assert_eq!(parse_weight(b""), Some(0.0));
        assert_eq!(parse_weight(b" 12"), Some(12.0));
        assert_eq!(parse_weight(b"1\0junk"), Some(1.0));
        assert_eq!(parse_weight(b"0x10"), Some(16.0));
        assert_eq!(parse_weight(b"12 "), None);
        assert_eq!(parse_weight(b"nan"), None);
        assert_eq!(parse_weight(b"1e400"), None);
    }
}
