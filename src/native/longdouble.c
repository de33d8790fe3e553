/*
 * Decimal arithmetic in C's `long double` for ferrokey.
 *
 * INCRBYFLOAT and HINCRBYFLOAT must print exactly what Valkey prints, and
 * Valkey computes them in `long double` (80-bit extended precision on
 * x86-64), which Rust has no type for. These few functions do the parsing,
 * the addition and the formatting in C so the rounding is the same.
 *
 * Text accepted as a number: what strtold() reads, consuming every byte,
 * with no leading blank, not NaN, not out of range (a result that
 * overflowed to infinity or underflowed to zero). "inf" is accepted as
 * text; a sum that is not finite is refused separately.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longer texts are refused outright (the server's own bound, which also
 * leaves room for the widest "%.17Lf" output of any finite long double). */
#define LD_TEXT_LIMIT 5120

/* Results of ferrokey_ld_add(), besides a length >= 0. */
#define LD_BAD_FIRST (-1)
#define LD_BAD_SECOND (-2)
#define LD_NOT_FINITE (-3)
#define LD_NO_ROOM (-4)

static int parse_strict(const char *text, size_t len, long double *out) {
    char buf[LD_TEXT_LIMIT];
    char *end;
    long double v;

    if (len == 0 || len >= sizeof(buf)) return 0;
    memcpy(buf, text, len);
    buf[len] = '\0';
    /* strtold would skip blanks silently; the server does not allow them. */
    if (isspace((unsigned char)buf[0])) return 0;

    errno = 0;
    v = strtold(buf, &end);
    /* Every byte must be part of the number (a NUL inside stops strtold
     * early, so it is refused here too). */
    if ((size_t)(end - buf) != len) return 0;
    if (errno == EINVAL || isnan(v)) return 0;
    if (errno == ERANGE && (isinf(v) || v == 0.0L)) return 0;
    *out = v;
    return 1;
}

/* Writes `v` with 17 decimals, then drops trailing zeros (and a bare
 * point), and turns "-0" into "0". Returns the length, or LD_NO_ROOM. */
static int format_human(long double v, char *out, size_t outlen) {
    int n = snprintf(out, outlen, "%.17Lf", v);
    if (n < 0 || (size_t)n >= outlen) return LD_NO_ROOM;
    if (memchr(out, '.', (size_t)n) != NULL) {
        while (out[n - 1] == '0') n--;
        if (out[n - 1] == '.') n--;
    }
    if (n == 2 && out[0] == '-' && out[1] == '0') {
        out[0] = '0';
        n = 1;
    }
    out[n] = '\0';
    return n;
}

/* Parses `a` and `b`, adds them and formats the sum into `out`.
 * Returns the sum's length, or LD_BAD_FIRST / LD_BAD_SECOND when that
 * text is not a number, LD_NOT_FINITE when the sum is NaN or infinite,
 * LD_NO_ROOM when `out` is too small. */
int ferrokey_ld_add(const char *a, size_t alen, const char *b, size_t blen, char *out, size_t outlen) {
    long double x, y, sum;
    if (!parse_strict(a, alen, &x)) return LD_BAD_FIRST;
    if (!parse_strict(b, blen, &y)) return LD_BAD_SECOND;
    sum = x + y;
    if (isnan(sum) || isinf(sum)) return LD_NOT_FINITE;
    return format_human(sum, out, outlen);
}

/* 1 when `text` is a finite number, 2 when it is an infinity, 0 when it
 * is not a number at all. */
int ferrokey_ld_classify(const char *text, size_t len) {
    long double v;
    if (!parse_strict(text, len, &v)) return 0;
    return isinf(v) ? 2 : 1;
}
