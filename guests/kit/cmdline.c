/*
 * cmdline.c - the kernel command line from hvm_start_info.cmdline_paddr.
 *
 * The first 1 GiB is identity-mapped, so the physical address the VMM gives
 * is directly usable as a pointer.  Tokens are separated by spaces or tabs;
 * only `key=N` tokens are interpreted (N decimal, or hex with 0x/0X).
 */
#include "vmrr.h"

#define IDENTITY_LIMIT (1ull << 30)

const char *cmdline(void)
{
    struct hvm_start_info *si = vmrr_start_info;
    if (!si || si->cmdline_paddr == 0 || si->cmdline_paddr >= IDENTITY_LIMIT)
        return "";
    return (const char *)(uintptr_t)si->cmdline_paddr;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int digit_value(char c, unsigned base)
{
    unsigned v;
    if (c >= '0' && c <= '9')
        v = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
        v = (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
        v = (unsigned)(c - 'A' + 10);
    else
        return -1;
    return v < base ? (int)v : -1;
}

/* Parse the whole token [p, end) as a number; 0 on success. */
static int parse_u64(const char *p, const char *end, uint64_t *out)
{
    unsigned base = 10;
    if (end - p > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    }
    if (p == end)
        return -1;
    uint64_t v = 0;
    for (; p < end; p++) {
        int d = digit_value(*p, base);
        if (d < 0)
            return -1;
        v = v * base + (unsigned)d;
    }
    *out = v;
    return 0;
}

uint64_t cmdline_get_u64(const char *key, uint64_t dflt)
{
    size_t klen = strlen(key);
    const char *p = cmdline();

    while (*p) {
        while (is_space(*p))
            p++;
        const char *tok = p;
        while (*p && !is_space(*p))
            p++;
        /* token is [tok, p) */
        if ((size_t)(p - tok) > klen && strncmp(tok, key, klen) == 0 && tok[klen] == '=') {
            uint64_t v;
            return parse_u64(tok + klen + 1, p, &v) == 0 ? v : dflt;
        }
    }
    return dflt;
}
