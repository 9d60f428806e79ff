/* Messages on stderr without malloc: a tiny formatter into a stack buffer.
 * stdio may allocate, and these run inside malloc and free. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/common.h"

typedef struct out_buf_s {
    char *p;   /* next byte to write */
    char *end; /* one past the last usable byte (one is kept for the NUL) */
} out_buf_t;

static void put_char(out_buf_t *b, char c)
{
    if (b->p < b->end) *b->p++ = c;
}

static void put_str(out_buf_t *b, const char *s)
{
    if (!s) s = "(null)";
    while (*s) put_char(b, *s++);
}

static void put_unsigned(out_buf_t *b, unsigned long long v, unsigned base)
{
    char digits[24];
    int n = 0;
    do {
        unsigned d = (unsigned)(v % base);
        digits[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v);
    while (n) put_char(b, digits[--n]);
}

static void put_signed(out_buf_t *b, long long v)
{
    if (v < 0) {
        put_char(b, '-');
        put_unsigned(b, (unsigned long long)(-(v + 1)) + 1, 10);
    } else {
        put_unsigned(b, (unsigned long long)v, 10);
    }
}

static size_t format(char *buf, size_t cap, const char *fmt, va_list ap)
{
    out_buf_t b = {buf, buf + cap - 1};
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            put_char(&b, *f);
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
            put_str(&b, va_arg(ap, const char *));
            break;
        case 'd':
            if (size_t_arg)
                put_signed(&b, va_arg(ap, ptrdiff_t));
            else if (longs)
                put_signed(&b, va_arg(ap, long long));
            else
                put_signed(&b, va_arg(ap, int));
            break;
        case 'u':
        case 'x': {
            unsigned base = *f == 'x' ? 16 : 10;
            if (size_t_arg)
                put_unsigned(&b, va_arg(ap, size_t), base);
            else if (longs)
                put_unsigned(&b, va_arg(ap, unsigned long long), base);
            else
                put_unsigned(&b, va_arg(ap, unsigned), base);
            break;
        }
        case 'p':
            put_str(&b, "0x");
            put_unsigned(&b, (uintptr_t)va_arg(ap, void *), 16);
            break;
        case '%':
            put_char(&b, '%');
            break;
        case '\0':
            f--;
            break;
        default:
            put_char(&b, '%');
            put_char(&b, *f);
            break;
        }
    }
    *b.p = '\0';
    return (size_t)(b.p - buf);
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n <= 0) return;
        buf += n;
        len -= (size_t)n;
    }
}

size_t hs_read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return (size_t)-1;
    size_t len = 0;
    ssize_t n;
    while (len < cap - 1) {
        n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return len;
}

void hs_fd_printf(int fd, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    size_t len = format(buf, sizeof buf, fmt, ap);
    va_end(ap);
    write_all(fd, buf, len);
}

/* "hugeslab: " + the message + newline, in one write(2). */
static void message_line(const char *fmt, va_list ap)
{
    char buf[1024] = "hugeslab: ";
    size_t head = 10;
    size_t len = format(buf + head, sizeof buf - head - 1, fmt, ap);
    buf[head + len] = '\n';
    write_all(2, buf, head + len + 1);
}

void hs_message(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    message_line(fmt, ap);
    va_end(ap);
}

void hs_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    message_line(fmt, ap);
    va_end(ap);
    abort();
}

void hs_assert_fail(const char *cond, const char *file, int line, const char *func)
{
    hs_fatal("assertion failed: %s (%s:%d, %s)", cond, file, line, func);
}
