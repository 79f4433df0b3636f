/* W1's apply path written in plain C: the floor of what Tributary's append semantics cost on this
 * machine, beside the raw-LMDB reference (which only puts each JSON line).
 *
 *   w1-apply-floor DIR EVENTS.jsonl [sync|nosync]
 *
 * Like `tributary bench` W1, the events are decoded into fields before the clock starts. Then, per
 * batch of 1000, one batch in flight: validate every field as ChangeRecord.validate does (id
 * alphabets, printable hashes, the row's primary key equal to the entityId); then, in one write
 * transaction, dedupe by changeId and apply Trilium's last-writer-wins rule against the latest
 * change of the entity, both looked up in open-addressing hash tables that stand for the index
 * overlay (sized up front, as the overlay is); record each appended change there and in the
 * indexer's queue; encode Tributary's record format (15-byte header, CRC32C, length-prefixed
 * fields, the row) straight into the value LMDB reserves, put with MDB_APPEND; commit (fdatasync
 * unless nosync). The on-disk indexes trail, as in Tributary, and are not timed.
 *
 * Nothing here allocates per record, and validation runs on one thread: a floor, not a model of
 * Swift. Build: scripts/w1-apply-floor.sh compiles it with the reference's common.h and Tributary's
 * CRC32C. */
#include "common.h"
#include "CCRC32C.h"
#include <lmdb.h>

#define CHK(x) do { int rc_ = (x); if (rc_) DIE("%s: %s", #x, mdb_strerror(rc_)); } while (0)

typedef struct {
    const char *p;
    uint8_t n;
} span_t;

typedef struct {
    uint8_t name;          /* entity name code */
    span_t entityId, hash, changeId, componentId, instanceId;
    int64_t date;          /* utcDateChanged, ms since the epoch */
    uint8_t isErased, isSynced;
    const char *row;       /* the entity's JSON object, or NULL for an erasure */
    uint32_t rowLen;
} rec_t;

static const char *names[] = {"notes", "branches", "attributes", "revisions", "attachments",
                              "blobs", "options", "etapi_tokens", "note_reordering"};
/* Each name's primary-key member as it starts in a row: `"noteId":"`. */
static const char *primaryKeys[] = {"\"noteId\":\"", "\"branchId\":\"", "\"attributeId\":\"", "\"revisionId\":\"",
                                    "\"attachmentId\":\"", "\"blobId\":\"", "\"name\":\"", "\"etapiTokenId\":\"", NULL};

static const char *after(const char *line, const char *key) {
    const char *s = strstr(line, key);
    return s ? s + strlen(key) : NULL;
}

static span_t string_field(const char *line, const char *key) {
    const char *s = after(line, key);
    if (!s) DIE("no %s in %.80s", key, line);
    const char *e = strchr(s, '"');
    return (span_t){s, (uint8_t)(e - s)};
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* "2024-01-01 00:00:00.005Z" */
static int64_t parse_date(const char *s) {
    int y, mo, d, h, mi, se, ms;
    if (sscanf(s, "%4d-%2d-%2d %2d:%2d:%2d.%3dZ", &y, &mo, &d, &h, &mi, &se, &ms) != 7) DIE("bad date %.24s", s);
    return ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 24 + h) * 60 + mi) * 60000 + se * 1000 + ms;
}

static void decode(const char *line, size_t len, rec_t *r) {
    span_t name = string_field(line, "\"entityName\":\"");
    r->name = 255;
    for (uint8_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strlen(names[i]) == name.n && !memcmp(names[i], name.p, name.n)) r->name = i;
    if (r->name == 255) DIE("unknown entity name in %.80s", line);
    r->entityId = string_field(line, "\"entityId\":\"");
    r->hash = string_field(line, "\"hash\":\"");
    r->changeId = string_field(line, "\"changeId\":\"");
    r->componentId = string_field(line, "\"componentId\":\"");
    r->instanceId = string_field(line, "\"instanceId\":\"");
    r->date = parse_date(after(line, "\"utcDateChanged\":\""));
    r->isErased = *after(line, "\"isErased\":") == '1';
    r->isSynced = *after(line, "\"isSynced\":") == '1';
    const char *row = after(line, "},\"entity\":");
    r->row = row;
    r->rowLen = row ? (uint32_t)(line + len - 1 - row) : 0;  /* up to the line's closing brace */
}

/* ---- validation, as ChangeRecord.validate checks each field ---- */

static int id_byte(unsigned char b) {
    return (b >= '0' && b <= '9') || (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || b == '_' || b == '.' ||
           b == ':' || b == '-';
}
static int alnum_byte(unsigned char b) {
    return (b >= '0' && b <= '9') || (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z');
}
static int printable_byte(unsigned char b) { return b > 0x20 && b < 0x7f; }
static int all(span_t s, int max, int (*ok)(unsigned char)) {
    if (s.n == 0 || s.n > max) return 0;
    for (int i = 0; i < s.n; i++)
        if (!ok((unsigned char)s.p[i])) return 0;
    return 1;
}

static int valid(const rec_t *r) {
    if (!all(r->entityId, 128, id_byte) || !all(r->hash, 64, printable_byte) || !all(r->changeId, 64, alnum_byte) ||
        !all(r->componentId, 128, printable_byte) || !all(r->instanceId, 64, alnum_byte))
        return 0;
    if (!r->row) return r->isErased;
    if (r->isErased) return 0;
    const char *pk = primaryKeys[r->name];
    if (!pk) return 1;
    /* the row's primary key member */
    size_t nl = strlen(pk);
    const char *v = memmem(r->row, r->rowLen, pk, nl);
    if (!v) return 0;
    v += nl;
    return (size_t)(r->row + r->rowLen - v) > r->entityId.n && !memcmp(v, r->entityId.p, r->entityId.n) &&
           v[r->entityId.n] == '"';
}

/* ---- the overlay: open addressing, linear probing, keys pointing into the loaded input ---- */

/* 32 bytes: the key itself is read from its record only when the hashes match. */
typedef struct {
    uint64_t hash;         /* 0: empty slot */
    uint32_t rec;          /* the record whose key this is */
    uint32_t isErased;
    uint64_t id;
    int64_t date;
} slot_t;

typedef struct {
    slot_t *slots;
    size_t mask;
} table_t;

static void table_init(table_t *t, size_t entries) {
    size_t cap = 16;
    while (cap < entries * 2) cap <<= 1;
    t->slots = calloc(cap, sizeof(slot_t));
    t->mask = cap - 1;
}

/* 8 bytes at a time, multiplied and folded. */
static uint64_t hash_bytes(uint8_t name, const char *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull * (name + 1) ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    memcpy(&w, p + i, n - i);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    return h | 1;
}

static const rec_t *recs;

/* The slot holding the key, or the empty slot where it would go; `field` picks the key from a
 * record (0: changeId, 1: name and entityId). */
static slot_t *table_find(table_t *t, int field, uint8_t name, span_t key, uint64_t h) {
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        slot_t *s = &t->slots[i];
        if (!s->hash) return s;
        if (s->hash != h) continue;
        const rec_t *o = &recs[s->rec];
        span_t k = field ? o->entityId : o->changeId;
        if ((!field || o->name == name) && k.n == key.n && !memcmp(k.p, key.p, key.n)) return s;
    }
}

/* ---- Tributary's record format (Sources/EventLog/RecordCodec.swift) ---- */

static size_t encoded_size(const rec_t *r) {
    return 15 + 6 + r->entityId.n + r->hash.n + r->changeId.n + r->componentId.n + 2 * r->instanceId.n + r->rowLen;
}

static void encode(const rec_t *r, unsigned char *out, size_t size) {
    size_t p = 0;
    out[p++] = 1;
    p += 4;
    out[p++] = (unsigned char)((r->isErased ? 1 : 0) | (r->isSynced ? 2 : 0) | (r->row ? 4 : 0));
    out[p++] = r->name;
    memcpy(out + p, &r->date, 8);
    p += 8;
    span_t fields[6] = {r->entityId, r->hash, r->changeId, r->componentId, r->instanceId, r->instanceId};
    for (int i = 0; i < 6; i++) {
        out[p++] = fields[i].n;
        memcpy(out + p, fields[i].p, fields[i].n);
        p += fields[i].n;
    }
    if (r->row) {
        memcpy(out + p, r->row, r->rowLen);
        p += r->rowLen;
    }
    if (p != size) DIE("record size mismatch");
    uint32_t crc = tributary_crc32c(0, out + 5, size - 5);
    memcpy(out + 1, &crc, 4);
}

int main(int argc, char **argv) {
    if (argc < 3) DIE("usage: w1-apply-floor DIR EVENTS.jsonl [sync|nosync]");
    const char *dir = argv[1];
    int nosync = argc > 3 && !strcmp(argv[3], "nosync");
    const size_t batch = 1000;
    lines_t L;
    load_lines(argv[2], 0, &L);
    rec_t *decoded = malloc(L.n * sizeof(rec_t));
    for (size_t i = 0; i < L.n; i++) decode(L.line[i], L.len[i], &decoded[i]);
    recs = decoded;

    MDB_env *env;
    CHK(mdb_env_create(&env));
    CHK(mdb_env_set_mapsize(env, (size_t)64 << 30));
    CHK(mdb_env_set_maxdbs(env, 8));
    CHK(mdb_env_open(env, dir, nosync ? MDB_NOSYNC : 0, 0644));
    MDB_txn *txn;
    MDB_dbi changes;
    CHK(mdb_txn_begin(env, NULL, 0, &txn));
    CHK(mdb_dbi_open(txn, "changes", MDB_CREATE, &changes));
    CHK(mdb_txn_commit(txn));

    table_t current, changeIds;
    table_init(&current, L.n);
    table_init(&changeIds, L.n);
    struct { uint64_t id; uint32_t rec; } *queue = malloc(L.n * sizeof *queue);  /* the indexer's queue */
    size_t queued = 0, applied = 0, duplicates = 0, lost = 0;

    size_t ncommits = (L.n + batch - 1) / batch;
    double *lat = malloc(ncommits * sizeof(double));
    uint64_t nextId = 1;
    unsigned char key[8];
    double t0 = now_s();
    size_t c = 0;
    for (size_t i = 0; i < L.n; c++) {
        double tc = now_s();
        size_t end = i + batch < L.n ? i + batch : L.n;
        for (size_t j = i; j < end; j++)
            if (!valid(&recs[j])) DIE("line %zu is not valid", j + 1);
        CHK(mdb_txn_begin(env, NULL, 0, &txn));
        for (; i < end; i++) {
            const rec_t *r = &recs[i];
            uint64_t ch = hash_bytes(0, r->changeId.p, r->changeId.n);
            slot_t *seen = table_find(&changeIds, 0, 0, r->changeId, ch);
            if (seen->hash) { duplicates++; continue; }
            uint64_t kh = hash_bytes(r->name, r->entityId.p, r->entityId.n);
            slot_t *latest = table_find(&current, 1, r->name, r->entityId, kh);
            if (latest->hash && latest->date > r->date) { lost++; continue; }
            uint64_t id = nextId++;
            *seen = (slot_t){.hash = ch, .rec = (uint32_t)i, .id = id};
            *latest = (slot_t){.hash = kh, .rec = (uint32_t)i, .isErased = r->isErased, .id = id, .date = r->date};
            queue[queued].id = id;
            queue[queued++].rec = (uint32_t)i;
            for (int b = 7; b >= 0; b--) key[7 - b] = (unsigned char)(id >> (8 * b));
            size_t size = encoded_size(r);
            MDB_val k = {8, key}, v = {size, NULL};
            CHK(mdb_put(txn, changes, &k, &v, MDB_APPEND | MDB_RESERVE));
            encode(r, v.mv_data, size);
            applied++;
        }
        CHK(mdb_txn_commit(txn));
        lat[c] = (now_s() - tc) * 1e3;
    }
    double secs = now_s() - t0;
    qsort(lat, c, sizeof(double), cmp_double);
    char extra[256];
    snprintf(extra, sizeof extra, "durability=%s batch=%zu commit_p50_ms=%.2f commit_p99_ms=%.2f applied=%zu duplicates=%zu lost=%zu",
             nosync ? "none" : "fsync", batch, pct(lat, c, 50), pct(lat, c, 99), applied, duplicates, lost);
    result("W1-append", "c-apply-floor", nosync ? "nosync" : "sync", L.n, secs, (double)L.total, extra);
    mdb_env_close(env);
    return 0;
}
