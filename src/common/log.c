/* Messages on stderr without malloc: formatted on the stack (common/text.c)
 * and written with one write(2). stdio may allocate, and these run inside
 * malloc and free. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

#include "common/common.h"
#include "os/os.h"

HS_SELDOM void hs_fd_printf(int fd, const char *fmt, ...)
{
    char buf[1024];
    hs_text_t t = hs_text(buf, sizeof buf);
    va_list ap;
    va_start(ap, fmt);
    hs_text_vformat(&t, fmt, ap);
    va_end(ap);
    os_write_all(fd, buf, hs_text_length(&t));
}

HS_START_STATE static bool tag_with_process; /* HUGESLAB_VERBOSE=1: messages name the process */

void hs_message_tag_process(bool on) { tag_with_process = on; }

/* "hugeslab: " (with HUGESLAB_VERBOSE=1 "hugeslab[pid program]: ") + the
 * message + newline, in one write(2). */
HS_SELDOM static void message_line(const char *fmt, va_list ap)
{
    char buf[1024];
    /* One byte kept for the newline: a cut message still ends its line. */
    hs_text_t t = hs_text(buf, sizeof buf - 1);
    hs_text_str(&t, "hugeslab");
    /* Under a wrapper script every child process talks: say which one. */
    if (tag_with_process) hs_text_format(&t, "[%d %s]", os_pid(), hs_program_name());
    hs_text_str(&t, ": ");
    hs_text_vformat(&t, fmt, ap);
    size_t len = hs_text_length(&t);
    buf[len] = '\n';
    os_write_all(2, buf, len + 1);
}

HS_SELDOM const char *hs_program_name(void)
{
    const char *name = program_invocation_short_name;
    return name && *name ? name : "?";
}

HS_SELDOM void hs_message(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    message_line(fmt, ap);
    va_end(ap);
}

HS_SELDOM void hs_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    message_line(fmt, ap);
    va_end(ap);
    abort();
}

HS_SELDOM void hs_assert_fail(const char *cond, const char *file, int line, const char *func)
{
    hs_fatal("assertion failed: %s (%s:%d, %s)", cond, file, line, func);
}
