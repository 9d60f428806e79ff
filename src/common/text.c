/* Text without malloc: the one formatter (hs_text_*, and the small printf
 * of messages and statistics) and the one decimal parser. Pure functions of
 * their arguments; no system call, so every module may use them. */
#include <stdarg.h>

#include "common/common.h"

void hs_text_char(hs_text_t *t, char c)
{
    if (t->len + 1 < t->cap) {
        t->buf[t->len] = c;
        t->buf[t->len + 1] = '\0';
    }
    t->len++;
}

void hs_text_str(hs_text_t *t, const char *s)
{
    if (!s) s = "(null)";
    while (*s) hs_text_char(t, *s++);
}

static void text_unsigned(hs_text_t *t, unsigned long long v, unsigned base)
{
    char digits[24];
    int n = 0;
    do {
        unsigned d = (unsigned)(v % base);
        digits[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v);
    while (n) hs_text_char(t, digits[--n]);
}

void hs_text_uint(hs_text_t *t, unsigned long long v) { text_unsigned(t, v, 10); }

HS_SELDOM void hs_text_int(hs_text_t *t, long long v)
{
    if (v < 0) {
        hs_text_char(t, '-');
        text_unsigned(t, (unsigned long long)(-(v + 1)) + 1, 10);
    } else {
        text_unsigned(t, (unsigned long long)v, 10);
    }
}

HS_SELDOM void hs_text_vformat(hs_text_t *t, const char *fmt, va_list ap)
{
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            hs_text_char(t, *f);
            continue;
        }
        f++;
        int longs = 0, size_t_arg = 0;
        while (*f == 'l') {
            longs++;
            f++;
        }
        if (*f == 'z') {
            size_t_arg = 1;
            f++;
        }
        switch (*f) {
        case 's':
            hs_text_str(t, va_arg(ap, const char *));
            break;
        case 'd':
            if (size_t_arg)
                hs_text_int(t, va_arg(ap, ptrdiff_t));
            else if (longs)
                hs_text_int(t, va_arg(ap, long long));
            else
                hs_text_int(t, va_arg(ap, int));
            break;
        case 'u':
        case 'x': {
            unsigned base = *f == 'x' ? 16 : 10;
            if (size_t_arg)
                text_unsigned(t, va_arg(ap, size_t), base);
            else if (longs)
                text_unsigned(t, va_arg(ap, unsigned long long), base);
            else
                text_unsigned(t, va_arg(ap, unsigned), base);
            break;
        }
        case 'p':
            hs_text_str(t, "0x");
            text_unsigned(t, (uintptr_t)va_arg(ap, void *), 16);
            break;
        case '%':
            hs_text_char(t, '%');
            break;
        case '\0':
            f--;
            break;
        default:
            hs_text_char(t, '%');
            hs_text_char(t, *f);
            break;
        }
    }
}

HS_SELDOM void hs_text_format(hs_text_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hs_text_vformat(t, fmt, ap);
    va_end(ap);
}

const char *hs_parse_u64(const char *s, const char *end, uint64_t *out)
{
    const char *p = s;
    uint64_t v = 0;
    while ((!end || p < end) && *p >= '0' && *p <= '9') {
        unsigned digit = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - digit) / 10) return NULL;
        v = v * 10 + digit;
        p++;
    }
    if (p == s) return NULL;
    *out = v;
    return p;
}
