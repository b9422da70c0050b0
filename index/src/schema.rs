//! The schema of `index.sqlite`, its version, and the migration framework.
//! `index/SCHEMA.md` describes the same tables for people writing SQL.

/// The schema version this build writes, and the newest it reads. Stored in
/// `meta.schema_version` and in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 3;

/// `PRAGMA application_id` of a vmrr index: the ASCII bytes "vmrr".
pub const APPLICATION_ID: i64 = 0x766d_7272;

/// The file name of the index inside a trace directory.
pub const INDEX_FILE_NAME: &str = "index.sqlite";

/// The tables every index of this schema has (checked on open).
pub(crate) const TABLES: [&str; 8] = [
    "meta",
    "vms",
    "events",
    "frames",
    "checkpoints",
    "bookmarks",
    "exec_slices",
    "packets",
];

/// The indexes the queries name (`INDEXED BY`), checked on open.
pub(crate) const INDEXES: [&str; 4] = [
    "events_vm_icount",
    "events_vm_vtime",
    "events_vtime",
    "events_kind",
];

/// Schema version 1 (tables and indexes). `Index::create` runs it and then
/// every migration, inside one transaction, so a new index and a migrated
/// one are the same.
///
/// * `events` keeps `kind` as free text so that future kinds need no schema
///   change; `value` is a 64-bit pattern (see `rows.rs`).
/// * `events_vm_icount` serves per-VM navigation, `events_vtime` the cluster
///   order (vtime_ns, vm, icount, id) and time windows, `events_kind` the same
///   for one kind, `events_vm_vtime` "the next event of VM w after time t".
///   Each index ends with the rowid (= id), so the full order comes from it.
/// * `frames` has one row per (frame, destination); its primary key serves
///   "receipts of send N"; `frames_src_sent` and `frames_dst_recv` the two
///   ends of the causal edge.
/// * `checkpoints`' primary key (vm, icount) serves "nearest at or before".
pub const SCHEMA_V1: &str = "
CREATE TABLE meta(
    key   TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE vms(
    id             INTEGER PRIMARY KEY,
    name           TEXT UNIQUE,
    image          TEXT,
    image_hash     TEXT,
    mem_bytes      INTEGER,
    cmdline        TEXT,
    instr_per_us   INTEGER,
    mac            TEXT,
    final_icount   INTEGER,
    final_vtime_ns INTEGER,
    stop           TEXT
);
CREATE TABLE events(
    id       INTEGER PRIMARY KEY,
    vm       INTEGER NOT NULL,
    icount   INTEGER NOT NULL,
    vtime_ns INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    value    INTEGER,
    payload  BLOB,
    text     TEXT
);
CREATE INDEX events_vm_icount ON events(vm, icount);
CREATE INDEX events_vm_vtime  ON events(vm, vtime_ns, icount);
CREATE INDEX events_vtime     ON events(vtime_ns, vm, icount);
CREATE INDEX events_kind      ON events(kind, vtime_ns, vm, icount);
CREATE TABLE frames(
    id            INTEGER NOT NULL,
    src           INTEGER NOT NULL,
    dst           INTEGER NOT NULL,
    len           INTEGER NOT NULL,
    sent_icount   INTEGER NOT NULL,
    sent_vtime_ns INTEGER NOT NULL,
    arrival_ns    INTEGER NOT NULL,
    recv_icount   INTEGER NULL,
    recv_vtime_ns INTEGER NULL,
    fate          TEXT NOT NULL,
    payload       BLOB,
    PRIMARY KEY (id, dst)
);
CREATE INDEX frames_src_sent ON frames(src, sent_icount);
CREATE INDEX frames_dst_recv ON frames(dst, recv_icount);
CREATE TABLE checkpoints(
    vm         INTEGER NOT NULL,
    icount     INTEGER NOT NULL,
    vtime_ns   INTEGER NOT NULL,
    state_hash TEXT NOT NULL,
    manifest   TEXT NOT NULL,
    PRIMARY KEY (vm, icount)
) WITHOUT ROWID;
CREATE TABLE bookmarks(
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    note     TEXT NOT NULL DEFAULT '',
    vm       INTEGER NOT NULL,
    icount   INTEGER NOT NULL,
    vtime_ns INTEGER NOT NULL,
    created  TEXT NOT NULL
);
";

/// One step of migration: SQL that turns schema `from` into `from + 1`.
pub(crate) struct Migration {
    /// The version it starts from.
    pub from: i64,
    /// The SQL to run (in one transaction, together with the version bump).
    pub sql: &'static str,
}

/// Schema 2: the execution index (`exec_slices`: per VM and checkpoint
/// slice, the instruction addresses run and the 8-byte words of memory
/// written, as packed sets), and each checkpoint file's hash (`checkpoints.file_hash`, NULL for
/// checkpoints recorded before it).
pub const SCHEMA_V2: &str = "
CREATE TABLE exec_slices(
    vm         INTEGER NOT NULL,
    icount     INTEGER NOT NULL,
    end_icount INTEGER NOT NULL,
    addrs      BLOB NOT NULL,
    words      BLOB NOT NULL,
    pages      BLOB NOT NULL,
    PRIMARY KEY (vm, icount)
) WITHOUT ROWID;
ALTER TABLE checkpoints ADD COLUMN file_hash TEXT;
";

/// Schema 3: `packets`, every frame sent, once (not once per destination
/// as `frames`), with its bytes and its decoded headers as columns
/// (`crate::decode`), and `tcp_segments`, a view of its TCP rows with the
/// flags spelled out and sequence numbers relative to the connection's SYN
/// (as Wireshark shows them; NULL where no SYN was seen). A migrated trace
/// has no packets (its sends kept no bytes; `Index::fill_packets_from_receipts`,
/// run by `vmrr index`, keeps those of the frames received); where it keeps
/// checksums, the one of the empty table is added, so the trace still opens
/// as undamaged.
///
/// * `packets_flow` serves "the next segment of this TCP flow" (a
///   retransmission, the ACK covering a segment); `packets_vtime` time
///   windows (`vmrr pcap --from/--to`); `packets_src_sent` the frames one
///   instruction sent (verification compares their bytes with the replay's).
pub const SCHEMA_V3: &str = "
CREATE TABLE packets(
    id            INTEGER PRIMARY KEY,
    src           INTEGER NOT NULL,
    sent_icount   INTEGER NOT NULL,
    sent_vtime_ns INTEGER NOT NULL,
    len           INTEGER NOT NULL,
    bytes         BLOB NOT NULL,
    proto         TEXT NOT NULL,
    eth_dst       TEXT,
    eth_src       TEXT,
    ethertype     INTEGER,
    ip_src        TEXT,
    ip_dst        TEXT,
    ip_proto      INTEGER,
    src_port      INTEGER,
    dst_port      INTEGER,
    tcp_seq       INTEGER,
    tcp_ack       INTEGER,
    tcp_flags     INTEGER,
    tcp_window    INTEGER,
    payload_len   INTEGER,
    arp_op        INTEGER,
    icmp_type     INTEGER,
    icmp_code     INTEGER,
    malformed     TEXT
);
CREATE INDEX packets_flow  ON packets(ip_src, src_port, ip_dst, dst_port);
CREATE INDEX packets_vtime ON packets(sent_vtime_ns);
CREATE INDEX packets_src_sent ON packets(src, sent_icount);
CREATE VIEW tcp_segments AS
SELECT id, src, sent_icount, sent_vtime_ns, ip_src, src_port, ip_dst, dst_port,
       tcp_seq AS seq, tcp_ack AS ack, tcp_window AS win, payload_len AS len,
       rtrim(CASE WHEN tcp_flags & 1   THEN 'FIN,' ELSE '' END ||
             CASE WHEN tcp_flags & 2   THEN 'SYN,' ELSE '' END ||
             CASE WHEN tcp_flags & 4   THEN 'RST,' ELSE '' END ||
             CASE WHEN tcp_flags & 8   THEN 'PSH,' ELSE '' END ||
             CASE WHEN tcp_flags & 16  THEN 'ACK,' ELSE '' END ||
             CASE WHEN tcp_flags & 32  THEN 'URG,' ELSE '' END ||
             CASE WHEN tcp_flags & 64  THEN 'ECE,' ELSE '' END ||
             CASE WHEN tcp_flags & 128 THEN 'CWR,' ELSE '' END, ',') AS flags,
       (tcp_seq - (SELECT s.tcp_seq FROM packets s
                   WHERE s.proto = 'tcp' AND s.ip_src = p.ip_src AND s.src_port = p.src_port
                     AND s.ip_dst = p.ip_dst AND s.dst_port = p.dst_port
                     AND s.tcp_flags & 2 AND s.id <= p.id
                   ORDER BY s.id DESC LIMIT 1)) & 4294967295 AS rel_seq,
       CASE WHEN tcp_flags & 16 THEN
       (tcp_ack - (SELECT s.tcp_seq FROM packets s
                   WHERE s.proto = 'tcp' AND s.ip_src = p.ip_dst AND s.src_port = p.dst_port
                     AND s.ip_dst = p.ip_src AND s.dst_port = p.src_port
                     AND s.tcp_flags & 2 AND s.id <= p.id
                   ORDER BY s.id DESC LIMIT 1)) & 4294967295 END AS rel_ack
FROM packets p WHERE proto = 'tcp';
INSERT INTO meta(key, value)
SELECT 'checksum.packets', '00000000000000000000000000000000'
WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'checksum.inputs');
";

/// Every migration, oldest first.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        from: 1,
        sql: SCHEMA_V2,
    },
    Migration {
        from: 2,
        sql: SCHEMA_V3,
    },
];

/// The migrations that take `from` up to [`SCHEMA_VERSION`], in order, or the
/// first version that has no way forward.
pub(crate) fn migration_path(from: i64) -> Result<Vec<&'static Migration>, i64> {
    let mut path = Vec::new();
    let mut v = from;
    while v < SCHEMA_VERSION {
        match MIGRATIONS.iter().find(|m| m.from == v) {
            Some(m) => path.push(m),
            None => return Err(v),
        }
        v += 1;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_version_needs_no_migration() {
        assert!(matches!(migration_path(SCHEMA_VERSION), Ok(p) if p.is_empty()));
    }

    #[test]
    fn older_versions_migrate_one_step_at_a_time() {
        assert!(matches!(migration_path(1), Ok(p) if p.len() == 2 && p[0].from == 1 && p[1].from == 2));
        assert!(matches!(migration_path(2), Ok(p) if p.len() == 1 && p[0].from == 2));
    }

    #[test]
    fn version_zero_has_no_path() {
        assert!(matches!(migration_path(0), Err(0)));
    }
}
