/*
 * tcpwatch.c - names the TCP events worth finding in a trace, by looking
 * at every frame this node sends, the way Wireshark's TCP analysis does:
 *
 *   retransmission   a segment that carries data, SYN or FIN and starts
 *                    below the highest sequence number already sent on its
 *                    connection (RTO expiry or fast retransmit in lwIP);
 *   duplicate ACK    a segment without data, SYN, FIN or RST that repeats
 *                    the acknowledgement number and window of the previous
 *                    segment on its connection (lwIP sends one at once for
 *                    every out-of-order or duplicate segment it receives).
 *
 * Each becomes a marker (`tcp-rexmit` / `tcp-dupack`, value = sequence or
 * acknowledgement number relative to the connection's first one, as
 * Wireshark shows it) and a console line, so `vmrr events --kind marker`
 * lists them and the TUI can jump between them.  Watching the wire instead
 * of lwIP's internals keeps lwIP unmodified, and it is what a person would
 * check against a capture.  It only reads; nothing is changed or dropped.
 */
#include "lwip_kit.h"

#include "lwip/def.h"

#define MAX_FLOWS 16

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/* One connection, as seen from this node. */
struct flow {
    int used;
    uint16_t lport, rport;
    uint32_t rip;                       /* network byte order */
    uint32_t isn;                       /* our first sequence number */
    uint32_t snd_max;                   /* highest seq + len sent so far */
    uint32_t peer_isn;                  /* theirs, from our first ACK */
    int have_peer_isn;
    int have_ack;                       /* last_ack/last_wnd are valid */
    uint32_t last_ack;
    uint16_t last_wnd;
};

static struct flow flows[MAX_FLOWS];
static unsigned next_victim;            /* round-robin replacement when full */
static int log_enabled = -1;

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int seq_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }

static struct flow *find_flow(uint16_t lport, uint32_t rip, uint16_t rport, int create)
{
    for (int i = 0; i < MAX_FLOWS; i++)
        if (flows[i].used && flows[i].lport == lport && flows[i].rport == rport
            && flows[i].rip == rip)
            return &flows[i];
    if (!create)
        return NULL;
    struct flow *f = NULL;
    for (int i = 0; i < MAX_FLOWS && !f; i++)
        if (!flows[i].used)
            f = &flows[i];
    if (!f)
        f = &flows[next_victim++ % MAX_FLOWS];
    memset(f, 0, sizeof(*f));
    f->used = 1;
    f->lport = lport;
    f->rip = rip;
    f->rport = rport;
    return f;
}

static void say(const char *what, const uint8_t *dst_ip, uint16_t rport,
                const char *field, uint32_t rel, uint32_t len)
{
    if (log_enabled < 0)
        log_enabled = cmdline_get_u64("tcplog", 1) != 0;
    if (!log_enabled)
        return;
    printf("lwip: %s to %u.%u.%u.%u:%u %s %u", what, dst_ip[0], dst_ip[1],
           dst_ip[2], dst_ip[3], rport, field, rel);
    if (len)
        printf(" (%u bytes)", len);
    printf("\n");
}

void tcpwatch_frame_out(const uint8_t *fr, size_t len)
{
    if (len < 14 + 20 || be16(fr + 12) != 0x0800)
        return;                         /* not IPv4 */
    const uint8_t *ip = fr + 14;
    size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
    size_t ip_len = be16(ip + 2);
    if (ip[9] != 6 || ihl < 20 || ip_len > len - 14 || ip_len < ihl + 20)
        return;                         /* not TCP, or malformed */
    const uint8_t *th = ip + ihl;
    size_t thl = (size_t)(th[12] >> 4) * 4;
    if (thl < 20 || ihl + thl > ip_len)
        return;
    uint32_t payload = (uint32_t)(ip_len - ihl - thl);
    uint8_t flags = th[13];
    uint16_t lport = be16(th), rport = be16(th + 2);
    uint32_t seq = be32(th + 4), ack = be32(th + 8);
    uint16_t wnd = be16(th + 14);
    uint32_t rip;
    memcpy(&rip, ip + 16, 4);

    if (flags & TCP_RST)
        return;                         /* aborts are not the point here */

    struct flow *f;
    if ((flags & TCP_SYN) && !(flags & TCP_ACK)) {
        /* A connection attempt: new, or this SYN sent again. */
        f = find_flow(lport, rip, rport, 0);
        if (f && f->isn == seq) {
            marker("tcp-rexmit", 0);
            say("retransmit SYN", ip + 16, rport, "seq", 0, 0);
            return;
        }
        f = find_flow(lport, rip, rport, 1);
        f->isn = seq;
        f->snd_max = seq + 1;
        return;
    }
    f = find_flow(lport, rip, rport, 0);
    if (!f) {
        f = find_flow(lport, rip, rport, 1);
        if (flags & TCP_SYN) {          /* our SYN-ACK: we are the server */
            f->isn = seq;
            f->snd_max = seq;
        } else {                        /* started before we looked: guess */
            f->isn = seq - 1;
            f->snd_max = seq;
        }
    }
    if ((flags & TCP_ACK) && !f->have_peer_isn) {
        f->peer_isn = ack - 1;          /* our first ACK covers their SYN */
        f->have_peer_isn = 1;
    }

    uint32_t seg_len = payload + ((flags & TCP_SYN) ? 1 : 0) + ((flags & TCP_FIN) ? 1 : 0);
    if (seg_len > 0) {
        if (seq_lt(seq, f->snd_max)) {
            uint32_t rel = seq - f->isn;
            marker("tcp-rexmit", rel);
            say((flags & TCP_SYN) ? "retransmit SYN-ACK" : "retransmit", ip + 16,
                rport, "seq", rel, payload);
        }
        if (seq_lt(f->snd_max, seq + seg_len))
            f->snd_max = seq + seg_len;
    } else if ((flags & TCP_ACK) && f->have_ack && ack == f->last_ack && wnd == f->last_wnd) {
        uint32_t rel = ack - f->peer_isn;
        marker("tcp-dupack", rel);
        say("duplicate ACK", ip + 16, rport, "ack", rel, 0);
    }
    if (flags & TCP_ACK) {
        f->have_ack = 1;
        f->last_ack = ack;
        f->last_wnd = wnd;
    }
}
