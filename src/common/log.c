/* Messages on stderr without malloc: formatted on the stack (common/text.c)
 * and written with one write(2). stdio may allocate, and these run inside
 * malloc and free. */
#include <stdarg.h>
#include <stdlib.h>

#include "common/common.h"
#include "os/os.h"

void hs_fd_printf(int fd, const char *fmt, ...)
{
    char buf[1024];
    hs_text_t t = hs_text(buf, sizeof buf);
    va_list ap;
    va_start(ap, fmt);
    hs_text_vformat(&t, fmt, ap);
    va_end(ap);
    os_write_all(fd, buf, hs_text_length(&t));
}

/* "hugeslab: " + the message + newline, in one write(2). */
static void message_line(const char *fmt, va_list ap)
{
    char buf[1024];
    /* One byte kept for the newline: a cut message still ends its line. */
    hs_text_t t = hs_text(buf, sizeof buf - 1);
    hs_text_str(&t, "hugeslab: ");
    hs_text_vformat(&t, fmt, ap);
    size_t len = hs_text_length(&t);
    buf[len] = '\n';
    os_write_all(2, buf, len + 1);
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
