/*
 * vnetif.c - lwIP's network interface over the kit's virtio-net driver,
 * plus the little a NO_SYS port must provide (sys_now(), assertions) and the
 * main-loop helpers of lwip_kit.h.
 *
 * Receive: polled from the main loop.  lwipkit_poll() takes each frame the
 * card has written into its ring, copies it into a pbuf from lwIP's pool,
 * gives the ring buffer straight back to the card, and passes the pbuf to
 * ethernet_input().  Copying (rather than lending the ring buffer to lwIP as
 * a PBUF_REF) keeps the driver's 32 receive buffers always posted, whatever
 * lwIP holds on to (out-of-order TCP segments, ARP-queued packets).
 *
 * Transmit: linkoutput flattens the pbuf chain into one frame, pads it to
 * the 60-byte Ethernet minimum as a real card would, and hands it to
 * virtio_net_send() (which copies it into a TX buffer).
 *
 * Filtering: QEMU's multicast "switch" (guests/run-qemu-net.sh) delivers
 * every frame to every VM, our own included; frames not for our MAC (nor
 * broadcast/multicast) and frames we sent are dropped before lwIP sees
 * them, as a NIC's address filter would.
 */
#include "lwip_kit.h"

#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/pbuf.h"
#include "lwip/timeouts.h"
#include "netif/ethernet.h"

#define ETH_MIN_FRAME 60        /* without the FCS, which the card adds */
#define ETH_MAX_FRAME 1514

static struct netif vnetif;
static uint8_t my_mac[6];
static uint8_t tx_frame[ETH_MAX_FRAME];
static uint64_t ticks_at_init;

/* ---- what lwIP asks of a NO_SYS port -------------------------------- */

/* lwIP's clock for its timers: milliseconds, wrapping at 2^32, from the
 * PIT tick.  Under vmrr the ticks are virtual time, so every timer lwIP
 * sets fires at the same instruction on every run. */
u32_t sys_now(void)
{
    return (u32_t)((pit_ticks() - ticks_at_init) * LWIPKIT_TICK_MS);
}

uint32_t lwipkit_now(void)
{
    return sys_now();
}

void lwipkit_assert_failed(const char *msg, int line, const char *file)
{
    printf("lwip: assertion \"%s\" failed at %s:%d\n", msg, file, line);
    marker("lwip-assert", (uint32_t)line);
    exit(LWIPKIT_EXIT_ASSERT);
}

/* ---- addresses ---------------------------------------------------------- */

void lwipkit_node_ip(int node, ip4_addr_t *ip)
{
    IP4_ADDR(ip, 10, 0, 0, (u8_t)(node + 1));
}

int lwipkit_ip_node(const ip4_addr_t *ip)
{
    u32_t a = lwip_ntohl(ip4_addr_get_u32(ip));
    if ((a >> 8) != 0x0a0000 || (a & 0xff) == 0 || (a & 0xff) == 0xff)
        return -1;
    return (int)(a & 0xff) - 1;
}

struct netif *lwipkit_netif(void)
{
    return &vnetif;
}

/* ---- the netif ---------------------------------------------------------- */

static err_t vnetif_linkoutput(struct netif *nif, struct pbuf *p)
{
    (void)nif;
    if (p->tot_len > sizeof(tx_frame))
        return ERR_BUF;
    u16_t len = pbuf_copy_partial(p, tx_frame, p->tot_len, 0);
    if (len < ETH_MIN_FRAME) {
        memset(tx_frame + len, 0, ETH_MIN_FRAME - len);
        len = ETH_MIN_FRAME;
    }
    tcpwatch_frame_out(tx_frame, len);
    return virtio_net_send(tx_frame, len) == 0 ? ERR_OK : ERR_IF;
}

static err_t vnetif_init(struct netif *nif)
{
    nif->name[0] = 'v';
    nif->name[1] = 'n';
    nif->output = etharp_output;        /* IPv4 -> ARP -> linkoutput */
    nif->linkoutput = vnetif_linkoutput;
    nif->mtu = 1500;
    nif->hwaddr_len = ETH_HWADDR_LEN;
    memcpy(nif->hwaddr, my_mac, ETH_HWADDR_LEN);
    nif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
    return ERR_OK;
}

/* Would a NIC with our address filter accept this frame? */
static int frame_for_us(const uint8_t *f, size_t len)
{
    if (len < SIZEOF_ETH_HDR)
        return 0;
    if (memcmp(f + 6, my_mac, 6) == 0)
        return 0;                       /* our own, looped back by QEMU */
    return (f[0] & 1) || memcmp(f, my_mac, 6) == 0;   /* group bit: bcast/mcast */
}

void lwipkit_poll(void)
{
    const uint8_t *f;
    size_t len;
    int id;
    while ((id = virtio_net_rx_next(&f, &len)) >= 0) {
        struct pbuf *p = NULL;
        if (frame_for_us(f, len) && len <= ETH_MAX_FRAME) {
            p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_POOL);
            if (p)
                pbuf_take(p, f, (u16_t)len);
            else
                printf("lwip: pbuf pool empty, frame dropped\n");
        }
        virtio_net_rx_release(id);      /* the card may reuse it now */
        if (p && vnetif.input(p, &vnetif) != ERR_OK)
            pbuf_free(p);
    }
    sys_check_timeouts();
}

void lwipkit_idle(void)
{
    sti_hlt();
    cli();
}

int lwipkit_init(void)
{
    if (net_init() < 0)
        return -1;
    cli();                              /* lwIP runs with interrupts off */
    /*
     * net_init() ran the PIT at 1000 Hz.  lwIP's timers are 250 ms and
     * coarser, and every tick wakes the guest (about 200 instructions, the
     * interrupt plus one pass of the main loop), so a slower tick makes an
     * idle lwIP guest ten times cheaper to run under single-stepping.
     */
    pit_init(1000 / LWIPKIT_TICK_MS);
    ticks_at_init = pit_ticks();
    int node = net_node_id();
    net_node_mac(node, my_mac);

    lwip_init();
    ip4_addr_t ip, mask, gw;
    lwipkit_node_ip(node, &ip);
    IP4_ADDR(&mask, 255, 255, 255, 0);
    ip4_addr_set_zero(&gw);             /* one subnet, no router */
    if (!netif_add(&vnetif, &ip, &mask, &gw, NULL, vnetif_init, ethernet_input)) {
        printf("lwip: netif_add failed\n");
        return -1;
    }
    netif_set_default(&vnetif);
    netif_set_link_up(&vnetif);
    netif_set_up(&vnetif);              /* sends a gratuitous ARP */
    printf("lwip: node %d is %s/24 (lwIP %s, mac %02x:%02x:%02x:%02x:%02x:%02x)\n",
           node, ip4addr_ntoa(&ip), LWIP_VERSION_STRING,
           my_mac[0], my_mac[1], my_mac[2], my_mac[3], my_mac[4], my_mac[5]);
    return 0;
}
