/*
 * stdlib.c - the C library functions lwIP's core needs beyond kit/string.c:
 * only atoi() (netif_find() parses interface names such as "vn0").  lwIP is
 * compiled against lwip-port/include/{string,stdlib}.h, which declare the
 * kit's functions and nothing else.
 *
 * Linked only into images that use lwIP (KIT_OPT_SRCS in the Makefile):
 * the other images keep exactly the layout they had, so addresses in their
 * recorded traces and the tests' snapshots stay valid.
 */
#include "vmrr.h"

int atoi(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    int neg = *s == '-';
    if (*s == '-' || *s == '+')
        s++;
    /* Accumulate negatively so that INT_MIN parses without overflow. */
    int v = 0;
    while (*s >= '0' && *s <= '9')
        v = v * 10 - (*s++ - '0');
    return neg ? v : -v;
}
