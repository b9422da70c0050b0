/*
 * arch/cc.h - what lwIP needs to know about the compiler and the platform,
 * for the vmrr guest kit: gcc, x86-64 little-endian, freestanding, ring 0,
 * no C library beyond the kit's (kit/string.c, kit/printf.c).
 *
 * lwIP is compiled with -nostdinc: the only system headers are gcc's own
 * freestanding ones (stddef.h, stdint.h, stdarg.h); string.h and
 * stdlib.h come from lwip-port/include and name the kit's functions.  So
 * nothing of the host's libc can slip into a guest.
 */
#ifndef VMRR_LWIP_ARCH_CC_H
#define VMRR_LWIP_ARCH_CC_H

#include <stddef.h>
#include <stdint.h>

#define BYTE_ORDER LITTLE_ENDIAN

/* No inttypes.h in a freestanding gcc: give lwIP its printf formats
 * ourselves, in the subset the kit's printf understands (no %hu/%hhx). */
#define LWIP_NO_INTTYPES_H 1
#define X8_F  "02x"
#define U16_F "u"
#define S16_F "d"
#define X16_F "x"
#define U32_F "u"
#define S32_F "d"
#define X32_F "x"
#define SZT_F "lu"

/* No ctype.h either: lwIP then uses its own isdigit() & co. macros. */
#define LWIP_NO_CTYPE_H 1
/* gcc's own limits.h forwards to the C library's (#include_next), which
 * -nostdinc hides.  lwIP's core needs only INT_MAX from it (for ssize_t,
 * which it then typedefs itself as int, never looking for unistd.h). */
#define LWIP_NO_LIMITS_H 1
#define INT_MAX __INT_MAX__

/* Diagnostics go to COM1 through the kit's printf; a failed assertion is a
 * bug in the guest (or in lwIP): say where, emit a marker the trace index
 * can find, and stop the VM with a distinctive exit code. */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lwipkit_assert_failed(const char *msg, int line, const char *file)
    __attribute__((noreturn));
#define LWIP_PLATFORM_DIAG(x) do { printf x; } while (0)
#define LWIP_PLATFORM_ASSERT(x) lwipkit_assert_failed((x), __LINE__, __FILE__)

/* Random numbers (initial local ports, TCP initial sequence numbers) come
 * from rdrand, which vmrr answers from its seeded generator: see
 * kit_rand32() in kit/random.c. */
uint32_t kit_rand32(void);
#define LWIP_RAND() ((u32_t)kit_rand32())

/* Structure packing: gcc attributes around lwIP's protocol headers. */
#define PACK_STRUCT_STRUCT __attribute__((packed))

#endif
