/*
 * virtio_net.c - a virtio-net driver over the virtio-mmio transport,
 * modern interface only (MMIO version 2, VIRTIO_F_VERSION_1), written from
 * the virtio 1.x specification (sections 2.1-2.7 device basics and split
 * virtqueues, 3.1 initialisation, 4.2 virtio over MMIO, 5.1 network device).
 *
 * Discovery: the VMM announces each transport on the kernel command line
 * with the Linux convention
 *
 *     virtio_mmio.device=<size>@<base>:<irq>[:<id>]
 *
 * (<size> with an optional K/M/G suffix, numbers decimal or 0x-hex).  vmrr
 * passes `virtio_mmio.device=4K@0xd0000000:5`; QEMU's microvm machine lists
 * its populated transports, e.g. `virtio_mmio.device=512@0xfeb00e00:12`.
 * Every token is probed (magic "virt", version 2, device ID 1) and the first
 * network device wins.
 *
 * Queues: receiveq1 (index 0) and transmitq1 (index 1), split rings of
 * min(QueueNumMax, 64) entries in static memory.  Every buffer starts with
 * the 12-byte struct virtio_net_hdr (VERSION_1 layout, num_buffers
 * included); transmitted headers are all zero (no checksum offload, no GSO).
 * RX uses one device-writable descriptor per 1536-byte buffer (the spec asks
 * for at least 1526 when no GSO/MRG_RXBUF feature is negotiated); TX uses
 * one read-only descriptor holding header + frame (allowed by VERSION_1,
 * which frees the device from assuming any descriptor layout).
 *
 * Interrupts: under vmrr the transport's IRQ is a line of the 8259 pair;
 * the handler reads InterruptStatus and writes it back to InterruptACK.
 * Under QEMU microvm the number is an IOAPIC GSI (lines below 16 also reach
 * the 8259 when microvm has pic=on).  Nothing here depends on the interrupt
 * arriving: the waiting loops in net.c look at the used ring whenever the
 * CPU wakes up, which includes every PIT tick, so the same image works in
 * pure polling mode.  TX completions are not interrupt-driven at all
 * (VIRTQ_AVAIL_F_NO_INTERRUPT on the TX ring): buffers are reclaimed when
 * the next frame is sent.
 */
#include "vmrr.h"

/* ---- virtio-mmio registers (spec 4.2.2) ---------------------------- */
#define VMMIO_MAGIC            0x000
#define VMMIO_VERSION          0x004
#define VMMIO_DEVICE_ID        0x008
#define VMMIO_VENDOR_ID        0x00c
#define VMMIO_DEVICE_FEATURES  0x010
#define VMMIO_DEVICE_FEAT_SEL  0x014
#define VMMIO_DRIVER_FEATURES  0x020
#define VMMIO_DRIVER_FEAT_SEL  0x024
#define VMMIO_QUEUE_SEL        0x030
#define VMMIO_QUEUE_NUM_MAX    0x034
#define VMMIO_QUEUE_NUM        0x038
#define VMMIO_QUEUE_READY      0x044
#define VMMIO_QUEUE_NOTIFY     0x050
#define VMMIO_INT_STATUS       0x060
#define VMMIO_INT_ACK          0x064
#define VMMIO_STATUS           0x070
#define VMMIO_QUEUE_DESC_LO    0x080
#define VMMIO_QUEUE_DESC_HI    0x084
#define VMMIO_QUEUE_DRIVER_LO  0x090
#define VMMIO_QUEUE_DRIVER_HI  0x094
#define VMMIO_QUEUE_DEVICE_LO  0x0a0
#define VMMIO_QUEUE_DEVICE_HI  0x0a4
#define VMMIO_CONFIG_GEN       0x0fc
#define VMMIO_CONFIG           0x100

#define VIRTIO_MMIO_MAGIC      0x74726976u   /* "virt", little-endian */
#define VIRTIO_ID_NET          1

/* Device status bits (spec 2.1). */
#define ST_ACKNOWLEDGE  1u
#define ST_DRIVER       2u
#define ST_DRIVER_OK    4u
#define ST_FEATURES_OK  8u
#define ST_FAILED       128u

/* Feature bits. */
#define F_NET_MAC       (1ull << 5)
#define F_VERSION_1     (1ull << 32)

/* Split virtqueue (spec 2.7). */
#define VIRTQ_DESC_F_NEXT        1
#define VIRTQ_DESC_F_WRITE       2
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

#define VQ_MAX  64          /* we never use more entries than this */
#define RXQ     0
#define TXQ     1

#define NET_HDR_LEN  12     /* struct virtio_net_hdr with VERSION_1 */
#define BUF_SIZE     1536   /* >= 1526 = 12 + 1514 */
#define RX_BUFS      32
#define TX_BUFS      16

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[VQ_MAX];
    uint16_t used_event;    /* unused: no VIRTIO_F_EVENT_IDX */
};

struct virtq_used_elem {
    uint32_t id;
    uint32_t len;
};

struct virtq_used {
    uint16_t flags;
    uint16_t idx;
    struct virtq_used_elem ring[VQ_MAX];
    uint16_t avail_event;
};

struct vq {
    unsigned num;           /* queue size in use (power of two) */
    unsigned nbufs;         /* buffers (= descriptors) we use */
    uint16_t avail_idx;     /* our copy of avail->idx */
    uint16_t last_used;     /* used entries consumed so far */
    struct virtq_desc *desc;
    struct virtq_avail *avail;
    volatile struct virtq_used *used;
};

/* Ring memory, one page each (alignment: desc 16, avail 2, used 4). */
static struct virtq_desc  rx_desc[VQ_MAX]  __attribute__((aligned(4096)));
static struct virtq_avail rx_avail         __attribute__((aligned(4096)));
static struct virtq_used  rx_used          __attribute__((aligned(4096)));
static struct virtq_desc  tx_desc[VQ_MAX]  __attribute__((aligned(4096)));
static struct virtq_avail tx_avail         __attribute__((aligned(4096)));
static struct virtq_used  tx_used          __attribute__((aligned(4096)));

static uint8_t rx_buf[RX_BUFS][BUF_SIZE] __attribute__((aligned(64)));
static uint8_t tx_buf[TX_BUFS][BUF_SIZE] __attribute__((aligned(64)));

static struct vq rxq, txq;
static uint8_t tx_free[TX_BUFS];        /* stack of free TX descriptor ids */
static unsigned tx_nfree;

static volatile uint8_t *regs;          /* NULL until a device is up */
static uint64_t dev_base;
static unsigned dev_irq;
static int irq_on_pic;
static uint8_t dev_mac[6];
static int dev_has_mac;
static volatile uint64_t irq_count;

static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }

static inline uint32_t rd32(volatile uint8_t *base, unsigned off)
{
    return *(volatile uint32_t *)(base + off);
}

static inline void wr32(volatile uint8_t *base, unsigned off, uint32_t v)
{
    *(volatile uint32_t *)(base + off) = v;
}

/* ---- command-line tokens -------------------------------------------- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Parse a number (decimal or 0x-hex) at *pp, advancing *pp; -1 if none. */
static int parse_num(const char **pp, uint64_t *out)
{
    const char *p = *pp;
    unsigned base = 10;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    }
    uint64_t v = 0;
    const char *start = p;
    for (;; p++) {
        unsigned d;
        if (*p >= '0' && *p <= '9')
            d = (unsigned)(*p - '0');
        else if (base == 16 && *p >= 'a' && *p <= 'f')
            d = (unsigned)(*p - 'a' + 10);
        else if (base == 16 && *p >= 'A' && *p <= 'F')
            d = (unsigned)(*p - 'A' + 10);
        else
            break;
        v = v * base + d;
    }
    if (p == start)
        return -1;
    *out = v;
    *pp = p;
    return 0;
}

/* "<size>@<base>:<irq>[:<id>]" -> fields; 0 on success. */
static int parse_device_token(const char *p, const char *end,
                              uint64_t *size, uint64_t *base, uint64_t *irq)
{
    if (parse_num(&p, size) < 0)
        return -1;
    if (*p == 'K' || *p == 'k')
        *size <<= 10, p++;
    else if (*p == 'M' || *p == 'm')
        *size <<= 20, p++;
    else if (*p == 'G' || *p == 'g')
        *size <<= 30, p++;
    if (*p++ != '@' || parse_num(&p, base) < 0)
        return -1;
    if (*p++ != ':' || parse_num(&p, irq) < 0)
        return -1;
    if (p < end && *p == ':') {          /* optional platform device id */
        uint64_t id;
        p++;
        if (parse_num(&p, &id) < 0)
            return -1;
    }
    return p == end ? 0 : -1;
}

/* ---- queues --------------------------------------------------------- */

static int setup_queue(volatile uint8_t *r, unsigned index, struct vq *q,
                       struct virtq_desc *desc, struct virtq_avail *avail,
                       struct virtq_used *used, unsigned want_bufs)
{
    wr32(r, VMMIO_QUEUE_SEL, index);
    if (rd32(r, VMMIO_QUEUE_READY) != 0) {
        printf("virtio-net: queue %u already in use\n", index);
        return -1;
    }
    uint32_t max = rd32(r, VMMIO_QUEUE_NUM_MAX);
    if (max == 0) {
        printf("virtio-net: queue %u not available\n", index);
        return -1;
    }
    unsigned num = 1;                   /* largest power of two <= min(max, VQ_MAX) */
    while (num * 2 <= max && num * 2 <= VQ_MAX)
        num *= 2;

    memset(desc, 0, sizeof(struct virtq_desc) * VQ_MAX);
    memset(avail, 0, sizeof(*avail));
    memset(used, 0, sizeof(*used));
    q->num = num;
    q->nbufs = want_bufs < num ? want_bufs : num;
    q->avail_idx = 0;
    q->last_used = 0;
    q->desc = desc;
    q->avail = avail;
    q->used = used;

    wr32(r, VMMIO_QUEUE_NUM, num);
    uint64_t d = (uint64_t)(uintptr_t)desc;
    uint64_t a = (uint64_t)(uintptr_t)avail;
    uint64_t u = (uint64_t)(uintptr_t)used;
    wr32(r, VMMIO_QUEUE_DESC_LO, (uint32_t)d);
    wr32(r, VMMIO_QUEUE_DESC_HI, (uint32_t)(d >> 32));
    wr32(r, VMMIO_QUEUE_DRIVER_LO, (uint32_t)a);
    wr32(r, VMMIO_QUEUE_DRIVER_HI, (uint32_t)(a >> 32));
    wr32(r, VMMIO_QUEUE_DEVICE_LO, (uint32_t)u);
    wr32(r, VMMIO_QUEUE_DEVICE_HI, (uint32_t)(u >> 32));
    wr32(r, VMMIO_QUEUE_READY, 1);
    return 0;
}

/* Make descriptor `id` available (its desc entry is already filled in). */
static void vq_push(struct vq *q, uint16_t id)
{
    q->avail->ring[q->avail_idx & (q->num - 1)] = id;
    q->avail_idx++;
    barrier();                          /* ring entry before the index */
    *(volatile uint16_t *)&q->avail->idx = q->avail_idx;
    barrier();
}

/* Next used element, or 0 if the device has not returned anything new. */
static int vq_pop(struct vq *q, uint32_t *id, uint32_t *len)
{
    uint16_t used_idx = q->used->idx;   /* volatile read */
    if (used_idx == q->last_used)
        return 0;
    barrier();                          /* index before the entry */
    volatile struct virtq_used_elem *e = &q->used->ring[q->last_used & (q->num - 1)];
    *id = e->id;
    *len = e->len;
    q->last_used++;
    return 1;
}

/* ---- interrupt ------------------------------------------------------ */

static void virtio_net_irq_handler(unsigned irq)
{
    (void)irq;
    irq_count++;
    if (regs) {
        uint32_t st = rd32(regs, VMMIO_INT_STATUS);
        if (st)
            wr32(regs, VMMIO_INT_ACK, st);
    }
    /* The waiting code wakes from hlt and looks at the used ring itself. */
}

/* ---- device bring-up (spec 3.1.1 and 4.2.3) ------------------------- */

static void fail_device(volatile uint8_t *r, const char *why)
{
    printf("virtio-net: %s\n", why);
    wr32(r, VMMIO_STATUS, rd32(r, VMMIO_STATUS) | ST_FAILED);
}

static int init_device(volatile uint8_t *r)
{
    /* Reset, and wait for the device to report it done (immediate on
     * emulated devices; bounded anyway). */
    wr32(r, VMMIO_STATUS, 0);
    for (int i = 0; rd32(r, VMMIO_STATUS) != 0; i++) {
        if (i > 1000) {
            printf("virtio-net: device does not reset\n");
            return -1;
        }
    }
    uint32_t st = ST_ACKNOWLEDGE;
    wr32(r, VMMIO_STATUS, st);
    st |= ST_DRIVER;
    wr32(r, VMMIO_STATUS, st);

    wr32(r, VMMIO_DEVICE_FEAT_SEL, 0);
    uint64_t feat = rd32(r, VMMIO_DEVICE_FEATURES);
    wr32(r, VMMIO_DEVICE_FEAT_SEL, 1);
    feat |= (uint64_t)rd32(r, VMMIO_DEVICE_FEATURES) << 32;
    if (!(feat & F_VERSION_1)) {
        fail_device(r, "device does not offer VIRTIO_F_VERSION_1");
        return -1;
    }
    uint64_t want = F_VERSION_1 | (feat & F_NET_MAC);
    wr32(r, VMMIO_DRIVER_FEAT_SEL, 0);
    wr32(r, VMMIO_DRIVER_FEATURES, (uint32_t)want);
    wr32(r, VMMIO_DRIVER_FEAT_SEL, 1);
    wr32(r, VMMIO_DRIVER_FEATURES, (uint32_t)(want >> 32));
    st |= ST_FEATURES_OK;
    wr32(r, VMMIO_STATUS, st);
    if (!(rd32(r, VMMIO_STATUS) & ST_FEATURES_OK)) {
        fail_device(r, "device refused our features");
        return -1;
    }

    if (setup_queue(r, RXQ, &rxq, rx_desc, &rx_avail, &rx_used, RX_BUFS) < 0 ||
        setup_queue(r, TXQ, &txq, tx_desc, &tx_avail, &tx_used, TX_BUFS) < 0) {
        fail_device(r, "queue setup failed");
        return -1;
    }

    /* RX: one device-writable buffer per descriptor, all made available. */
    for (unsigned i = 0; i < rxq.nbufs; i++) {
        rx_desc[i].addr = (uint64_t)(uintptr_t)rx_buf[i];
        rx_desc[i].len = BUF_SIZE;
        rx_desc[i].flags = VIRTQ_DESC_F_WRITE;
        rx_desc[i].next = 0;
        vq_push(&rxq, (uint16_t)i);
    }
    /* TX: descriptors filled at send time; no used-buffer interrupts. */
    tx_avail.flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
    tx_nfree = 0;
    for (unsigned i = txq.nbufs; i-- > 0;)
        tx_free[tx_nfree++] = (uint8_t)i;

    /* MAC from the config space, read bytewise until the generation is
     * stable (spec 2.5.1 / 4.2.2). */
    dev_has_mac = (want & F_NET_MAC) != 0;
    if (dev_has_mac) {
        uint32_t gen;
        do {
            gen = rd32(r, VMMIO_CONFIG_GEN);
            for (int i = 0; i < 6; i++)
                dev_mac[i] = *(volatile uint8_t *)(r + VMMIO_CONFIG + i);
        } while (rd32(r, VMMIO_CONFIG_GEN) != gen);
    }

    st |= ST_DRIVER_OK;
    wr32(r, VMMIO_STATUS, st);
    wr32(r, VMMIO_QUEUE_NOTIFY, RXQ);    /* tell it about the RX buffers */
    return 0;
}

int virtio_net_init(void)
{
    static const char key[] = "virtio_mmio.device=";
    const size_t klen = sizeof(key) - 1;
    const char *p = cmdline();
    int seen = 0;

    if (regs)
        return 0;
    while (*p) {
        while (is_space(*p))
            p++;
        const char *tok = p;
        while (*p && !is_space(*p))
            p++;
        if ((size_t)(p - tok) <= klen || strncmp(tok, key, klen) != 0)
            continue;
        seen++;

        uint64_t size, base, irq;
        if (parse_device_token(tok + klen, p, &size, &base, &irq) < 0) {
            serial_puts("virtio-net: cannot parse \"");
            for (const char *c = tok; c < p; c++)
                serial_putc(*c);
            serial_puts("\"\n");
            continue;
        }
        if (size < 0x100 + 6 || mmio_map(base, size) < 0) {
            printf("virtio-net: transport at 0x%lx (size 0x%lx) is not usable\n",
                   (unsigned long)base, (unsigned long)size);
            continue;
        }
        volatile uint8_t *r = (volatile uint8_t *)(uintptr_t)base;
        uint32_t magic = rd32(r, VMMIO_MAGIC);
        if (magic != VIRTIO_MMIO_MAGIC) {
            printf("virtio-net: no virtio-mmio transport at 0x%lx (magic 0x%x)\n",
                   (unsigned long)base, magic);
            continue;
        }
        uint32_t version = rd32(r, VMMIO_VERSION);
        uint32_t devid = rd32(r, VMMIO_DEVICE_ID);
        if (devid != VIRTIO_ID_NET)
            continue;                   /* 0 = empty slot, or another device */
        if (version != 2) {
            printf("virtio-net: device at 0x%lx is legacy (mmio version %u); "
                   "only version 2 is supported\n", (unsigned long)base, version);
            continue;
        }
        if (init_device(r) < 0)
            continue;

        regs = r;
        dev_base = base;
        dev_irq = (unsigned)irq;
        /* IRQ 0 is the PIT and 2 the cascade; above 15 there is no 8259
         * line.  Otherwise take the interrupt (the polling stays on). */
        if (irq < 16 && irq != VMRR_IRQ_PIT && irq != 2) {
            irq_set_handler((unsigned)irq, virtio_net_irq_handler);
            pic_unmask((unsigned)irq);
            irq_on_pic = 1;
        }
        return 0;
    }
    if (!seen)
        printf("virtio-net: no virtio_mmio.device= on the command line\n");
    return -1;
}

int virtio_net_ready(void) { return regs != NULL; }
uint64_t virtio_net_base(void) { return dev_base; }
unsigned virtio_net_irq(void) { return dev_irq; }
int virtio_net_irq_on_pic(void) { return irq_on_pic; }
uint64_t virtio_net_irq_count(void) { return irq_count; }

int virtio_net_mac(uint8_t mac[6])
{
    if (!dev_has_mac)
        return -1;
    memcpy(mac, dev_mac, 6);
    return 0;
}

/* ---- data path ------------------------------------------------------ */

/* Return completed TX buffers to the free stack. */
static void tx_reclaim(void)
{
    uint32_t id, len;
    while (vq_pop(&txq, &id, &len))
        if (id < txq.nbufs && tx_nfree < TX_BUFS)
            tx_free[tx_nfree++] = (uint8_t)id;
}

int virtio_net_send(const void *frame, size_t len)
{
    if (!regs || len > BUF_SIZE - NET_HDR_LEN)
        return -1;
    tx_reclaim();
    if (tx_nfree == 0) {
        /* All buffers in flight: sleep until the device returns one (we
         * look again on every wake-up, at the latest the next PIT tick). */
        int was_enabled = (read_rflags() & RFLAGS_IF) != 0;
        for (;;) {
            cli();
            tx_reclaim();
            if (tx_nfree)
                break;
            sti_hlt();
        }
        if (was_enabled)
            sti();
    }
    uint16_t id = tx_free[--tx_nfree];
    uint8_t *b = tx_buf[id];
    memset(b, 0, NET_HDR_LEN);          /* flags 0, GSO_NONE, no csum */
    memcpy(b + NET_HDR_LEN, frame, len);
    tx_desc[id].addr = (uint64_t)(uintptr_t)b;
    tx_desc[id].len = (uint32_t)(NET_HDR_LEN + len);
    tx_desc[id].flags = 0;
    tx_desc[id].next = 0;
    vq_push(&txq, id);
    wr32(regs, VMMIO_QUEUE_NOTIFY, TXQ);
    return 0;
}

int virtio_net_rx_next(const uint8_t **frame, size_t *len)
{
    uint32_t id, l;
    if (!regs)
        return -1;
    while (vq_pop(&rxq, &id, &l)) {
        if (id >= rxq.nbufs)
            continue;                   /* not ours: ignore */
        if (l < NET_HDR_LEN || l > BUF_SIZE) {
            virtio_net_rx_release((int)id);
            continue;
        }
        *frame = rx_buf[id] + NET_HDR_LEN;
        *len = l - NET_HDR_LEN;
        return (int)id;
    }
    /* Without a working interrupt line the status bit would stay set
     * forever; acknowledge it here so the device is not left asserting. */
    if (!irq_on_pic) {
        uint32_t st = rd32(regs, VMMIO_INT_STATUS);
        if (st)
            wr32(regs, VMMIO_INT_ACK, st);
    }
    return -1;
}

void virtio_net_rx_release(int id)
{
    if (id < 0 || (unsigned)id >= rxq.nbufs)
        return;
    rx_desc[id].len = BUF_SIZE;
    rx_desc[id].flags = VIRTQ_DESC_F_WRITE;
    vq_push(&rxq, (uint16_t)id);
    wr32(regs, VMMIO_QUEUE_NOTIFY, RXQ);
}
