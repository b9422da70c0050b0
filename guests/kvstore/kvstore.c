/*
 * kvstore - a replicated key-value store with a planted bug.
 *
 *     cmdline: id=0 role=primary          the primary, which also runs the
 *                                         client workload
 *              id=1|2 role=backup [fix=1] a backup (fix=1: the corrected
 *                                         apply logic)
 *              [lose_from=A lose_to=B]    backup: ignore the first copy of
 *                                         writes #A..#B, as if a partition
 *                                         had eaten them (for QEMU, whose
 *                                         network cannot inject faults)
 *
 * Protocol (all messages are one struct msg in one frame):
 *
 *   start   The primary broadcasts JOIN every 10 ticks until both backups
 *           have answered HELLO.
 *   write   The primary numbers each write (#1, #2, ...), logs it and sends
 *           WRITE(#s, key, value) to both backups.  It is committed as soon
 *           as ONE backup answers ACK(#s) (primary + one backup = a majority
 *           of 3); without any ACK for 20 ticks it sends WRITE(#s) again.
 *           The primary never retransmits a committed write by itself.
 *   catch-up A backup that receives #s while the last write it knows is
 *           #a < s-1 has missed #a+1..#s-1 (a partition, a drop) and asks
 *           the primary for them with RESEND(a+1, s-1); the primary sends
 *           those WRITEs again from its log.
 *   read    The client reads from a backup: READ(key, min=#c) where #c is
 *           the last committed write.  A backup that has applied #c serves
 *           VALUE(value); one that has not answers NOTREADY, and the client
 *           asks the other backup (also after 5 ticks without an answer).
 *           The client knows what every committed write stored, so it
 *           checks each value it reads.
 *   end     DONE / DONE_ACK(state hash): each backup prints its store.
 *
 * The bug (backup, on_write()): writes are applied in ARRIVAL order and
 * the backup's "applied up to" is the HIGHEST write number it has seen.
 * Without a partition every write arrives once and in order, and all is
 * well.  When backup 2 misses writes #5..#8 behind a partition and the
 * first thing it hears after the heal is #9 (k3=32), it applies #9, asks
 * for #5..#8, and then applies them on top: #5 (k3=31) overwrites the newer
 * k3=32, while the backup still claims to have applied #9.  The next read
 * of k3 at backup 2 (min=#9) is served with 31:
 *
 *     kvstore: STALE READ key=3 got=31 want=32 (backup 2, applied #9)
 *
 * fix=1 applies writes strictly in sequence (later ones wait in a small
 * buffer until the gap is filled), which is what the code should do.
 *
 * Markers: primary "send-write" (#s), "commit" (#s), "resend" (#s),
 * "read" (key), "read-ok" (key), "read-stale" (key); backup "apply" (#s),
 * "gap" (first missing #), "serve-read" (key).
 */
#include "vmrr.h"

enum {
    M_JOIN = 1, M_HELLO, M_WRITE, M_ACK, M_RESEND,
    M_READ, M_VALUE, M_NOTREADY, M_DONE, M_DONE_ACK,
};

struct msg {
    uint8_t type;
    uint8_t key;
    uint16_t reserved;
    uint32_t seq;   /* WRITE/ACK/RESEND: write number (RESEND: first);
                       READ/VALUE/NOTREADY: request id */
    uint32_t val;   /* WRITE/VALUE: value; DONE_ACK: state hash */
    uint32_t aux;   /* RESEND: last; READ: min write; VALUE/NOTREADY/DONE_ACK: applied */
};

#define NKEYS         8
#define MAX_SEQ       63
#define START_TICK    10      /* first operation */
#define OP_GAP        8       /* ticks between operations */
#define JOIN_TICKS    10
#define RETX_TICKS    20      /* uncommitted write: send again */
#define READ_TIMEOUT  5
#define DONE_TICKS    10
#define LINGER_TICKS  50      /* backup: quiet time after DONE before exiting */
#define IDLE_TICKS    5000    /* backup: give up if nothing arrives for this long */

/*
 * The client workload: W = write key=val, R = read key at backup `at`.
 * Operation i starts at tick START_TICK + OP_GAP*i (i from 0).  The
 * bug cluster (clusters/kvstore-bug.toml) cuts backup 2 off from 70 ms to
 * 118 ms: writes #5..#8 (ops 8-13) miss it, #9 (op 14, 122 ms) reaches it
 * first after the heal, and op 16 (138 ms) reads k3 there.
 */
static const struct op {
    char kind;
    uint8_t key;
    uint32_t val;       /* W only */
    int at;             /* R only: backup asked first */
} ops[] = {
    { 'W', 1, 10, 0 },  /*  0  #1 */
    { 'W', 2, 20, 0 },  /*  1  #2 */
    { 'R', 1, 0, 1 },   /*  2 */
    { 'W', 3, 30, 0 },  /*  3  #3 */
    { 'R', 2, 0, 2 },   /*  4 */
    { 'W', 1, 11, 0 },  /*  5  #4 */
    { 'R', 3, 0, 2 },   /*  6 */
    { 'R', 1, 0, 1 },   /*  7 */
    { 'W', 3, 31, 0 },  /*  8  #5   (backup 2 partitioned in the bug cluster) */
    { 'W', 2, 21, 0 },  /*  9  #6 */
    { 'R', 3, 0, 2 },   /* 10       lost in the partition: retried at backup 1 */
    { 'W', 4, 40, 0 },  /* 11  #7 */
    { 'R', 2, 0, 1 },   /* 12 */
    { 'W', 1, 12, 0 },  /* 13  #8 */
    { 'W', 3, 32, 0 },  /* 14  #9   first write backup 2 sees after the heal */
    { 'R', 1, 0, 2 },   /* 15 */
    { 'R', 3, 0, 2 },   /* 16       STALE at backup 2 with the bug */
    { 'W', 4, 41, 0 },  /* 17  #10 */
    { 'R', 4, 0, 1 },   /* 18 */
    { 'R', 2, 0, 2 },   /* 19 */
    { 'R', 4, 0, 2 },   /* 20 */
};
#define NOPS ((int)(sizeof(ops) / sizeof(ops[0])))

static int me;

static void send_msg(int dst, uint8_t type, uint8_t key, uint32_t seq,
                     uint32_t val, uint32_t aux)
{
    struct msg m = { type, key, 0, seq, val, aux };
    net_send(dst, &m, sizeof(m));
}

/* Wait up to `ticks` for one well-formed message; 0 if one arrived. */
static int recv_msg(struct msg *m, int *src, uint64_t ticks)
{
    for (;;) {
        uint64_t start = pit_ticks();
        int n = net_recv(m, sizeof(*m), src, ticks);
        if (n < 0)
            return -1;
        if (n == (int)sizeof(*m))
            return 0;
        printf("kvstore: node %d: ignored a %d-byte frame from node %d\n", me, n, *src);
        uint64_t spent = pit_ticks() - start;
        if (ticks != NET_FOREVER)
            ticks = spent >= ticks ? 0 : ticks - spent;
    }
}

static uint32_t state_hash(const uint32_t *store)
{
    uint32_t h = 2166136261u;               /* FNV-1a over the words */
    for (int k = 0; k < NKEYS; k++) {
        h ^= store[k];
        h *= 16777619u;
    }
    return h;
}

/* ==== primary (and client) =========================================== */

static struct { uint8_t key; uint32_t val; } wlog[MAX_SEQ + 1];
static uint32_t last_seq;           /* last write sent (= last committed
                                       once its ACK is in) */
static uint32_t model[NKEYS];       /* what committed writes stored */
static uint64_t acked[3];           /* bit s: backup b acknowledged #s */
static int first_ack[MAX_SEQ + 1];  /* backup whose ACK committed #s */
static int joined[3];
static int done_acked[3];
static uint32_t done_hash[3], done_applied[3];
static uint32_t want_reqid;
static struct msg reply;
static int have_reply;

static void primary_handle(const struct msg *m, int src)
{
    if (src != 1 && src != 2)
        return;
    switch (m->type) {
    case M_HELLO:
        joined[src] = 1;
        break;
    case M_ACK:
        if (m->seq >= 1 && m->seq <= MAX_SEQ) {
            acked[src] |= 1ull << m->seq;
            if (!first_ack[m->seq])
                first_ack[m->seq] = src;
        }
        break;
    case M_RESEND:
        for (uint32_t s = m->seq; s >= 1 && s <= m->aux && s <= last_seq; s++) {
            printf("kvstore: backup %d asks for #%u: resend k%u=%u\n",
                   src, s, wlog[s].key, wlog[s].val);
            marker("resend", s);
            send_msg(src, M_WRITE, wlog[s].key, s, wlog[s].val, 0);
        }
        break;
    case M_VALUE:
    case M_NOTREADY:
        if (m->seq == want_reqid && !have_reply) {
            reply = *m;
            have_reply = 1;
        }
        break;
    case M_DONE_ACK:
        done_acked[src] = 1;
        done_hash[src] = m->val;
        done_applied[src] = m->aux;
        break;
    default:
        break;
    }
}

/*
 * Handle messages until tick `until`, or until `cond()` holds (checked
 * after every message); returns 1 if cond held, 0 at the deadline.
 */
static int pump(uint64_t until, int (*cond)(void))
{
    for (;;) {
        if (cond && cond())
            return 1;
        uint64_t now = pit_ticks();
        if (now >= until)
            return 0;
        struct msg m;
        int src;
        if (recv_msg(&m, &src, until - now) == 0)
            primary_handle(&m, src);
    }
}

static uint32_t cur_seq;
static int cur_committed(void) { return ((acked[1] | acked[2]) >> cur_seq) & 1; }
static int both_joined(void) { return joined[1] && joined[2]; }
static int got_reply(void) { return have_reply; }
static int both_done(void) { return done_acked[1] && done_acked[2]; }

static int do_write(uint8_t key, uint32_t val)
{
    uint32_t s = ++last_seq;
    wlog[s].key = key;
    wlog[s].val = val;
    cur_seq = s;
    marker("send-write", s);
    send_msg(1, M_WRITE, key, s, val, 0);
    send_msg(2, M_WRITE, key, s, val, 0);
    for (int tries = 0; !pump(pit_ticks() + RETX_TICKS, cur_committed); tries++) {
        if (tries == 10) {
            printf("kvstore: write #%u: no backup answers, giving up\n", s);
            return -1;
        }
        printf("kvstore: write #%u: no ack in %d ticks, sending it again\n", s, RETX_TICKS);
        for (int b = 1; b <= 2; b++)
            if (!((acked[b] >> s) & 1))
                send_msg(b, M_WRITE, key, s, val, 0);
    }
    model[key] = val;
    marker("commit", s);
    printf("kvstore: write #%u k%u=%u committed (first ack: backup %d)\n",
           s, key, val, first_ack[s]);
    return 0;
}

static uint32_t reqid;
static int nreads, nstale, nfailed;

static void do_read(uint8_t key, int at)
{
    uint32_t want = model[key];
    nreads++;
    for (int attempt = 0; attempt < 4; attempt++) {
        int b = (attempt % 2 == 0) ? at : 3 - at;
        want_reqid = ++reqid;
        have_reply = 0;
        marker("read", key);
        send_msg(b, M_READ, key, want_reqid, 0, last_seq);
        if (!pump(pit_ticks() + READ_TIMEOUT, got_reply)) {
            printf("kvstore: read k%u at backup %d: no answer in %d ticks, trying backup %d\n",
                   key, b, READ_TIMEOUT, 3 - b);
            continue;
        }
        if (reply.type == M_NOTREADY) {
            printf("kvstore: read k%u at backup %d: not ready (applied #%u < #%u), trying backup %d\n",
                   key, b, reply.aux, last_seq, 3 - b);
            continue;
        }
        if (reply.val == want) {
            marker("read-ok", key);
            printf("kvstore: read k%u at backup %d -> %u ok\n", key, b, reply.val);
        } else {
            marker("read-stale", key);
            printf("kvstore: STALE READ key=%u got=%u want=%u (backup %d, applied #%u)\n",
                   key, reply.val, want, b, reply.aux);
            nstale++;
        }
        return;
    }
    printf("kvstore: read k%u FAILED: no backup could serve it\n", key);
    nfailed++;
}

static int primary(void)
{
    printf("kvstore: primary, backups 1 and 2, %d operations\n", NOPS);

    /* Start: JOIN until both backups are there (they may boot later under
     * QEMU; under vmrr the first JOIN does it). */
    for (int tries = 0; !both_joined(); tries++) {
        if (tries == 100) {
            printf("kvstore: backups did not join\n");
            return 3;
        }
        for (int b = 1; b <= 2; b++)
            if (!joined[b])
                send_msg(b, M_JOIN, 0, 0, 0, 0);
        pump(pit_ticks() + JOIN_TICKS, both_joined);
    }
    printf("kvstore: backups joined\n");

    uint64_t base = pit_ticks() + 1;
    if (base < START_TICK)
        base = START_TICK;
    for (int i = 0; i < NOPS; i++) {
        pump(base + (uint64_t)OP_GAP * (uint64_t)i, NULL);
        const struct op *o = &ops[i];
        if (o->kind == 'W') {
            if (do_write(o->key, o->val) < 0)
                return 3;
        } else {
            do_read(o->key, o->at);
        }
    }

    /* End: tell the backups, collect their final state. */
    for (int tries = 0; !both_done(); tries++) {
        if (tries == 20) {
            printf("kvstore: backups did not confirm DONE\n");
            break;
        }
        for (int b = 1; b <= 2; b++)
            if (!done_acked[b])
                send_msg(b, M_DONE, 0, 0, 0, 0);
        pump(pit_ticks() + DONE_TICKS, both_done);
    }
    int diverged = 0;
    uint32_t h = state_hash(model);
    for (int b = 1; b <= 2; b++) {
        if (done_acked[b] && (done_hash[b] != h || done_applied[b] != last_seq)) {
            printf("kvstore: backup %d ended with a different state than the primary "
                   "(claims applied #%u)\n", b, done_applied[b]);
            diverged++;
        }
    }

    if (nstale == 0 && nfailed == 0)
        printf("kvstore: all %d reads consistent\n", nreads);
    else
        printf("kvstore: %d of %d reads STALE, %d failed\n", nstale, nreads, nfailed);
    return (nstale || nfailed || diverged) ? 1 : 0;
}

/* ==== backup ========================================================= */

static int fix;
static uint32_t lose_from, lose_to;     /* QEMU stand-in for a partition */
static uint64_t lost;                   /* bit s: first copy of #s ignored */
static uint32_t store[NKEYS];
static uint32_t applied;            /* see on_write(): the bug lives here */
static struct { uint8_t have, key; uint32_t val; } held[MAX_SEQ + 1];   /* fix=1 */

/* Kept out of line so that a debugger can break on every application. */
__attribute__((noinline)) void kv_apply(uint32_t seq, uint8_t key, uint32_t val)
{
    store[key] = val;
    marker("apply", seq);
    printf("kvstore: backup %d: apply #%u k%u=%u\n", me, seq, key, val);
}

static void ask_resend(uint32_t first, uint32_t last)
{
    marker("gap", first);
    printf("kvstore: backup %d: got #%u but have only #%u: ask for #%u..#%u\n",
           me, last + 1, first - 1, first, last);
    send_msg(0, M_RESEND, 0, first, 0, last);
}

static void on_write(const struct msg *m)
{
    uint32_t s = m->seq;
    if (s < 1 || s > MAX_SEQ || m->key >= NKEYS)
        return;
    if (s >= lose_from && s <= lose_to && !((lost >> s) & 1)) {
        lost |= 1ull << s;
        printf("kvstore: backup %d: lose #%u (lose_from=%u lose_to=%u)\n",
               me, s, lose_from, lose_to);
        return;
    }

    if (!fix) {
        /*
         * Writes can come out of order after a partition: apply each one as
         * it arrives, ask for the ones we missed, and remember the newest
         * write we have seen as "applied".
         *
         * BUG: a late write (a resent #5 arriving after #9) is applied over
         * the newer value of its key - there is no version check - and
         * `applied` claims #9 while the store holds #5's value for k3.
         */
        if (s > applied + 1)
            ask_resend(applied + 1, s - 1);
        kv_apply(s, m->key, m->val);
        if (s > applied)
            applied = s;
        send_msg(0, M_ACK, 0, s, 0, 0);
        return;
    }

    /* fix=1: apply strictly in order; hold later writes until the gap is
     * filled; duplicates are only acknowledged again. */
    if (s <= applied) {
        send_msg(0, M_ACK, 0, s, 0, 0);
        return;
    }
    if (s > applied + 1) {
        if (!held[s].have) {
            held[s].have = 1;
            held[s].key = m->key;
            held[s].val = m->val;
            ask_resend(applied + 1, s - 1);
        }
        return;
    }
    kv_apply(s, m->key, m->val);
    applied = s;
    send_msg(0, M_ACK, 0, s, 0, 0);
    while (applied < MAX_SEQ && held[applied + 1].have) {
        uint32_t n = applied + 1;
        held[n].have = 0;
        kv_apply(n, held[n].key, held[n].val);
        applied = n;
        send_msg(0, M_ACK, 0, n, 0, 0);
    }
}

static void on_read(const struct msg *m)
{
    if (m->key >= NKEYS)
        return;
    if (applied < m->aux) {
        printf("kvstore: backup %d: read k%u needs #%u, have #%u: not ready\n",
               me, m->key, m->aux, applied);
        send_msg(0, M_NOTREADY, m->key, m->seq, 0, applied);
        return;
    }
    marker("serve-read", m->key);
    printf("kvstore: backup %d: read k%u -> %u\n", me, m->key, store[m->key]);
    send_msg(0, M_VALUE, m->key, m->seq, store[m->key], applied);
}

static int backup(void)
{
    printf("kvstore: backup %d%s\n", me, fix ? " (fix=1: in-order apply)" : "");
    int done = 0;
    for (;;) {
        struct msg m;
        int src;
        if (recv_msg(&m, &src, done ? LINGER_TICKS : IDLE_TICKS) < 0) {
            if (done)
                return 0;
            printf("kvstore: backup %d: nothing from the primary for %d ticks, giving up\n",
                   me, IDLE_TICKS);
            return 2;
        }
        if (src != 0)
            continue;
        switch (m.type) {
        case M_JOIN:
            send_msg(0, M_HELLO, 0, 0, 0, 0);
            break;
        case M_WRITE:
            on_write(&m);
            break;
        case M_READ:
            on_read(&m);
            break;
        case M_DONE:
            if (!done) {
                printf("kvstore: backup %d: done, applied #%u, store", me, applied);
                for (int k = 1; k < NKEYS; k++)
                    if (store[k])
                        printf(" k%d=%u", k, store[k]);
                printf("\n");
            }
            done = 1;
            send_msg(0, M_DONE_ACK, 0, 0, state_hash(store), applied);
            break;
        default:
            break;
        }
    }
}

/* ==== start ========================================================== */

/* Is `tok` one of the command line's whitespace-separated tokens? */
static int has_token(const char *tok)
{
    const char *p = cmdline();
    size_t n = strlen(tok);
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *t = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if ((size_t)(p - t) == n && strncmp(t, tok, n) == 0)
            return 1;
    }
    return 0;
}

int kmain(struct hvm_start_info *si)
{
    (void)si;
    if (net_init() < 0)
        return 2;
    me = net_node_id();
    fix = cmdline_get_u64("fix", 0) != 0;
    lose_from = (uint32_t)cmdline_get_u64("lose_from", 0);
    lose_to = (uint32_t)cmdline_get_u64("lose_to", 0);
    int want_primary = me == 0;
    if ((has_token("role=primary") && !want_primary) ||
        (has_token("role=backup") && want_primary) || me > 2) {
        printf("kvstore: id=0 is the primary (role=primary), id=1 and id=2 the backups (role=backup)\n");
        return 2;
    }
    return want_primary ? primary() : backup();
}
