/*
 * printf.c - a small printf to COM1.
 *
 * Supports %s %c %d %i %u %x %p %% with an optional '-' (left-justify) or
 * '0' (zero-pad) flag, a decimal width, and the length modifiers l, ll and z.
 * Everything is integer arithmetic on general registers (no floating point:
 * guests are built with -mgeneral-regs-only).  Unknown conversions are
 * printed verbatim so mistakes show up in the output.
 */
#include "vmrr.h"

struct out {
    int count;
};

static void put(struct out *o, char c)
{
    serial_putc(c);
    o->count++;
}

static void pad(struct out *o, char c, int n)
{
    while (n-- > 0)
        put(o, c);
}

/* Emit `len` chars of `s` padded to `width`. */
static void field(struct out *o, const char *s, int len, int width, int left, char padc)
{
    if (!left) {
        /* keep a leading '-' in front of zero padding: "-0042" */
        if (padc == '0' && len > 0 && s[0] == '-') {
            put(o, '-');
            s++, len--, width--;
        }
        pad(o, padc, width - len);
    }
    for (int i = 0; i < len; i++)
        put(o, s[i]);
    if (left)
        pad(o, ' ', width - len);
}

/* Format v in `base` into the end of buf; returns the start. */
static char *utoa(char *end, uint64_t v, unsigned base)
{
    static const char digits[] = "0123456789abcdef";
    char *p = end;
    do {
        *--p = digits[v % base];
        v /= base;
    } while (v);
    return p;
}

int vprintf(const char *fmt, va_list ap)
{
    struct out o = { 0 };
    char buf[24];   /* 20 digits of UINT64_MAX + sign, rounded up */
    char *end = buf + sizeof(buf);

    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            put(&o, *f);
            continue;
        }
        const char *start = f++;

        int left = 0;
        char padc = ' ';
        for (;; f++) {
            if (*f == '-')
                left = 1;
            else if (*f == '0')
                padc = '0';
            else
                break;
        }
        if (left)
            padc = ' ';

        int width = 0;
        while (*f >= '0' && *f <= '9')
            width = width * 10 + (*f++ - '0');

        int longs = 0;  /* 0: int, 1+: 64-bit (l, ll, z are all 64-bit here) */
        while (*f == 'l' || *f == 'z') {
            longs++;
            f++;
        }

        char *s;
        uint64_t u;
        int64_t d;

        switch (*f) {
        case '%':
            put(&o, '%');
            break;
        case 'c':
            buf[0] = (char)va_arg(ap, int);
            field(&o, buf, 1, width, left, ' ');
            break;
        case 's':
            s = va_arg(ap, char *);
            if (!s)
                s = "(null)";
            field(&o, s, (int)strlen(s), width, left, ' ');
            break;
        case 'd':
        case 'i':
            d = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
            /* negate in unsigned arithmetic so INT64_MIN works */
            s = utoa(end, d < 0 ? -(uint64_t)d : (uint64_t)d, 10);
            if (d < 0)
                *--s = '-';
            field(&o, s, (int)(end - s), width, left, padc);
            break;
        case 'u':
        case 'x':
            u = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int);
            s = utoa(end, u, *f == 'u' ? 10 : 16);
            field(&o, s, (int)(end - s), width, left, padc);
            break;
        case 'p':
            u = (uint64_t)va_arg(ap, void *);
            s = utoa(end, u, 16);
            *--s = 'x';
            *--s = '0';
            field(&o, s, (int)(end - s), width, left, ' ');
            break;
        case '\0':
            f--;    /* lone '%' at the end: print it and stop */
            /* fall through */
        default:
            for (const char *p = start; p <= f; p++)
                put(&o, *p);
            break;
        }
    }
    return o.count;
}

int printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}
