/*
 * string.h for lwIP in the guest kit: lwIP is compiled with -nostdinc, and
 * this names the kit's own implementations (kit/string.c), nothing else.
 */
#ifndef VMRR_LWIP_STRING_H
#define VMRR_LWIP_STRING_H

#include <stddef.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

#endif
