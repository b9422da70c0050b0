/*
 * tcpkv - a key-value store replicated over TCP (lwIP's raw API), with a
 * planted bug that only a long enough outage brings out.
 *
 *     cmdline: id=0 role=primary            10.0.0.1
 *              id=1 role=replica [fix=1]    10.0.0.2  (replica1)
 *              id=2 role=replica [fix=1]    10.0.0.3  (replica2)
 *              id=3 role=client             10.0.0.4
 *              [tcplog=0]                   no console line per TCP event
 *
 * Service.  The client writes to the primary (port 7000) and reads from the
 * replicas (port 7000).  The primary numbers every write (#1, #2, ...),
 * streams it to both replicas over one TCP connection each (port 7001) and
 * answers the client OK only when BOTH replicas have acknowledged it
 * (synchronous replication).  So once a write is OK, a read of its key at
 * either replica must return it, or something newer: the client checks
 * exactly that.
 *
 * Text lines, one message each, so a capture reads like a transcript:
 *   client  -> primary   SET <key> <value>     primary -> client   OK <#>
 *   primary -> replica   W <#> <key> <value>   replica -> primary  A <#>
 *   client  -> replica   GET <key>             replica -> client   VAL <key> <value> <applied #>
 *   client  -> servers   BYE                   server  -> client   BYE
 *
 * The primary does not wait forever for a replica: when one leaves a write
 * unacknowledged for REPL_TIMEOUT_MS it declares the connection dead,
 * closes it, connects again and sends every write the replica has not
 * acknowledged over the new connection (request deadlines plus
 * reconnect-and-resend: a common pattern).
 *
 * THE BUG (replica, on_write()): a replica applies every write it
 * receives, on whatever connection, in arrival order, and takes the
 * highest number it has seen as `applied`.  It trusts TCP's ordering, but
 * TCP orders bytes within ONE connection.  The primary's tcp_close() of the
 * "dead" connection is graceful: lwIP keeps the unacknowledged write queued
 * and goes on retransmitting it, with exponential backoff, until the peer
 * acknowledges it.  When an outage outlasts REPL_TIMEOUT_MS, the write is
 * delivered twice: over the new connection, and late over the old one; the
 * late copy overwrites whatever newer write to the same key came in between,
 * while `applied` still names the newer write.  The client then reads the
 * older value although the newer write was acknowledged by both replicas:
 *
 *   client: STALE READ k3 at replica2: got 31, want 32 (write #8; replica says applied #8)
 *
 * fix=1 makes a replica ignore a write whose number is not above the last
 * one it applied: the primary sends writes in order on each connection and
 * resends from the replica's last acknowledged one, so such a write is
 * always an old copy.
 *
 * Markers (value in brackets):
 *   client   write (key), commit (#), read (key), read-ok (key),
 *            read-stale (key)
 *   primary  repl-send (#), ack-r1 / ack-r2 (#), commit (#),
 *            repl-timeout (replica node), reconnect (replica node),
 *            resend (#)
 *   replica  apply (#), ignore-old (#, fix=1 only), serve-read (key)
 *   all      tcp-rexmit, tcp-dupack (from the lwIP port, lwip_kit.h)
 */
#include "lwip_kit.h"

#include "lwip/priv/tcp_priv.h"   /* TCP_SLOW_INTERVAL, to print the RTO */
#include "lwip/tcp.h"

/* ---- the cluster ------------------------------------------------------ */

#define NODE_PRIMARY  0
#define NODE_REPLICA1 1
#define NODE_REPLICA2 2
#define NODE_CLIENT   3

#define KV_PORT   7000              /* primary: writes; replicas: reads */
#define REPL_PORT 7001              /* replicas: the primary's write stream */

#define NKEYS        8
#define MAX_WRITES   32

#define CONNECT_RETRY_MS   20       /* after a refused connection attempt */
#define CONNECT_TIMEOUT_MS 200      /* give up on an attempt without answer */
#define REPL_TIMEOUT_MS    200      /* replica silent on a write: reconnect */
#define OP_TIMEOUT_MS      5000     /* client: an operation never finished */
#define BYE_TIMEOUT_MS     500      /* client: waiting for the servers' BYE */
#define LINGER_MS          50       /* servers: after BYE, let TCP finish */
#define RUN_LIMIT_MS       20000    /* nobody runs longer than this */

enum role { R_PRIMARY, R_REPLICA, R_CLIENT };

static enum role role;
static int me;
static int fix;
static int exit_code = -1;          /* >= 0: leave the main loop ... */
static uint32_t exit_at;            /* ... at this time */

static const char *node_name(int node)
{
    switch (node) {
    case NODE_PRIMARY:  return "primary";
    case NODE_REPLICA1: return "replica1";
    case NODE_REPLICA2: return "replica2";
    case NODE_CLIENT:   return "client";
    default:            return "?";
    }
}

static void finish(int code, uint32_t after_ms)
{
    if (exit_code < 0) {
        exit_code = code;
        exit_at = lwipkit_now() + after_ms;
    }
}

/* ---- text lines -------------------------------------------------------- */

struct line {
    char s[64];
    unsigned n;
};

static void l_str(struct line *l, const char *s)
{
    while (*s && l->n < sizeof(l->s) - 1)
        l->s[l->n++] = *s++;
}

/* A space, then v in decimal. */
static void l_u32(struct line *l, uint32_t v)
{
    char d[10];
    int i = 0;
    do {
        d[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (l->n < sizeof(l->s) - 1)
        l->s[l->n++] = ' ';
    while (i > 0 && l->n < sizeof(l->s) - 1)
        l->s[l->n++] = d[--i];
}

/* Splits `s` in place at spaces into at most `max` words; returns how many. */
static int split(char *s, char **w, int max)
{
    int n = 0;
    while (*s && n < max) {
        while (*s == ' ')
            s++;
        if (!*s)
            break;
        w[n++] = s;
        while (*s && *s != ' ')
            s++;
        if (*s)
            *s++ = 0;
    }
    return n;
}

static int parse_u32(const char *s, uint32_t *v)
{
    uint32_t x = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || x > 429496728u)
            return -1;
        x = x * 10 + (uint32_t)(*s - '0');
    }
    *v = x;
    return 0;
}

/* ---- connections --------------------------------------------------------
 *
 * One struct per TCP connection this node takes part in.  Outgoing ones
 * (the client's three, the primary's two) are permanent slots that
 * reconnect by themselves; accepted ones live as long as the connection.
 * lwIP's callbacks get the struct as `arg`; received bytes are cut into
 * lines for the role's handler.
 */

struct conn {
    int used;
    struct tcp_pcb *pcb;            /* NULL once closed or freed by lwIP */
    int peer;                       /* node at the other end */
    uint16_t service;               /* the server's port: KV_PORT or REPL_PORT */
    uint16_t peer_port;             /* accepted: the peer's (ephemeral) port */
    int outgoing;
    int up;                         /* established */
    uint32_t since;                 /* outgoing: when this attempt started */
    uint32_t retry_at;              /* outgoing, failed: when to try again */
    char rx[160];
    unsigned rxlen;
};

#define MAX_CONNS 8
static struct conn conns[MAX_CONNS];

static void handle_line(struct conn *c, char *line);
static void role_connected(struct conn *c);

static struct conn *conn_alloc(void)
{
    for (int i = 0; i < MAX_CONNS; i++)
        if (!conns[i].used) {
            memset(&conns[i], 0, sizeof(conns[i]));
            conns[i].used = 1;
            return &conns[i];
        }
    printf("%s: out of connection slots\n", node_name(me));
    return NULL;
}

/* Forget a pcb: lwIP will not call us about it again. */
static void detach(struct tcp_pcb *pcb)
{
    tcp_arg(pcb, NULL);
    tcp_recv(pcb, NULL);            /* NULL: lwIP's tcp_recv_null() */
    tcp_err(pcb, NULL);
}

/* Queue one line; with `push`, hand everything queued to TCP now (Nagle
 * is off on every connection: each push is a segment of its own). */
static int send_line(struct conn *c, struct line *l, int push)
{
    if (!c || !c->pcb || !c->up)
        return -1;
    l->s[l->n++] = '\n';
    err_t e = tcp_write(c->pcb, l->s, (u16_t)l->n, TCP_WRITE_FLAG_COPY);
    if (e == ERR_OK && push)
        e = tcp_output(c->pcb);
    if (e != ERR_OK) {
        printf("%s: sending to %s failed (lwIP error %d)\n", node_name(me),
               node_name(c->peer), e);
        return -1;
    }
    return 0;
}

static void conn_gone(struct conn *c)
{
    c->pcb = NULL;
    c->up = 0;
    c->rxlen = 0;
    if (c->outgoing)
        c->retry_at = lwipkit_now() + CONNECT_RETRY_MS;
    else
        c->used = 0;
}

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    struct conn *c = arg;
    if (!p || err != ERR_OK) {
        if (p)
            pbuf_free(p);
        /* The peer closed its side (FIN): close ours. */
        printf("%s: %s closed its connection (port %u)\n", node_name(me),
               node_name(c->peer), c->outgoing ? pcb->local_port : pcb->remote_port);
        detach(pcb);
        conn_gone(c);
        if (tcp_close(pcb) != ERR_OK) {
            tcp_abort(pcb);
            return ERR_ABRT;
        }
        return ERR_OK;
    }
    for (struct pbuf *q = p; q; q = q->next) {
        const char *d = q->payload;
        for (u16_t i = 0; i < q->len; i++) {
            if (d[i] == '\n') {
                c->rx[c->rxlen] = 0;
                handle_line(c, c->rx);
                c->rxlen = 0;
            } else if (c->rxlen < sizeof(c->rx) - 1) {
                c->rx[c->rxlen++] = d[i];
            }
        }
    }
    tcp_recved(pcb, p->tot_len);
    pbuf_free(p);
    return ERR_OK;
}

/* lwIP has freed the pcb already (reset, refused, too many retries). */
static void on_err(void *arg, err_t err)
{
    struct conn *c = arg;
    if (!c)
        return;
    printf("%s: connection %s %s: %s\n", node_name(me), c->outgoing ? "to" : "from",
           node_name(c->peer), err == ERR_RST ? "reset" : err == ERR_ABRT ? "aborted"
           : err == ERR_CLSD ? "closed" : "failed");
    conn_gone(c);
}

static void setup_pcb(struct conn *c, struct tcp_pcb *pcb)
{
    c->pcb = pcb;
    tcp_arg(pcb, c);
    tcp_recv(pcb, on_recv);
    tcp_err(pcb, on_err);
    tcp_nagle_disable(pcb);         /* request/response lines: no batching */
}

static err_t on_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
    struct conn *c = arg;
    (void)err;                      /* always ERR_OK in lwIP 2.1 */
    c->up = 1;
    printf("%s: connected to %s:%u from port %u\n", node_name(me), node_name(c->peer),
           c->service, pcb->local_port);
    role_connected(c);
    return ERR_OK;
}

static void conn_connect(struct conn *c)
{
    struct tcp_pcb *pcb = tcp_new();
    if (!pcb) {
        c->retry_at = lwipkit_now() + CONNECT_RETRY_MS;
        return;
    }
    setup_pcb(c, pcb);
    c->up = 0;
    c->since = lwipkit_now();
    c->retry_at = 0;
    ip4_addr_t ip;
    lwipkit_node_ip(c->peer, &ip);
    ip_addr_t addr;
    ip_addr_copy_from_ip4(addr, ip);
    if (tcp_connect(pcb, &addr, c->service, on_connected) != ERR_OK) {
        detach(pcb);
        tcp_abort(pcb);
        conn_gone(c);
    }
}

static struct conn *conn_open(int peer, uint16_t service)
{
    struct conn *c = conn_alloc();
    if (!c)
        return NULL;
    c->peer = peer;
    c->service = service;
    c->outgoing = 1;
    conn_connect(c);
    return c;
}

/* Outgoing slots: reconnect after a failure; abandon silent attempts. */
static void conns_tick(uint32_t now)
{
    for (int i = 0; i < MAX_CONNS; i++) {
        struct conn *c = &conns[i];
        if (!c->used || !c->outgoing)
            continue;
        if (!c->pcb && (int32_t)(now - c->retry_at) >= 0) {
            conn_connect(c);
        } else if (c->pcb && !c->up && now - c->since >= CONNECT_TIMEOUT_MS) {
            printf("%s: no answer from %s:%u in %u ms, trying again\n", node_name(me),
                   node_name(c->peer), c->service, CONNECT_TIMEOUT_MS);
            detach(c->pcb);
            tcp_abort(c->pcb);      /* sends a RST for the attempt, frees it */
            c->pcb = NULL;
            conn_connect(c);
        }
    }
}

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
    uint16_t service = (uint16_t)(uintptr_t)arg;
    if (err != ERR_OK || !pcb)
        return ERR_VAL;
    struct conn *c = conn_alloc();
    if (!c) {
        tcp_abort(pcb);
        return ERR_ABRT;
    }
    c->peer = lwipkit_ip_node(ip_2_ip4(&pcb->remote_ip));
    c->service = service;
    c->peer_port = pcb->remote_port;
    c->up = 1;
    setup_pcb(c, pcb);
    printf("%s: %s connected to port %u from port %u\n", node_name(me),
           node_name(c->peer), service, pcb->remote_port);
    return ERR_OK;
}

static void listen_on(uint16_t port)
{
    struct tcp_pcb *pcb = tcp_new();
    if (!pcb || tcp_bind(pcb, IP_ADDR_ANY, port) != ERR_OK) {
        printf("%s: cannot bind port %u\n", node_name(me), port);
        finish(3, 0);
        return;
    }
    struct tcp_pcb *l = tcp_listen(pcb);
    if (!l) {
        printf("%s: cannot listen on port %u\n", node_name(me), port);
        finish(3, 0);
        return;
    }
    tcp_arg(l, (void *)(uintptr_t)port);
    tcp_accept(l, on_accept);
}

/* ==== primary ============================================================ */

static struct { uint32_t key, val; } wlog[MAX_WRITES + 1];
static uint32_t nwrites;            /* last write number given out */
static uint32_t reported;           /* last write answered OK to the client */
static struct conn *client_conn;    /* where the writes came from */

static struct replica {
    int node;
    const char *ack_marker;
    struct conn *c;
    uint32_t acked;                 /* highest write it acknowledged */
    uint32_t sent;                  /* highest write sent on this connection */
    uint32_t waiting_since;         /* oldest unacknowledged write: since */
} repl[2] = {
    { NODE_REPLICA1, "ack-r1", NULL, 0, 0, 0 },
    { NODE_REPLICA2, "ack-r2", NULL, 0, 0, 0 },
};

static void repl_send(struct replica *r, uint32_t s)
{
    struct line l = { .n = 0 };
    l_str(&l, "W");
    l_u32(&l, s);
    l_u32(&l, wlog[s].key);
    l_u32(&l, wlog[s].val);
    if (send_line(r->c, &l, 1) < 0)
        return;
    if (r->sent <= r->acked)        /* nothing was outstanding: start the clock */
        r->waiting_since = lwipkit_now();
    if (s > r->sent)
        r->sent = s;
}

static void primary_commit(void)
{
    uint32_t committed = repl[0].acked < repl[1].acked ? repl[0].acked : repl[1].acked;
    while (reported < committed) {
        reported++;
        marker("commit", reported);
        printf("primary: write #%u committed (both replicas have it)\n", reported);
        struct line l = { .n = 0 };
        l_str(&l, "OK");
        l_u32(&l, reported);
        send_line(client_conn, &l, 1);
    }
}

static void primary_line(struct conn *c, char **w, int n)
{
    uint32_t a, b;
    if (c->service == KV_PORT && n == 3 && strcmp(w[0], "SET") == 0
        && parse_u32(w[1], &a) == 0 && a < NKEYS && parse_u32(w[2], &b) == 0) {
        client_conn = c;
        if (nwrites == MAX_WRITES) {
            printf("primary: write log full, SET k%u refused\n", a);
            return;
        }
        uint32_t s = ++nwrites;
        wlog[s].key = a;
        wlog[s].val = b;
        marker("repl-send", s);
        printf("primary: write #%u k%u=%u: sending to both replicas\n", s, a, b);
        for (int i = 0; i < 2; i++)
            if (repl[i].c && repl[i].c->up)
                repl_send(&repl[i], s);
        return;
    }
    if (c->service == KV_PORT && n == 1 && strcmp(w[0], "BYE") == 0) {
        printf("primary: client says BYE after %u writes, %u committed\n", nwrites, reported);
        struct line l = { .n = 0 };
        l_str(&l, "BYE");
        send_line(c, &l, 1);
        finish(0, LINGER_MS);
        return;
    }
    for (int i = 0; i < 2; i++) {
        struct replica *r = &repl[i];
        if (c != r->c || n != 2 || strcmp(w[0], "A") != 0 || parse_u32(w[1], &a) != 0)
            continue;
        if (a > r->acked && a <= nwrites) {
            r->acked = a;
            r->waiting_since = lwipkit_now();   /* progress */
            marker(r->ack_marker, a);
        }
        primary_commit();
        return;
    }
    printf("primary: unexpected line from %s: %s\n", node_name(c->peer), w[0]);
}

/* A replica's connection is (again) up: send what it has not acknowledged. */
static void primary_connected(struct conn *c)
{
    for (int i = 0; i < 2; i++) {
        struct replica *r = &repl[i];
        if (r->c != c)
            continue;
        r->sent = r->acked;
        for (uint32_t s = r->acked + 1; s <= nwrites; s++) {
            marker("resend", s);
            printf("primary: resend #%u k%u=%u to %s on the new connection\n", s,
                   wlog[s].key, wlog[s].val, node_name(r->node));
            repl_send(r, s);
        }
    }
}

static void primary_tick(uint32_t now)
{
    for (int i = 0; i < 2; i++) {
        struct replica *r = &repl[i];
        if (!r->c || !r->c->up || r->sent <= r->acked
            || now - r->waiting_since < REPL_TIMEOUT_MS)
            continue;
        /*
         * The replica has sat on write #acked+1 for too long: the connection
         * is presumed dead.  Close it and start a fresh one.  tcp_close() is
         * the orderly close: lwIP keeps what it has not delivered queued and
         * goes on retransmitting it (then the FIN) - TCP's promise, which
         * the replica has to live with (see THE BUG at the top).
         */
        printf("primary: %s has not acknowledged #%u for %u ms (TCP's own "
               "timeout is %u ms, %u retransmissions so far): closing the "
               "connection (port %u), reconnecting\n", node_name(r->node),
               r->acked + 1, REPL_TIMEOUT_MS, r->c->pcb->rto * TCP_SLOW_INTERVAL,
               r->c->pcb->nrtx, r->c->pcb->local_port);
        marker("repl-timeout", (uint32_t)r->node);
        struct tcp_pcb *old = r->c->pcb;
        detach(old);
        if (tcp_close(old) != ERR_OK)
            tcp_abort(old);
        r->c->pcb = NULL;
        r->c->up = 0;
        marker("reconnect", (uint32_t)r->node);
        conn_connect(r->c);
    }
}

static void primary_start(void)
{
    printf("primary: replicating to replica1 and replica2, serving writes on port %u\n",
           KV_PORT);
    listen_on(KV_PORT);
    repl[0].c = conn_open(NODE_REPLICA1, REPL_PORT);
    repl[1].c = conn_open(NODE_REPLICA2, REPL_PORT);
}

/* ==== replicas =========================================================== */

static struct { uint32_t val, seq; } store[NKEYS];
static uint32_t applied;            /* "every write up to here is in" */

static void on_write(struct conn *c, uint32_t s, uint32_t key, uint32_t val)
{
    if (fix && s <= applied) {
        /* fix=1: an old copy (the late retransmission on a closed
         * connection): acknowledge it again, do not apply it. */
        marker("ignore-old", s);
        printf("%s: ignore #%u k%u=%u from port %u: already applied #%u\n",
               node_name(me), s, key, val, c->peer_port, applied);
    } else {
        /* BUG: nothing checks that #s is newer than what we hold.  An old
         * write delivered late overwrites a newer value of its key, and
         * `applied` keeps the higher number, so reads that require the
         * newer write are served the old value. */
        store[key].val = val;
        store[key].seq = s;
        if (s > applied)
            applied = s;
        marker("apply", s);
        printf("%s: apply #%u k%u=%u (from port %u), applied #%u\n",
               node_name(me), s, key, val, c->peer_port, applied);
    }
    struct line l = { .n = 0 };
    l_str(&l, "A");
    l_u32(&l, s);
    send_line(c, &l, 1);
}

static void replica_line(struct conn *c, char **w, int n)
{
    uint32_t a, b, d;
    if (c->service == REPL_PORT && n == 4 && strcmp(w[0], "W") == 0
        && parse_u32(w[1], &a) == 0 && parse_u32(w[2], &b) == 0 && b < NKEYS
        && parse_u32(w[3], &d) == 0) {
        on_write(c, a, b, d);
        return;
    }
    if (c->service == KV_PORT && n == 2 && strcmp(w[0], "GET") == 0
        && parse_u32(w[1], &a) == 0 && a < NKEYS) {
        marker("serve-read", a);
        printf("%s: GET k%u -> %u (applied #%u)\n", node_name(me), a, store[a].val, applied);
        struct line l = { .n = 0 };
        l_str(&l, "VAL");
        l_u32(&l, a);
        l_u32(&l, store[a].val);
        l_u32(&l, applied);
        send_line(c, &l, 1);
        return;
    }
    if (c->service == KV_PORT && n == 1 && strcmp(w[0], "BYE") == 0) {
        printf("%s: BYE; store:", node_name(me));
        for (int k = 1; k < NKEYS; k++)
            if (store[k].seq)
                printf(" k%d=%u(#%u)", k, store[k].val, store[k].seq);
        printf(", applied #%u\n", applied);
        struct line l = { .n = 0 };
        l_str(&l, "BYE");
        send_line(c, &l, 1);
        finish(0, LINGER_MS);
        return;
    }
    printf("%s: unexpected line from %s: %s\n", node_name(me), node_name(c->peer), w[0]);
}

static void replica_start(void)
{
    printf("%s: writes from the primary on port %u, reads on port %u%s\n", node_name(me),
           REPL_PORT, KV_PORT, fix ? " (fix=1: old writes are ignored)" : "");
    listen_on(REPL_PORT);
    listen_on(KV_PORT);
}

/* ==== client ============================================================= */

/*
 * The workload: a timetable, in milliseconds after the client's three
 * connections are up.  One operation at a time; one that is due while the
 * previous one is still waiting starts as soon as that one is done.
 *   W key val    write (waits for OK)
 *   B - n        the next n W entries at once, pipelined in one segment
 *                (their own times are ignored)
 *   R key node   read key at that replica and check it
 * clusters/tcpkv-bug.toml places its faults against this table.
 */
static const struct op {
    uint32_t at;
    char kind;
    uint32_t key;
    uint32_t val;                   /* W: value; B: count; R: replica node */
} ops[] = {
    {  100, 'W', 1, 10 },                   /* #1 */
    {  150, 'W', 2, 20 },                   /* #2 */
    {  200, 'R', 1, NODE_REPLICA1 },
    {  250, 'R', 2, NODE_REPLICA2 },
    {  300, 'B', 0, 4 },                    /* pipelined; bug cluster: the
                                               primary->replica1 link loses
                                               the first segment */
    {    0, 'W', 1, 11 },                   /* #3 */
    {    0, 'W', 2, 21 },                   /* #4 */
    {    0, 'W', 3, 30 },                   /* #5 */
    {    0, 'W', 4, 40 },                   /* #6 */
    {  350, 'R', 3, NODE_REPLICA1 },
    {  400, 'R', 1, NODE_REPLICA2 },
    {  500, 'W', 3, 31 },                   /* #7: bug cluster: the
                                               primary->replica2 link is dark */
    {  550, 'W', 3, 32 },                   /* #8 */
    {  600, 'R', 3, NODE_REPLICA1 },
    {  650, 'W', 4, 41 },                   /* #9 */
    {  700, 'R', 4, NODE_REPLICA2 },
    /* Then k3 is watched at both replicas, every half second. */
    { 1000, 'R', 3, NODE_REPLICA2 },
    { 1500, 'R', 3, NODE_REPLICA1 },
    { 2000, 'R', 3, NODE_REPLICA2 },
    { 2500, 'R', 3, NODE_REPLICA1 },
    { 3000, 'R', 3, NODE_REPLICA2 },
    { 3500, 'R', 3, NODE_REPLICA1 },
    { 4000, 'R', 3, NODE_REPLICA2 },        /* stale with the bug */
    { 4050, 'R', 2, NODE_REPLICA2 },
};
#define NOPS ((int)(sizeof(ops) / sizeof(ops[0])))

static struct conn *to[3];          /* by node: primary, replica1, replica2 */
static int op_i;                    /* next operation */
static int busy;                    /* an operation is waiting for answers */
static uint32_t op_started, t_base;
static int started;
static struct { uint32_t key, val; } pending[8];   /* writes awaiting OK, in order */
static int npending;
static uint32_t expect[NKEYS], expect_seq[NKEYS];  /* last committed write per key */
static uint32_t read_key;
static int read_at;
static int nreads, nstale, nbye, saying_bye;
static uint32_t bye_since;

static void client_set(uint32_t key, uint32_t val, int push)
{
    struct line l = { .n = 0 };
    l_str(&l, "SET");
    l_u32(&l, key);
    l_u32(&l, val);
    marker("write", key);
    printf("client: SET k%u=%u\n", key, val);
    if (npending < (int)(sizeof(pending) / sizeof(pending[0]))) {
        pending[npending].key = key;
        pending[npending].val = val;
        npending++;
    }
    send_line(to[NODE_PRIMARY], &l, push);
}

static void client_start_op(uint32_t now)
{
    const struct op *o = &ops[op_i++];
    busy = 1;
    op_started = now;
    if (o->kind == 'W') {
        client_set(o->key, o->val, 1);
    } else if (o->kind == 'B') {
        printf("client: %u writes at once\n", o->val);
        for (uint32_t i = 0; i < o->val && op_i < NOPS; i++, op_i++)
            client_set(ops[op_i].key, ops[op_i].val, i + 1 == o->val);
    } else {
        read_key = o->key;
        read_at = (int)o->val;
        marker("read", read_key);
        struct line l = { .n = 0 };
        l_str(&l, "GET");
        l_u32(&l, read_key);
        send_line(to[read_at], &l, 1);
    }
}

static void client_done_op(void)
{
    busy = 0;
}

static void client_line(struct conn *c, char **w, int n)
{
    uint32_t a, b, d;
    if (c == to[NODE_PRIMARY] && n == 2 && strcmp(w[0], "OK") == 0
        && parse_u32(w[1], &a) == 0 && npending > 0) {
        uint32_t key = pending[0].key, val = pending[0].val;
        for (int i = 1; i < npending; i++)
            pending[i - 1] = pending[i];
        npending--;
        expect[key] = val;
        expect_seq[key] = a;
        marker("commit", a);
        printf("client: k%u=%u committed as #%u\n", key, val, a);
        if (npending == 0)
            client_done_op();
        return;
    }
    if (n == 4 && strcmp(w[0], "VAL") == 0 && parse_u32(w[1], &a) == 0 && a < NKEYS
        && parse_u32(w[2], &b) == 0 && parse_u32(w[3], &d) == 0 && busy
        && c == to[read_at] && a == read_key) {
        nreads++;
        if (b == expect[a]) {
            marker("read-ok", a);
            printf("client: read k%u at %s -> %u ok\n", a, node_name(c->peer), b);
        } else {
            nstale++;
            marker("read-stale", a);
            printf("client: STALE READ k%u at %s: got %u, want %u (write #%u; "
                   "replica says applied #%u)\n", a, node_name(c->peer), b, expect[a],
                   expect_seq[a], d);
        }
        client_done_op();
        return;
    }
    if (n == 1 && strcmp(w[0], "BYE") == 0) {
        nbye++;
        return;
    }
    printf("client: unexpected line from %s: %s\n", node_name(c->peer), w[0]);
}

static void client_summary(void)
{
    if (nstale)
        printf("client: %d of %d reads STALE\n", nstale, nreads);
    else
        printf("client: all %d reads consistent\n", nreads);
    finish(nstale ? 1 : 0, 0);
}

static void client_tick(uint32_t now)
{
    if (saying_bye) {
        if (nbye == 3 || now - bye_since >= BYE_TIMEOUT_MS) {
            if (nbye < 3)
                printf("client: only %d of 3 servers answered BYE\n", nbye);
            client_summary();
        }
        return;
    }
    for (int i = 0; i < 3; i++)
        if (!to[i]->up)
            return;                 /* (re)connecting */
    if (!started) {
        started = 1;
        t_base = now;
        printf("client: connected to all three servers; the timetable starts\n");
    }
    if (busy) {
        if (now - op_started >= OP_TIMEOUT_MS) {
            printf("client: operation %d got no answer in %u ms\n", op_i - 1, OP_TIMEOUT_MS);
            finish(3, 0);
        }
        return;
    }
    if (op_i < NOPS) {
        if (now - t_base >= ops[op_i].at)
            client_start_op(now);
        return;
    }
    saying_bye = 1;
    bye_since = now;
    for (int i = 0; i < 3; i++) {
        struct line l = { .n = 0 };
        l_str(&l, "BYE");
        send_line(to[i], &l, 1);
    }
}

static void client_start(void)
{
    printf("client: %d operations; writes to the primary, reads at the replicas\n", NOPS);
    to[NODE_PRIMARY] = conn_open(NODE_PRIMARY, KV_PORT);
    to[NODE_REPLICA1] = conn_open(NODE_REPLICA1, KV_PORT);
    to[NODE_REPLICA2] = conn_open(NODE_REPLICA2, KV_PORT);
}

/* ==== dispatch and main loop ============================================ */

static void handle_line(struct conn *c, char *line)
{
    char *w[5];
    int n = split(line, w, 5);
    if (n == 0)
        return;
    switch (role) {
    case R_PRIMARY: primary_line(c, w, n); break;
    case R_REPLICA: replica_line(c, w, n); break;
    case R_CLIENT:  client_line(c, w, n); break;
    }
}

static void role_connected(struct conn *c)
{
    if (role == R_PRIMARY)
        primary_connected(c);
}

/* role=NAME from the command line. */
static int parse_role(enum role *r)
{
    const char *c = cmdline();
    while (*c) {
        if (strncmp(c, "role=", 5) == 0) {
            c += 5;
            size_t n = 0;
            while (c[n] && c[n] != ' ')
                n++;
            if (n == 7 && strncmp(c, "primary", 7) == 0)
                *r = R_PRIMARY;
            else if (n == 7 && strncmp(c, "replica", 7) == 0)
                *r = R_REPLICA;
            else if (n == 6 && strncmp(c, "client", 6) == 0)
                *r = R_CLIENT;
            else
                return -1;
            return 0;
        }
        while (*c && *c != ' ')
            c++;
        while (*c == ' ')
            c++;
    }
    return -1;
}

int kmain(struct hvm_start_info *si)
{
    (void)si;
    if (parse_role(&role) < 0) {
        printf("tcpkv: need role=primary|replica|client on the command line\n");
        return 2;
    }
    me = (int)cmdline_get_u64("id", 0);
    fix = cmdline_get_u64("fix", 0) != 0;
    int want = role == R_PRIMARY ? NODE_PRIMARY : role == R_CLIENT ? NODE_CLIENT : -1;
    if ((want >= 0 && me != want)
        || (role == R_REPLICA && me != NODE_REPLICA1 && me != NODE_REPLICA2)) {
        printf("tcpkv: role and id do not match (primary id=0, replicas 1 and 2, client 3)\n");
        return 2;
    }
    if (lwipkit_init() < 0)
        return 2;

    switch (role) {
    case R_PRIMARY: primary_start(); break;
    case R_REPLICA: replica_start(); break;
    case R_CLIENT:  client_start(); break;
    }
    for (;;) {
        lwipkit_poll();
        uint32_t now = lwipkit_now();
        conns_tick(now);
        if (role == R_PRIMARY)
            primary_tick(now);
        else if (role == R_CLIENT)
            client_tick(now);
        if (exit_code >= 0 && (int32_t)(now - exit_at) >= 0)
            break;
        if (now >= RUN_LIMIT_MS) {
            printf("%s: still running after %u ms, giving up\n", node_name(me), RUN_LIMIT_MS);
            exit_code = 4;
            break;
        }
        lwipkit_idle();
    }
    printf("%s: exit %d\n", node_name(me), exit_code);
    return exit_code;
}
