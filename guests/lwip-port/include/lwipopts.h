/*
 * lwipopts.h - lwIP's configuration for the vmrr guest kit.
 *
 * lwIP 2.1 (Debian's source package, fetched by guests/fetch-lwip.sh) runs
 * here as a bare-metal stack: one thread of control, no OS, no interrupts
 * touching it.  The guest's main loop polls the virtio-net card and lwIP's
 * timers (lwip_kit.h), and programs use the raw (callback) API.  Every
 * option not set here keeps lwIP's default from lwip/opt.h.
 */
#ifndef VMRR_LWIPOPTS_H
#define VMRR_LWIPOPTS_H

/* ---- system: none -------------------------------------------------- */

/* No threads, semaphores or mailboxes: the raw API only, driven by
 * lwipkit_poll().  Hence no sockets and no netconn (they need threads). */
#define NO_SYS                  1
#define LWIP_SOCKET             0
#define LWIP_NETCONN            0
/* Nothing calls into lwIP from an interrupt handler (the card's handler
 * only acknowledges; frames are taken from the ring by the main loop), so
 * lwIP needs no critical sections. */
#define SYS_LIGHTWEIGHT_PROT    0

/* ---- memory: small and static ---------------------------------------
 * Everything lives in lwIP's own pools and heap in .bss (no malloc).  The
 * demos exchange a few short text lines over a handful of connections:
 * 16 KiB of heap and 16 pool pbufs are plenty, and a small .bss keeps boot
 * (zeroing .bss) cheap. */
#define MEM_ALIGNMENT           8
#define MEM_SIZE                (16 * 1024)
#define MEMP_NUM_PBUF           16
#define PBUF_POOL_SIZE          16
#define MEMP_NUM_UDP_PCB        2
#define MEMP_NUM_TCP_PCB        8       /* a few connections, plus aborted attempts */
#define MEMP_NUM_TCP_PCB_LISTEN 2
#define MEMP_NUM_TCP_SEG        32
#define MEMP_NUM_ARP_QUEUE      8

/* ---- protocols: Ethernet, ARP, IPv4, ICMP, UDP, TCP ------------------ */

#define LWIP_ETHERNET           1
#define LWIP_ARP                1
#define LWIP_IPV4               1
#define LWIP_IPV6               0
#define LWIP_ICMP               1       /* answers ping; port unreachable */
#define LWIP_UDP                1
#define LWIP_TCP                1
#define LWIP_RAW                0
#define LWIP_DHCP               0       /* static addresses: 10.0.0.<id+1>/24 */
#define LWIP_AUTOIP             0
#define LWIP_IGMP               0
#define LWIP_DNS                0
#define LWIP_ALTCP              0
#define IP_REASSEMBLY           0       /* every frame is far below the MTU */
#define IP_FRAG                 0
#define LWIP_SINGLE_NETIF       1
#define LWIP_NETIF_LOOPBACK     0
#define LWIP_HAVE_LOOPIF        0
/* Keep the frames a pending ARP lookup holds back (one per destination is
 * lwIP's default); a client's first request must not vanish silently. */
#define ARP_QUEUEING            1

/* Checksums are computed and checked in software, like a card without
 * offload (virtio-net features CSUM/GUEST_CSUM are not negotiated). These
 * are lwIP's defaults; stated here because the driver relies on them. */
#define CHECKSUM_GEN_IP         1
#define CHECKSUM_GEN_UDP        1
#define CHECKSUM_GEN_TCP        1
#define CHECKSUM_GEN_ICMP       1
#define CHECKSUM_CHECK_IP       1
#define CHECKSUM_CHECK_UDP      1
#define CHECKSUM_CHECK_TCP      1
#define CHECKSUM_CHECK_ICMP     1

/* ---- TCP --------------------------------------------------------------- */

#define TCP_MSS                 536     /* lwIP's default; the demos send lines */
#define TCP_WND                 (4 * TCP_MSS)
#define TCP_SND_BUF             (4 * TCP_MSS)
#define TCP_QUEUE_OOSEQ         1       /* keep out-of-order segments: the
                                           receiver sends duplicate ACKs */
#define LWIP_TCP_KEEPALIVE      0
/*
 * TCP's timers keep lwIP's defaults: a 250 ms fast timer (delayed ACKs) and
 * a 500 ms slow timer (retransmissions: the RTO starts at 3 s and never
 * goes below 3 slow ticks = 1.5 s).  Real-network values on a network whose
 * latency is tens of microseconds: a lost segment costs seconds of virtual
 * time, which is what a person debugging a real stack sees, and costs the
 * guest little, since an idle guest sleeps until its next 10 ms tick
 * (lwip_kit.h).
 */

/* Random initial sequence numbers (RFC 6528 asks for unpredictable ones)
 * from LWIP_RAND(), i.e. rdrand (arch/cc.h).  Under vmrr they come from the
 * cluster's seed: the same on every run, different per VM. */
#define LWIP_HOOK_TCP_ISN(local_ip, local_port, remote_ip, remote_port) LWIP_RAND()

/* ---- everything else off ---------------------------------------------- */

#define LWIP_STATS              0
#define LWIP_NETIF_STATUS_CALLBACK 0
#define LWIP_NETIF_LINK_CALLBACK   0
#define LWIP_NETIF_HOSTNAME     0

#endif
