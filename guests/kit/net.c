/*
 * net.c - a tiny frame layer over virtio_net.c for cluster programs.
 *
 * Nodes are numbered by the command line's `id=N` (default 0).  Node N has
 * MAC 52:54:00:12:34:NN with NN = N + 1 (vmrr's default for the N-th VM of a
 * cluster file; run-qemu-net.sh passes the same to QEMU).  Frames are plain
 * Ethernet II with the local-experimental ethertype 0x88B5:
 *
 *     dst MAC (6) | src MAC (6) | 0x88B5 (2) | payload length (2, BE) | payload
 *
 * The explicit length survives any padding to the 60-byte Ethernet minimum.
 * A frame is delivered to net_recv() only if its ethertype matches, its
 * destination is our MAC or broadcast, and it is not one of our own (QEMU's
 * multicast socket backend loops frames back to their sender).
 *
 * Waiting is `cli; check; sti; hlt` (as sleep_ticks() does): the VM sleeps
 * until the next interrupt, a PIT tick or the NIC's, and an idle VM costs
 * vmrr no steps until then.  net_init() runs the PIT at 1000 Hz, so one tick
 * is one (virtual) millisecond.
 */
#include "vmrr.h"

#define ETH_HDR     14
#define NET_HDR     (ETH_HDR + 2)       /* + payload length */

static int node_id = -1;
static uint8_t my_mac[6];
static uint8_t frame_buf[NET_HDR + NET_MAX_PAYLOAD];
static struct net_stats stats;

static const uint8_t mac_prefix[5] = { 0x52, 0x54, 0x00, 0x12, 0x34 };
static const uint8_t mac_bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

void net_node_mac(int node, uint8_t mac[6])
{
    if (node < 0) {
        memcpy(mac, mac_bcast, 6);
        return;
    }
    memcpy(mac, mac_prefix, 5);
    mac[5] = (uint8_t)(node + 1);
}

/* The node a MAC belongs to, or -1 if it is not one of ours. */
static int mac_node(const uint8_t *mac)
{
    if (memcmp(mac, mac_prefix, 5) != 0 || mac[5] == 0 || mac[5] == 0xff)
        return -1;
    return mac[5] - 1;
}

static void print_mac(const uint8_t *m)
{
    printf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

int net_init(void)
{
    if (node_id >= 0)
        return 0;
    uint64_t id = cmdline_get_u64("id", 0);
    if (id > 253) {
        printf("net: id=%lu out of range (0..253)\n", (unsigned long)id);
        return -1;
    }
    pit_init(1000);
    if (virtio_net_init() < 0) {
        printf("net: no virtio-net device\n");
        return -1;
    }
    node_id = (int)id;
    net_node_mac(node_id, my_mac);

    uint8_t dev[6];
    if (virtio_net_mac(dev) == 0 && memcmp(dev, my_mac, 6) != 0) {
        /* Frames carry the device's address; peers derive our id from it. */
        printf("net: warning: device MAC ");
        print_mac(dev);
        printf(" is not the one for id=%d; sending from ", node_id);
        print_mac(my_mac);
        printf(" anyway\n");
    }
    printf("net: node %d mac ", node_id);
    print_mac(my_mac);
    printf(" (virtio-mmio at 0x%lx, irq %u%s)\n",
           (unsigned long)virtio_net_base(), virtio_net_irq(),
           virtio_net_irq_on_pic() ? "" : ", polled");
    return 0;
}

int net_node_id(void)
{
    return node_id;
}

int net_send(int dst, const void *payload, size_t len)
{
    if (node_id < 0 || len > NET_MAX_PAYLOAD || dst > 253)
        return -1;
    net_node_mac(dst, frame_buf);                 /* dst < 0: broadcast */
    memcpy(frame_buf + 6, my_mac, 6);
    frame_buf[12] = NET_ETHERTYPE >> 8;
    frame_buf[13] = NET_ETHERTYPE & 0xff;
    frame_buf[14] = (uint8_t)(len >> 8);
    frame_buf[15] = (uint8_t)len;
    memcpy(frame_buf + NET_HDR, payload, len);
    if (virtio_net_send(frame_buf, NET_HDR + len) < 0)
        return -1;
    stats.tx++;
    return 0;
}

/* One pass over what the device has returned: the first frame for us is
 * copied out; others are dropped.  -1 if nothing for us yet. */
static int take_frame(void *buf, size_t cap, int *src)
{
    const uint8_t *f;
    size_t flen;
    int id;
    while ((id = virtio_net_rx_next(&f, &flen)) >= 0) {
        int ok = flen >= NET_HDR
            && f[12] == (NET_ETHERTYPE >> 8) && f[13] == (NET_ETHERTYPE & 0xff)
            && (memcmp(f, my_mac, 6) == 0 || memcmp(f, mac_bcast, 6) == 0)
            && memcmp(f + 6, my_mac, 6) != 0;
        size_t plen = ok ? ((size_t)f[14] << 8 | f[15]) : 0;
        if (!ok || plen > flen - NET_HDR) {
            stats.rx_dropped++;
            virtio_net_rx_release(id);
            continue;
        }
        size_t n = plen < cap ? plen : cap;
        memcpy(buf, f + NET_HDR, n);
        if (src)
            *src = mac_node(f + 6);
        virtio_net_rx_release(id);
        stats.rx++;
        return (int)n;
    }
    return -1;
}

int net_recv(void *buf, size_t cap, int *src, uint64_t timeout_ticks)
{
    if (node_id < 0)
        return -1;
    int was_enabled = (read_rflags() & RFLAGS_IF) != 0;
    uint64_t start = pit_ticks();
    int n;
    /*
     * Look with interrupts off, then `sti; hlt`: a frame (or tick) that
     * arrives after the look is pending when hlt starts and wakes it at
     * once, so nothing is missed and no time is spent spinning.
     */
    for (;;) {
        cli();
        n = take_frame(buf, cap, src);
        if (n >= 0)
            break;
        if (timeout_ticks != NET_FOREVER && pit_ticks() - start >= timeout_ticks)
            break;
        sti_hlt();
    }
    if (was_enabled)
        sti();
    return n;
}

void net_get_stats(struct net_stats *s)
{
    *s = stats;
}
