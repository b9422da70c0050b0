/*
 * pingpong - two nodes bounce numbered messages over virtio-net.
 *
 *     cmdline: id=0|1  count=N (default 10)
 *
 * Node 0 sends "ping k" to node 1 and waits for "pong k", for k = 1..N;
 * if no pong arrives within 50 ticks (50 ms of virtual time) it sends the
 * same ping again, so a dropped frame (or a peer that boots late) costs a
 * retry instead of a hang.  Node 1 answers every "ping k" with "pong k"
 * (duplicates too); once it has answered ping N it lingers until the line
 * has been quiet for 100 ticks, in case its last pong was lost and ping N
 * comes again.  Both print each message they send and receive, then
 * "pingpong: done", and exit 0.
 *
 * Markers: "ping" (k) when node 0 sends, "pong" (k) when node 1 answers.
 */
#include "vmrr.h"

#define RETRY_TICKS   50
#define LINGER_TICKS  100
#define GIVE_UP_TICKS 10000     /* node 1: no ping at all for 10 s */

/* Parse "<word> <k>" into k if the message starts with `word`; else -1. */
static long parse_msg(const char *msg, int n, const char *word)
{
    size_t wl = strlen(word);
    if (n <= (int)wl + 1 || strncmp(msg, word, wl) != 0 || msg[wl] != ' ')
        return -1;
    long k = 0;
    for (int i = (int)wl + 1; i < n; i++) {
        if (msg[i] < '0' || msg[i] > '9')
            return -1;
        k = k * 10 + (msg[i] - '0');
    }
    return k;
}

/* Format "<word> <k>" into buf; returns the length (no NUL sent). */
static int format_msg(char *buf, const char *word, long k)
{
    int n = 0;
    while (*word)
        buf[n++] = *word++;
    buf[n++] = ' ';
    char digits[20];
    int d = 0;
    do {
        digits[d++] = (char)('0' + k % 10);
        k /= 10;
    } while (k);
    while (d)
        buf[n++] = digits[--d];
    buf[n] = 0;
    return n;
}

static int pinger(long count)
{
    char out[32], in[64];
    for (long k = 1; k <= count; k++) {
        int len = format_msg(out, "ping", k);
        printf("node 0: send \"%s\"\n", out);
        marker("ping", (uint32_t)k);
        net_send(1, out, (size_t)len);
        for (;;) {
            int src;
            int n = net_recv(in, sizeof(in) - 1, &src, RETRY_TICKS);
            if (n < 0) {
                printf("node 0: no answer in %d ticks, send \"%s\" again\n",
                       RETRY_TICKS, out);
                net_send(1, out, (size_t)len);
                continue;
            }
            in[n] = 0;
            if (src == 1 && parse_msg(in, n, "pong") == k) {
                printf("node 0: recv \"%s\"\n", in);
                break;
            }
            printf("node 0: ignore \"%s\" from node %d\n", in, src);
        }
    }
    return 0;
}

static int ponger(long count)
{
    char out[32], in[64];
    long answered = 0;          /* highest k answered */
    for (;;) {
        int src;
        uint64_t wait = answered >= count ? LINGER_TICKS : GIVE_UP_TICKS;
        int n = net_recv(in, sizeof(in) - 1, &src, wait);
        if (n < 0) {
            if (answered >= count)
                return 0;
            printf("node 1: no ping for %d ticks, giving up\n", GIVE_UP_TICKS);
            return 1;
        }
        in[n] = 0;
        long k = src == 0 ? parse_msg(in, n, "ping") : -1;
        if (k < 1) {
            printf("node 1: ignore \"%s\" from node %d\n", in, src);
            continue;
        }
        printf("node 1: recv \"%s\"%s\n", in, k <= answered ? " (again)" : "");
        int len = format_msg(out, "pong", k);
        printf("node 1: send \"%s\"\n", out);
        marker("pong", (uint32_t)k);
        net_send(0, out, (size_t)len);
        if (k > answered)
            answered = k;
    }
}

int kmain(struct hvm_start_info *si)
{
    (void)si;
    long count = (long)cmdline_get_u64("count", 10);
    if (net_init() < 0)
        return 2;
    printf("pingpong: count=%ld\n", count);
    int id = net_node_id();
    int rc;
    if (id == 0)
        rc = pinger(count);
    else if (id == 1)
        rc = ponger(count);
    else {
        printf("pingpong: id must be 0 or 1\n");
        return 2;
    }
    if (rc == 0)
        printf("pingpong: done\n");
    return rc;
}
