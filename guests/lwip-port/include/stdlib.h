/*
 * stdlib.h for lwIP in the guest kit (see string.h next to it).  lwIP's
 * core uses only atoi() from it (netif_find() parses "vn0"; kit/stdlib.c
 * provides it).  There is no malloc: lwIP keeps its heap and pools in static memory (lwipopts.h).
 */
#ifndef VMRR_LWIP_STDLIB_H
#define VMRR_LWIP_STDLIB_H

int atoi(const char *s);

#endif
