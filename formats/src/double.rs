//! Valkey's text forms of doubles: how scores and other floating point
//! values are parsed from arguments and printed in replies.
//!
//! Printing follows Valkey 8's `d2string`: "inf"/"-inf", "0"/"-0",
//! integral values within ±2^62 as integers, and everything else in the
//! form its bundled Grisu2 converter produces ("0.1", "1e+20", "1e-7",
//! "123456789012345680000"). Grisu2 usually finds the shortest digits that
//! read back to the same double, but not always, so the algorithm is
//! reproduced here step for step rather than replaced by a shortest-digits
//! algorithm: the replies must match byte for byte.
//!
//! Parsing follows C's `strtod` as glibc implements it (leading blanks, a
//! sign, "inf"/"infinity", "nan", decimal and hexadecimal forms, the
//! longest valid prefix), on top of which Valkey builds its strict form
//! (`string2d`: the whole argument, no leading blank, no overflow to
//! infinity or underflow to zero, no NaN) and its lenient range bounds.

/// The longest text [`format`] or [`format_g17`] produce is 24 bytes.
const TEXT_CAPACITY: usize = 32;

/// A formatted double, held without allocating.
#[derive(Clone, Copy)]
pub struct DoubleText {
    buf: [u8; TEXT_CAPACITY],
    len: usize,
}

impl DoubleText {
    fn new() -> DoubleText {
        DoubleText { buf: [0; TEXT_CAPACITY], len: 0 }
    }

    fn push(&mut self, c: u8) {
        self.buf[self.len] = c;
        self.len += 1;
    }

    fn push_all(&mut self, s: &[u8]) {
        self.buf[self.len..self.len + s.len()].copy_from_slice(s);
        self.len += s.len();
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits, signs, '.', 'e' and letters of "inf"/"nan" are written.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl std::fmt::Debug for DoubleText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------

/// Valkey's `d2string`: how scores appear in replies and in listpacks.
pub fn format(value: f64) -> DoubleText {
    let mut out = DoubleText::new();
    if value.is_nan() {
        out.push_all(b"nan");
    } else if value.is_infinite() {
        out.push_all(if value < 0.0 { b"-inf" } else { b"inf" });
    } else if value == 0.0 {
        out.push_all(if value.is_sign_negative() { b"-0" } else { b"0" });
    } else if let Some(n) = exact_integer(value) {
        out.push_all(itoa::Buffer::new().format(n).as_bytes());
    } else {
        grisu::write(value, &mut out);
    }
    out
}

/// The integer a double holds exactly, when it lies within ±2^62 (where
/// Valkey prints doubles with its integer formatter).
pub fn exact_integer(value: f64) -> Option<i64> {
    // (i64::MAX / 2) as f64 rounds up to exactly 2^62.
    let limit = (i64::MAX / 2) as f64;
    if !(-limit..=limit).contains(&value) {
        return None;
    }
    let truncated = value as i64;
    (truncated as f64 == value).then_some(truncated)
}

/// C's `%.17g`: 17 significant digits, trailing zeros dropped, exponent
/// form below 1e-4 and from 1e17 on. Valkey prints scores this way in
/// ZSCAN replies of big sorted sets.
pub fn format_g17(value: f64) -> DoubleText {
    const PRECISION: i32 = 17;
    let mut out = DoubleText::new();
    if value.is_nan() {
        out.push_all(b"nan");
        return out;
    }
    if value.is_infinite() {
        out.push_all(if value < 0.0 { b"-inf" } else { b"inf" });
        return out;
    }
    // Rust's exact formatting rounds half to even like glibc's printf;
    // "{:.16e}" gives the 17 significant digits and the exponent after
    // rounding, which is what %g decides the layout by.
    let text = format!("{:.16e}", value.abs());
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    if value.is_sign_negative() {
        out.push(b'-');
    }
    if !(-4..PRECISION).contains(&exponent) {
        let significant = trim_zeros(&digits);
        out.push(significant[0]);
        if significant.len() > 1 {
            out.push(b'.');
            out.push_all(&significant[1..]);
        }
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push(b'0');
        }
        out.push_all(itoa::Buffer::new().format(magnitude).as_bytes());
    } else if exponent >= 0 {
        let split = exponent as usize + 1;
        out.push_all(&digits[..split]);
        let fraction = trim_zeros(&digits[split..]);
        if !fraction.is_empty() {
            out.push(b'.');
            out.push_all(fraction);
        }
    } else {
        out.push_all(b"0.");
        for _ in 0..(-exponent - 1) {
            out.push(b'0');
        }
        out.push_all(trim_zeros(&digits));
    }
    out
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let end = digits.iter().rposition(|&d| d != b'0').map_or(0, |p| p + 1);
    &digits[..end]
}

/// Grisu2, as in the `fpconv` library Valkey bundles (after Florian
/// Loitsch, "Printing Floating-Point Numbers Quickly and Accurately with
/// Integers", 2010): the double and its rounding boundaries are scaled by a
/// cached power of ten into a window where 64-bit integer arithmetic
/// generates the digits, then the last digit is nudged toward the exact
/// value while it stays within the boundaries.
mod grisu {
    use super::DoubleText;

    const FRACTION_MASK: u64 = 0x000F_FFFF_FFFF_FFFF;
    const HIDDEN_BIT: u64 = 0x0010_0000_0000_0000;
    const EXPONENT_BIAS: i32 = 1023 + 52;

    /// A number `f × 2^e`.
    #[derive(Clone, Copy)]
    struct Fp {
        f: u64,
        e: i32,
    }

    /// Normalized 64-bit approximations (rounded to nearest) of 10^k for
    /// k = -348, -340, ..., 340: `(f, e)` with `f × 2^e ≈ 10^k` and the top
    /// bit of `f` set. Derived with exact rational arithmetic.
    const POWERS_OF_TEN: [(u64, i32); 87] = [
        (0xfa8fd5a0081c0288, -1220),
        (0xbaaee17fa23ebf76, -1193),
        (0x8b16fb203055ac76, -1166),
        (0xcf42894a5dce35ea, -1140),
        (0x9a6bb0aa55653b2d, -1113),
        (0xe61acf033d1a45df, -1087),
        (0xab70fe17c79ac6ca, -1060),
        (0xff77b1fcbebcdc4f, -1034),
        (0xbe5691ef416bd60c, -1007),
        (0x8dd01fad907ffc3c, -980),
        (0xd3515c2831559a83, -954),
        (0x9d71ac8fada6c9b5, -927),
        (0xea9c227723ee8bcb, -901),
        (0xaecc49914078536d, -874),
        (0x823c12795db6ce57, -847),
        (0xc21094364dfb5637, -821),
        (0x9096ea6f3848984f, -794),
        (0xd77485cb25823ac7, -768),
        (0xa086cfcd97bf97f4, -741),
        (0xef340a98172aace5, -715),
        (0xb23867fb2a35b28e, -688),
        (0x84c8d4dfd2c63f3b, -661),
        (0xc5dd44271ad3cdba, -635),
        (0x936b9fcebb25c996, -608),
        (0xdbac6c247d62a584, -582),
        (0xa3ab66580d5fdaf6, -555),
        (0xf3e2f893dec3f126, -529),
        (0xb5b5ada8aaff80b8, -502),
        (0x87625f056c7c4a8b, -475),
        (0xc9bcff6034c13053, -449),
        (0x964e858c91ba2655, -422),
        (0xdff9772470297ebd, -396),
        (0xa6dfbd9fb8e5b88f, -369),
        (0xf8a95fcf88747d94, -343),
        (0xb94470938fa89bcf, -316),
        (0x8a08f0f8bf0f156b, -289),
        (0xcdb02555653131b6, -263),
        (0x993fe2c6d07b7fac, -236),
        (0xe45c10c42a2b3b06, -210),
        (0xaa242499697392d3, -183),
        (0xfd87b5f28300ca0e, -157),
        (0xbce5086492111aeb, -130),
        (0x8cbccc096f5088cc, -103),
        (0xd1b71758e219652c, -77),
        (0x9c40000000000000, -50),
        (0xe8d4a51000000000, -24),
        (0xad78ebc5ac620000, 3),
        (0x813f3978f8940984, 30),
        (0xc097ce7bc90715b3, 56),
        (0x8f7e32ce7bea5c70, 83),
        (0xd5d238a4abe98068, 109),
        (0x9f4f2726179a2245, 136),
        (0xed63a231d4c4fb27, 162),
        (0xb0de65388cc8ada8, 189),
        (0x83c7088e1aab65db, 216),
        (0xc45d1df942711d9a, 242),
        (0x924d692ca61be758, 269),
        (0xda01ee641a708dea, 295),
        (0xa26da3999aef774a, 322),
        (0xf209787bb47d6b85, 348),
        (0xb454e4a179dd1877, 375),
        (0x865b86925b9bc5c2, 402),
        (0xc83553c5c8965d3d, 428),
        (0x952ab45cfa97a0b3, 455),
        (0xde469fbd99a05fe3, 481),
        (0xa59bc234db398c25, 508),
        (0xf6c69a72a3989f5c, 534),
        (0xb7dcbf5354e9bece, 561),
        (0x88fcf317f22241e2, 588),
        (0xcc20ce9bd35c78a5, 614),
        (0x98165af37b2153df, 641),
        (0xe2a0b5dc971f303a, 667),
        (0xa8d9d1535ce3b396, 694),
        (0xfb9b7cd9a4a7443c, 720),
        (0xbb764c4ca7a44410, 747),
        (0x8bab8eefb6409c1a, 774),
        (0xd01fef10a657842c, 800),
        (0x9b10a4e5e9913129, 827),
        (0xe7109bfba19c0c9d, 853),
        (0xac2820d9623bf429, 880),
        (0x80444b5e7aa7cf85, 907),
        (0xbf21e44003acdd2d, 933),
        (0x8e679c2f5e44ff8f, 960),
        (0xd433179d9c8cb841, 986),
        (0x9e19db92b4e31ba9, 1013),
        (0xeb96bf6ebadf77d9, 1039),
        (0xaf87023b9bf0ee6b, 1066),
    ];
    const FIRST_POWER: i32 = -348;
    const POWER_STEP: i32 = 8;
    /// The window the scaled upper boundary's exponent must fall in.
    const ALPHA: i32 = -60;
    const GAMMA: i32 = -32;

    const POWERS_OF_TEN_U64: [u64; 20] = {
        let mut table = [1u64; 20];
        let mut i = 1;
        while i < 20 {
            table[i] = table[i - 1] * 10;
            i += 1;
        }
        table
    };

    fn decompose(d: f64) -> Fp {
        let bits = d.to_bits();
        let fraction = bits & FRACTION_MASK;
        let biased = ((bits >> 52) & 0x7FF) as i32;
        if biased != 0 {
            Fp { f: fraction + HIDDEN_BIT, e: biased - EXPONENT_BIAS }
        } else {
            Fp { f: fraction, e: 1 - EXPONENT_BIAS }
        }
    }

    fn normalize(mut fp: Fp) -> Fp {
        while fp.f & HIDDEN_BIT == 0 {
            fp.f <<= 1;
            fp.e -= 1;
        }
        Fp { f: fp.f << 11, e: fp.e - 11 }
    }

    /// The midpoints to the neighbouring doubles, on a common exponent.
    fn boundaries(fp: Fp) -> (Fp, Fp) {
        let mut upper = Fp { f: (fp.f << 1) + 1, e: fp.e - 1 };
        while upper.f & (HIDDEN_BIT << 1) == 0 {
            upper.f <<= 1;
            upper.e -= 1;
        }
        upper.f <<= 10;
        upper.e -= 10;
        // The gap below a power of two is half the gap above it.
        let shift = if fp.f == HIDDEN_BIT { 2 } else { 1 };
        let mut lower = Fp { f: (fp.f << shift) - 1, e: fp.e - shift };
        lower.f <<= lower.e - upper.e;
        lower.e = upper.e;
        (lower, upper)
    }

    /// The high 64 bits of the product, rounded half up.
    fn multiply(a: Fp, b: Fp) -> Fp {
        let product = a.f as u128 * b.f as u128;
        Fp { f: ((product + (1u128 << 63)) >> 64) as u64, e: a.e + b.e + 64 }
    }

    /// The cached power that brings a number of binary exponent `e` into
    /// the window, and its decimal exponent.
    fn cached_power(e: i32) -> (Fp, i32) {
        let estimate = (-(e + POWERS_OF_TEN.len() as i32) as f64 * 0.301_029_995_663_981_14) as i32;
        let mut index = (estimate - FIRST_POWER) / POWER_STEP;
        loop {
            let Some(&(f, pe)) = usize::try_from(index).ok().and_then(|i| POWERS_OF_TEN.get(i)) else {
                // Unreachable for finite doubles; fall back to the nearest end.
                let i = index.clamp(0, POWERS_OF_TEN.len() as i32 - 1);
                let (f, pe) = POWERS_OF_TEN[i as usize];
                return (Fp { f, e: pe }, FIRST_POWER + i * POWER_STEP);
            };
            let scaled = e + pe + 64;
            if scaled < ALPHA {
                index += 1;
            } else if scaled > GAMMA {
                index -= 1;
            } else {
                return (Fp { f, e: pe }, FIRST_POWER + index * POWER_STEP);
            }
        }
    }

    /// Moves the last digit down while that brings it closer to the exact
    /// value and keeps it inside the boundaries.
    fn round_last_digit(digits: &mut [u8], delta: u64, mut rest: u64, ten_kappa: u64, distance: u64) {
        let Some(last) = digits.last_mut() else { return };
        while rest < distance
            && delta.wrapping_sub(rest) >= ten_kappa
            && (rest.wrapping_add(ten_kappa) < distance
                || distance.wrapping_sub(rest) > rest.wrapping_add(ten_kappa).wrapping_sub(distance))
        {
            *last -= 1;
            rest = rest.wrapping_add(ten_kappa);
        }
    }

    /// Generates the digits of the scaled upper boundary until they are
    /// within `delta` of it. Returns the digit count; `k` gets the decimal
    /// exponent of the last digit added.
    fn generate(w: Fp, upper: Fp, lower: Fp, digits: &mut [u8; 18], k: &mut i32) -> usize {
        let distance = upper.f.wrapping_sub(w.f);
        let mut delta = upper.f.wrapping_sub(lower.f);
        let shift = -upper.e as u32;
        let one = 1u64 << shift;
        let mut integral = upper.f >> shift;
        let mut fractional = upper.f & (one - 1);
        let mut count = 0;
        let mut kappa = 10;
        while kappa > 0 {
            let divisor = POWERS_OF_TEN_U64[kappa as usize - 1];
            let digit = integral / divisor;
            if digit != 0 || count != 0 {
                digits[count] = b'0' + digit as u8;
                count += 1;
            }
            integral -= digit * divisor;
            kappa -= 1;
            let rest = (integral << shift).wrapping_add(fractional);
            if rest <= delta {
                *k += kappa;
                round_last_digit(&mut digits[..count], delta, rest, divisor << shift, distance);
                return count;
            }
        }
        let mut unit = 1;
        loop {
            fractional = fractional.wrapping_mul(10);
            delta = delta.wrapping_mul(10);
            kappa -= 1;
            let digit = fractional >> shift;
            if (digit != 0 || count != 0) && count < digits.len() {
                digits[count] = b'0' + digit as u8;
                count += 1;
            }
            fractional &= one - 1;
            if fractional < delta {
                *k += kappa;
                round_last_digit(
                    &mut digits[..count],
                    delta,
                    fractional,
                    one,
                    distance.wrapping_mul(POWERS_OF_TEN_U64[unit]),
                );
                return count;
            }
            unit += 1;
        }
    }

    /// The digits and the decimal exponent of their last digit.
    fn digits_of(d: f64, digits: &mut [u8; 18]) -> (usize, i32) {
        let w = decompose(d);
        let (lower, upper) = boundaries(w);
        let w = normalize(w);
        let (power, decimal_exponent) = cached_power(upper.e);
        let w = multiply(w, power);
        let mut upper = multiply(upper, power);
        let mut lower = multiply(lower, power);
        lower.f += 1;
        upper.f -= 1;
        let mut k = -decimal_exponent;
        let count = generate(w, upper, lower, digits, &mut k);
        (count, k)
    }

    /// Writes a finite, non-zero double the way fpconv lays its digits out.
    pub(super) fn write(d: f64, out: &mut DoubleText) {
        let negative = d.is_sign_negative();
        if negative {
            out.push(b'-');
        }
        let mut buf = [0u8; 18];
        let (count, k) = digits_of(d.abs(), &mut buf);
        let digits = &buf[..count];
        let ndigits = count as i32;
        let exponent = (k + ndigits - 1).abs();
        if k >= 0 && exponent < ndigits + 7 {
            // An integer: the digits and k zeros.
            out.push_all(digits);
            for _ in 0..k {
                out.push(b'0');
            }
            return;
        }
        if k < 0 && (k > -7 || exponent < 4) {
            let point = ndigits + k;
            if point <= 0 {
                out.push_all(b"0.");
                for _ in 0..-point {
                    out.push(b'0');
                }
                out.push_all(digits);
            } else {
                out.push_all(&digits[..point as usize]);
                out.push(b'.');
                out.push_all(&digits[point as usize..]);
            }
            return;
        }
        let shown = count.min(18 - negative as usize);
        out.push(digits[0]);
        if shown > 1 {
            out.push(b'.');
            out.push_all(&digits[1..shown]);
        }
        out.push(b'e');
        out.push(if k + shown as i32 - 1 < 0 { b'-' } else { b'+' });
        let mut rest = exponent;
        let hundreds = rest / 100;
        if rest > 99 {
            out.push(b'0' + hundreds as u8);
            rest -= hundreds * 100;
        }
        if rest > 9 {
            let tens = rest / 10;
            out.push(b'0' + tens as u8);
            rest -= tens * 10;
        } else if hundreds > 0 {
            out.push(b'0');
        }
        out.push(b'0' + (rest % 10) as u8);
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// What C's `strtod` makes of the start of a text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Strtod {
    pub value: f64,
    /// Bytes read; 0 when the text does not start with a number.
    pub consumed: usize,
    /// `errno == ERANGE`: the number overflowed to infinity or underflowed
    /// to zero (or to a subnormal).
    pub out_of_range: bool,
}

fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Reads the longest prefix of `text` that glibc's `strtod` accepts (in the
/// C locale): blanks, a sign, then "inf", "infinity", "nan", "nan(...)", a
/// hexadecimal number ("0x1.8p3") or a decimal one ("1.5e-3", ".5", "5.").
pub fn strtod(text: &[u8]) -> Strtod {
    let none = Strtod { value: 0.0, consumed: 0, out_of_range: false };
    let mut i = text.iter().position(|&c| !is_c_space(c)).unwrap_or(text.len());
    let negative = match text.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let signed = |v: f64| if negative { -v } else { v };
    let rest = &text[i..];
    let starts_with = |word: &[u8]| rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word);
    if starts_with(b"infinity") {
        return Strtod { value: signed(f64::INFINITY), consumed: i + 8, out_of_range: false };
    }
    if starts_with(b"inf") {
        return Strtod { value: signed(f64::INFINITY), consumed: i + 3, out_of_range: false };
    }
    if starts_with(b"nan") {
        let mut end = i + 3;
        // "nan(chars)" takes the parenthesis only when it is closed.
        if text.get(end) == Some(&b'(') {
            let inner = text[end + 1..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
            if text.get(end + 1 + inner) == Some(&b')') {
                end += inner + 2;
            }
        }
        return Strtod { value: f64::NAN, consumed: end, out_of_range: false };
    }
    let hex = rest.len() > 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x';
    if hex {
        if let Some(parsed) = hexadecimal(&rest[2..]) {
            return Strtod {
                value: signed(parsed.value),
                consumed: i + 2 + parsed.consumed,
                out_of_range: parsed.out_of_range,
            };
        }
        // "0x" with no hex digit after it: only the "0" is a number.
    }
    match decimal(rest) {
        Some(parsed) => Strtod { value: signed(parsed.value), consumed: i + parsed.consumed, ..parsed },
        None => none,
    }
}

/// A decimal number at the start of `text` (no sign, no blanks).
fn decimal(text: &[u8]) -> Option<Strtod> {
    let digits_from = |start: usize| text[start..].iter().take_while(|c| c.is_ascii_digit()).count();
    let integer_digits = digits_from(0);
    let mut end = integer_digits;
    let mut fraction_digits = 0;
    if text.get(end) == Some(&b'.') {
        fraction_digits = digits_from(end + 1);
        if integer_digits + fraction_digits > 0 {
            end += 1 + fraction_digits;
        }
    }
    if integer_digits + fraction_digits == 0 {
        return None;
    }
    let mantissa_end = end;
    if matches!(text.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(text.get(end + 1), Some(b'+' | b'-')));
        let exponent_digits = digits_from(end + 1 + sign);
        if exponent_digits > 0 {
            end += 1 + sign + exponent_digits;
        }
    }
    let literal = std::str::from_utf8(&text[..end]).ok()?;
    // The grammar checked above is a subset of what Rust's (correctly
    // rounding) parser accepts.
    let value: f64 = literal.parse().ok()?;
    let nonzero_mantissa = text[..mantissa_end].iter().any(|c| (b'1'..=b'9').contains(c));
    let out_of_range = value.is_infinite() || (value == 0.0 && nonzero_mantissa) || value.is_subnormal();
    Some(Strtod { value, consumed: end, out_of_range })
}

/// A hexadecimal number after its "0x" (hex digits with an optional point
/// and an optional binary exponent "p[+-]digits"), correctly rounded.
fn hexadecimal(text: &[u8]) -> Option<Strtod> {
    // Up to 16 significant hex digits are kept; the rest only matter as
    // to whether they are all zero.
    let mut mantissa: u64 = 0;
    let mut significant = 0;
    let mut exponent: i64 = 0;
    let mut sticky = false;
    let mut seen_digit = false;
    let mut seen_point = false;
    let mut end = 0;
    while let Some(&c) = text.get(end) {
        if c == b'.' && !seen_point {
            seen_point = true;
            end += 1;
            continue;
        }
        let Some(digit) = (c as char).to_digit(16) else { break };
        seen_digit = true;
        if significant < 16 {
            if mantissa != 0 || digit != 0 {
                mantissa = mantissa << 4 | digit as u64;
                significant += 1;
            }
            if seen_point {
                exponent -= 4;
            }
        } else {
            sticky |= digit != 0;
            if !seen_point {
                exponent += 4;
            }
        }
        end += 1;
    }
    if !seen_digit {
        return None;
    }
    // A lone trailing point belongs to the number ("0x1." reads as 1).
    if matches!(text.get(end), Some(b'p' | b'P')) {
        let sign_len = usize::from(matches!(text.get(end + 1), Some(b'+' | b'-')));
        let digits: &[u8] = &text[end + 1 + sign_len..];
        let count = digits.iter().take_while(|c| c.is_ascii_digit()).count();
        if count > 0 {
            let magnitude = digits[..count]
                .iter()
                .fold(0i64, |acc, &d| acc.saturating_mul(10).saturating_add((d - b'0') as i64).min(1 << 40));
            exponent += if text[end + 1] == b'-' { -magnitude } else { magnitude };
            end += 1 + sign_len + count;
        }
    }
    let (value, out_of_range) = compose_binary(mantissa, exponent, sticky);
    Some(Strtod { value, consumed: end, out_of_range })
}

/// The double nearest to `mantissa × 2^exponent` (plus a little more when
/// `sticky`), rounding half to even; and whether it overflowed or underflowed.
fn compose_binary(mantissa: u64, exponent: i64, sticky: bool) -> (f64, bool) {
    if mantissa == 0 {
        return (0.0, false);
    }
    let leading = mantissa.leading_zeros() as i64;
    let top = mantissa << leading;
    // The value is 1.xxx × 2^binary_exponent.
    let binary_exponent = exponent - leading + 63;
    if binary_exponent > 1023 {
        return (f64::INFINITY, true);
    }
    // Bits of `top` below the 53 (or fewer, for subnormals) that are kept.
    let dropped: i64 = if binary_exponent >= -1022 { 11 } else { 11 + (-1022 - binary_exponent) };
    if dropped > 64 {
        return (0.0, true);
    }
    let wide = top as u128;
    let kept = (wide >> dropped) as u64;
    let remainder = wide & ((1u128 << dropped) - 1);
    let half = 1u128 << (dropped - 1);
    let round_up = remainder > half || (remainder == half && (sticky || kept & 1 == 1));
    let rounded = kept + u64::from(round_up);
    let inexact = remainder != 0 || sticky;
    if binary_exponent >= -1022 {
        // `rounded` has its top bit at 52, or at 53 after rounding up.
        let (significand, biased) = if rounded >> 53 != 0 {
            (rounded >> 1, binary_exponent + 1 + 1023)
        } else {
            (rounded, binary_exponent + 1023)
        };
        if biased >= 2047 {
            return (f64::INFINITY, true);
        }
        let bits = (biased as u64) << 52 | (significand & 0x000F_FFFF_FFFF_FFFF);
        (f64::from_bits(bits), false)
    } else {
        // A subnormal (or, rounded up, the smallest normal: same bit pattern).
        let value = f64::from_bits(rounded);
        (value, inexact)
    }
}

/// Valkey's strict reading of a double argument (`string2d`): the whole
/// argument must be the number, with no leading blank; NaN and values that
/// overflow to infinity or underflow to zero are refused ("inf" is fine).
pub fn parse(arg: &[u8]) -> Option<f64> {
    if arg.first().is_none_or(|&c| is_c_space(c)) {
        return None;
    }
    let read = strtod(arg);
    if read.consumed != arg.len() || read.value.is_nan() {
        return None;
    }
    if read.out_of_range && (read.value.is_infinite() || read.value == 0.0) {
        return None;
    }
    Some(read.value)
}

/// Valkey's lenient reading, as used for score range bounds: `strtod`
/// over the argument as a C string (up to its first NUL) must read all of
/// it. Blanks before the number, overflow to infinity and the empty text
/// (read as 0) pass; NaN does not.
pub fn parse_lenient(arg: &[u8]) -> Option<f64> {
    let text = arg.split(|&c| c == 0).next().unwrap_or_default();
    let read = strtod(text);
    (read.consumed == text.len() && !read.value.is_nan()).then_some(read.value)
}

/// What `strtod` makes of a whole stored text, ignoring anything it cannot
/// read (Valkey's way of reading scores back from a listpack).
pub fn read_stored(text: &[u8]) -> f64 {
    strtod(text).value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_valkey() {
        // Each pair is what Valkey 8.0.1 answers to ZSCORE after ZADD of the value.
        let cases: &[(f64, &str)] = &[
            (1e20, "1e+20"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (-0.0, "-0"),
            (0.0, "0"),
            (100.0, "100"),
            (1e15, "1000000000000000"),
            (1e16, "10000000000000000"),
            (1e21, "1e+21"),
            (1e-5, "0.00001"),
            (1e-7, "1e-7"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e19, "1e+19"),
            (5e18, "5e+18"),
            (4611686018427387904.0, "4611686018427387904"),
            (2.5e-320, "2.5e-320"),
            (1e-4, "0.0001"),
            (123.456, "123.456"),
            (1e22, "1e+22"),
            (1.5e300, "1.5e+300"),
            (-1.5e-300, "-1.5e-300"),
            (1e-6, "0.000001"),
            (12345678.9, "12345678.9"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (-2.5, "-2.5"),
        ];
        for &(value, text) in cases {
            assert_eq!(format(value).as_str(), text, "{value:e}");
        }
    }

    #[test]
    fn prints_printf_g17() {
        let cases: &[(f64, &str)] = &[
            (0.1, "0.10000000000000001"),
            (1e20, "1e+20"),
            (1.5, "1.5"),
            (1e-5, "1.0000000000000001e-05"),
            (100.0, "100"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (123.456, "123.456"),
            (-0.0, "-0"),
            (5e-324, "4.9406564584124654e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (1e-4, "0.0001"),
            (1.0 / 3.0, "0.33333333333333331"),
            (99999999999999999.0, "1e+17"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for &(value, text) in cases {
            assert_eq!(format_g17(value).as_str(), text, "{value:e}");
        }
    }

    #[test]
    fn strict_parsing() {
        assert_eq!(parse(b"1.5"), Some(1.5));
        assert_eq!(parse(b"0x10"), Some(16.0));
        assert_eq!(parse(b"0x1.8p1"), Some(3.0));
        assert_eq!(parse(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse(b"+Infinity"), Some(f64::INFINITY));
        assert_eq!(parse(b"5e-324"), Some(5e-324));
        assert_eq!(parse(b".5"), Some(0.5));
        assert_eq!(parse(b"5."), Some(5.0));
        assert!(parse(b"-0").unwrap().is_sign_negative());
        for bad in
            [&b""[..], b" 1", b"1 ", b"nan", b"NaN", b"1e400", b"1e-400", b"1e", b"abc", b"1\x002", b"0x", b"inf1"]
        {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn lenient_parsing() {
        assert_eq!(parse_lenient(b""), Some(0.0));
        assert_eq!(parse_lenient(b" 1"), Some(1.0));
        assert_eq!(parse_lenient(b"1e400"), Some(f64::INFINITY));
        assert_eq!(parse_lenient(b"7\x00junk"), Some(7.0));
        assert_eq!(parse_lenient(b"nan"), None);
        assert_eq!(parse_lenient(b"1 "), None);
    }

    #[test]
    fn strtod_prefixes() {
        assert_eq!(strtod(b"12abc").consumed, 2);
        assert_eq!(strtod(b"0x").consumed, 1);
        assert_eq!(strtod(b"1e+").consumed, 1);
        assert_eq!(strtod(b"infinit").consumed, 3);
        assert_eq!(strtod(b"nan(x1)z").consumed, 7);
        assert_eq!(strtod(b"x").consumed, 0);
        assert_eq!(strtod(b"0x1p-1074").value, 5e-324);
        assert_eq!(strtod(b"0x1p-1075").value, 0.0);
        assert_eq!(strtod(b"0x1.8p-1074").value, 1e-323);
        assert_eq!(strtod(b"0x1.fffffffffffff8p1023").value, f64::INFINITY);
        assert_eq!(strtod(b"0x123456789abcdef0123").value, 0x123456789abcdef0123u128 as f64);
    }

    #[test]
    fn printed_values_read_back_exactly() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        for _ in 0..100_000 {
            let value = f64::from_bits(rng.gen());
            if value.is_nan() {
                continue;
            }
            let text = format(value);
            assert_eq!(parse(text.as_bytes()).map(f64::to_bits), Some(value.to_bits()), "{text:?}");
        }
    }
}
