/*
 * lwip_kit.h - lwIP's TCP/IP on the guest kit's virtio-net card.
 *
 * A program that uses lwIP (raw API, NO_SYS=1) does:
 *
 *     if (lwipkit_init() < 0)        // card, PIT at 100 Hz, lwIP, netif up
 *         return 2;
 *     ... tcp_new(), tcp_connect()/tcp_listen(), callbacks ...
 *     for (;;) {
 *         lwipkit_poll();            // frames -> lwIP, lwIP's timers
 *         ... the program's own timers; break when done ...
 *         lwipkit_idle();            // sleep until the next frame or tick
 *     }
 *
 * Everything runs in the main loop with interrupts off, except the
 * `sti; hlt` in lwipkit_idle(); interrupt handlers never touch lwIP (the
 * tick handler counts, the card's handler acknowledges).  So lwIP needs no
 * locking, and under vmrr an idle guest costs nothing until its next tick.
 *
 * Node N (cmdline `id=N`, as for kit/net.c) has MAC 52:54:00:12:34:<N+1>
 * and the static address 10.0.0.<N+1>/24; there is no gateway.
 *
 * Markers emitted by the port (kit/vmrr.h marker(); the value is relative
 * to the connection's initial sequence number, as Wireshark shows it):
 *   tcp-rexmit   this node sends a TCP segment again (its sequence number)
 *   tcp-dupack   this node sends a duplicate ACK (the acknowledged number)
 *   lwip-assert  an lwIP assertion failed (the line); the guest exits 63
 * The same events are printed on the console ("lwip: ...") unless the
 * command line says tcplog=0.
 */
#ifndef VMRR_LWIP_KIT_H
#define VMRR_LWIP_KIT_H

#include "vmrr.h"
#include "lwip/ip4_addr.h"
#include "lwip/netif.h"

/* The PIT period once lwipkit_init() has run: 10 ms (100 Hz).  sys_now()
 * and lwipkit_now() count milliseconds in steps of this. */
#define LWIPKIT_TICK_MS 10

/* Exit code of a guest whose lwIP assertion failed. */
#define LWIPKIT_EXIT_ASSERT 63

/*
 * net_init() (the card, node id), the PIT at 100 Hz, lwip_init(), and the
 * netif with this node's address, up and default.  Prints one line:
 *     lwip: node 1 is 10.0.0.2/24 (lwIP 2.1.3, mac 52:54:00:12:34:02)
 * Returns 0, or -1 when there is no card (net_init() printed why).
 */
int lwipkit_init(void);

struct netif *lwipkit_netif(void);

/* The IPv4 address of node `node`: 10.0.0.<node+1>. */
void lwipkit_node_ip(int node, ip4_addr_t *ip);

/* The node an address belongs to, or -1. */
int lwipkit_ip_node(const ip4_addr_t *ip);

/*
 * Hands every frame the card has received to lwIP (ethernet_input), then
 * runs lwIP's due timers (sys_check_timeouts()).  Call with interrupts
 * off, from the main loop only.
 */
void lwipkit_poll(void);

/*
 * Sleeps until the next interrupt (a frame or a PIT tick), with the atomic
 * `sti; hlt`, and returns with interrupts off again.  A frame that arrived
 * since the last lwipkit_poll() has its interrupt pending and ends the
 * sleep at once (under QEMU, where the card is polled, the next tick does).
 */
void lwipkit_idle(void);

/* Milliseconds since lwipkit_init(), in steps of LWIPKIT_TICK_MS; lwIP's
 * sys_now(). */
uint32_t lwipkit_now(void);

/* The port's TCP watch (tcpwatch.c): looks at each frame this node sends. */
void tcpwatch_frame_out(const uint8_t *frame, size_t len);

#endif
