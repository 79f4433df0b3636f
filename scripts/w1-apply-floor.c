/* W1's apply path written in plain C: the floor of what Tributary's append semantics cost on this
 * machine, beside the raw-LMDB reference (which only puts each JSON line).
 *
 *   w1-apply-floor DIR EVENTS.jsonl [sync|nosync] [http|pull|pull-compacted]
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
 * With `http`, the same over loopback HTTP, as `tributary bench --http` runs its http-sync-update
 * variant: a client thread sends each batch as a PUT /api/sync/update body (`{"entities":[…]}`,
 * built before the clock starts) on one keep-alive connection and waits for the answer before the
 * next; the server reads the request, decodes the body with simdjson
 * (scripts/w1-http-floor-json.cc), applies it as above and answers 204. The received bodies are
 * kept, as the overlay's keys point into them. There commit_p50_ms and commit_p99_ms are the
 * client's request times, as in Tributary's HTTP variants; apply_p50_ms and decode_mean_ms are
 * the server's.
 *
 * With `pull`, W4 full-history: a hub's log is written from the events first (not timed, no
 * fsync); then a fresh node catches up from it over loopback HTTP. The hub answers each
 * GET /api/sync/changed with the next 1000 records, read with a cursor, their CRC checked, and
 * written as Trilium's pull JSON; the fresh node's fetcher thread decodes each page with simdjson
 * and hands it to the applier (the main thread, applying as above), then asks for the next: one
 * page ahead, as Tributary's sync engine prefetches. Caught up, the node runs the content-hash
 * check as Tributary's sync engine does: it asks the hub for GET /api/sync/check and computes its
 * own digests meanwhile (both whole, from every entity's latest change, SHA-1 per sector; equal
 * to Tributary's on the same events), and the clock stops once they compare equal. With
 * `pull-compacted`, the hub ships only each entity's latest change, looked up for every record
 * it reads, as Trilium's pull does.
 *
 * Nothing here allocates per record, and validation runs on one thread: a floor, not a model of
 * Swift. Build: scripts/w1-apply-floor.sh compiles it with the reference's common.h and Tributary's
 * CRC32C. */
#include "common.h"
#include "CCRC32C.h"
#include "w1-apply-floor.h"
#include <arpa/inet.h>
#include <errno.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHK(x) do { int rc_ = (x); if (rc_) DIE("%s: %s", #x, mdb_strerror(rc_)); } while (0)

static const char *names[] = {"notes", "branches", "attributes", "revisions", "attachments",
                              "blobs", "options", "etapi_tokens", "note_reordering"};
/* Each name's primary-key member as it starts in a row: `"noteId":"`. */
static const char *primaryKeys[] = {"\"noteId\":\"", "\"branchId\":\"", "\"attributeId\":\"", "\"revisionId\":\"",
                                    "\"attachmentId\":\"", "\"blobId\":\"", "\"name\":\"", "\"etapiTokenId\":\"", NULL};

static const char *after(const char *line, const char *key) {
    const char *s = strstr(line, key);
    return s ? s + strlen(key) : NULL;
}

/* The first occurrence of `needle` in p[0..n): glibc's memmem sets up a table per call, which
 * costs more than the search for a member near the start of a row. */
static const char *find_bytes(const char *p, size_t n, const char *needle, size_t m) {
    for (const char *end = p + n; (p = memchr(p, needle[0], (size_t)(end - p))) && (size_t)(end - p) >= m; p++)
        if (!memcmp(p, needle, m)) return p;
    return NULL;
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

/* The digits at s[0..n) as a number, or -1. */
static int digits(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int64_t floor_parse_date(const char *s, size_t n) {
    if (n != 24 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' || s[19] != '.' ||
        s[23] != 'Z')
        return 0;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2), h = digits(s + 11, 2), mi = digits(s + 14, 2),
        se = digits(s + 17, 2), ms = digits(s + 20, 3);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59 ||
        ms < 0)
        return 0;
    return ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 24 + h) * 60 + mi) * 60000 + se * 1000 + ms;
}

uint8_t floor_name_code(const char *p, size_t n) {
    for (uint8_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strlen(names[i]) == n && !memcmp(names[i], p, n)) return i;
    return 255;
}

static void decode(const char *line, size_t len, rec_t *r) {
    span_t name = string_field(line, "\"entityName\":\"");
    r->name = floor_name_code(name.p, name.n);
    if (r->name == 255) DIE("unknown entity name in %.80s", line);
    r->entityId = string_field(line, "\"entityId\":\"");
    r->hash = string_field(line, "\"hash\":\"");
    r->changeId = string_field(line, "\"changeId\":\"");
    r->componentId = string_field(line, "\"componentId\":\"");
    r->instanceId = string_field(line, "\"instanceId\":\"");
    r->date = floor_parse_date(after(line, "\"utcDateChanged\":\""), 24);
    if (!r->date) DIE("bad date in %.80s", line);
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
    const char *v = find_bytes(r->row, r->rowLen, pk, nl);
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
    const rec_t *recs;     /* the records the slots point at */
} table_t;

/* Room for `entries` in an open-addressing table at most half full: a power of two. */
static size_t table_capacity(size_t entries) {
    size_t cap = 16;
    while (cap < entries * 2) cap <<= 1;
    return cap;
}

static void table_init(table_t *t, size_t entries, const rec_t *recs) {
    size_t cap = table_capacity(entries);
    t->slots = calloc(cap, sizeof(slot_t));
    t->mask = cap - 1;
    t->recs = recs;
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

/* The slot holding the key, or the empty slot where it would go; `field` picks the key from a
 * record (0: changeId, 1: name and entityId). */
static slot_t *table_find(const table_t *t, int field, uint8_t name, span_t key, uint64_t h) {
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        slot_t *s = &t->slots[i];
        if (!s->hash) return s;
        if (s->hash != h) continue;
        const rec_t *o = &t->recs[s->rec];
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

/* ---- the log: one write transaction per batch ---- */

/* A change id as the log's key: 8 bytes, big-endian. */
static void put_key(unsigned char key[8], uint64_t id) {
    for (int b = 7; b >= 0; b--) key[7 - b] = (unsigned char)(id >> (8 * b));
}

typedef struct {
    MDB_env *env;
    MDB_dbi changes;
    const rec_t *recs;                             /* the decoded records, in arrival order */
    table_t current, changeIds;
    struct { uint64_t id; uint32_t rec; } *queue;  /* the indexer's queue */
    size_t queued, applied, duplicates, lost;
    uint64_t nextId;
    double *lat;                                   /* each batch's time, ms */
    size_t batches;
    double decodeSeconds;                          /* http: decoding request bodies */
} log_t;

static void log_open(log_t *g, const char *dir, int nosync, const rec_t *recs, size_t records) {
    memset(g, 0, sizeof *g);
    g->recs = recs;
    CHK(mdb_env_create(&g->env));
    CHK(mdb_env_set_mapsize(g->env, (size_t)64 << 30));
    CHK(mdb_env_set_maxdbs(g->env, 8));
    CHK(mdb_env_open(g->env, dir, nosync ? MDB_NOSYNC : 0, 0644));
    MDB_txn *txn;
    CHK(mdb_txn_begin(g->env, NULL, 0, &txn));
    CHK(mdb_dbi_open(txn, "changes", MDB_CREATE, &g->changes));
    CHK(mdb_txn_commit(txn));
    table_init(&g->current, records, recs);
    table_init(&g->changeIds, records, recs);
    g->queue = malloc(records * sizeof *g->queue);
    g->lat = malloc((records / 1000 + 2) * sizeof(double));
    g->nextId = 1;
}

/* Validates g->recs[i..end), then appends what dedupe and the conflict rule let through, in one
 * durable transaction. */
static void apply_batch(log_t *g, size_t i, size_t end) {
    double tc = now_s();
    for (size_t j = i; j < end; j++)
        if (!valid(&g->recs[j])) DIE("record %zu is not valid", j + 1);
    MDB_txn *txn;
    unsigned char key[8];
    CHK(mdb_txn_begin(g->env, NULL, 0, &txn));
    for (; i < end; i++) {
        const rec_t *r = &g->recs[i];
        uint64_t ch = hash_bytes(0, r->changeId.p, r->changeId.n);
        slot_t *seen = table_find(&g->changeIds, 0, 0, r->changeId, ch);
        if (seen->hash) { g->duplicates++; continue; }
        uint64_t kh = hash_bytes(r->name, r->entityId.p, r->entityId.n);
        slot_t *latest = table_find(&g->current, 1, r->name, r->entityId, kh);
        if (latest->hash && latest->date > r->date) { g->lost++; continue; }
        uint64_t id = g->nextId++;
        *seen = (slot_t){.hash = ch, .rec = (uint32_t)i, .id = id};
        *latest = (slot_t){.hash = kh, .rec = (uint32_t)i, .isErased = r->isErased, .id = id, .date = r->date};
        g->queue[g->queued].id = id;
        g->queue[g->queued++].rec = (uint32_t)i;
        put_key(key, id);
        size_t size = encoded_size(r);
        MDB_val k = {8, key}, v = {size, NULL};
        CHK(mdb_put(txn, g->changes, &k, &v, MDB_APPEND | MDB_RESERVE));
        encode(r, v.mv_data, size);
        g->applied++;
    }
    CHK(mdb_txn_commit(txn));
    g->lat[g->batches++] = (now_s() - tc) * 1e3;
}

/* ---- HTTP: a keep-alive client thread and a one-connection server ---- */

static void send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) DIE("send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

/* Reads into buf until it holds a whole request or answer head; returns the bytes read and sets
 * *headLen, or returns 0 when the peer closed the connection before sending anything. */
static size_t recv_head(int fd, char *buf, size_t cap, size_t *headLen) {
    size_t got = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + got, cap - got, 0);
        if (r == 0 && got == 0) return 0;
        if (r <= 0) DIE("recv: connection closed");
        got += (size_t)r;
        char *end = memmem(buf, got, "\r\n\r\n", 4);
        if (end) {
            *headLen = (size_t)(end + 4 - buf);
            return got;
        }
        if (got == cap) DIE("head too large");
    }
}

/* Reads a whole message (head, then the Content-Length bytes of its body) into buf, leaving
 * simdjson's 64 bytes of padding free after it; returns the body and sets *bodyLen and *total
 * (the bytes read). */
static char *recv_message(int fd, char *buf, size_t cap, size_t *bodyLen, size_t *total) {
    size_t headLen, got = recv_head(fd, buf, cap - 64, &headLen);
    char *cl = memmem(buf, headLen, "Content-Length: ", 16);
    if (!cl) DIE("no Content-Length in %.40s", buf);
    *bodyLen = strtoul(cl + 16, NULL, 10);
    if (headLen + *bodyLen + 64 > cap) DIE("arena full");
    while (got < headLen + *bodyLen) {
        ssize_t r = recv(fd, buf + got, headLen + *bodyLen - got, 0);
        if (r <= 0) DIE("recv: connection closed");
        got += (size_t)r;
    }
    *total = got;
    return buf + headLen;
}

typedef struct {
    int fd;
    char **requests;
    size_t *sizes, count;
    double *lat, seconds;
} client_t;

static void *client_run(void *arg) {
    client_t *c = arg;
    char answer[512];
    double t0 = now_s();
    for (size_t k = 0; k < c->count; k++) {
        double t = now_s();
        send_all(c->fd, c->requests[k], c->sizes[k]);
        size_t headLen, got = recv_head(c->fd, answer, sizeof answer - 1, &headLen);
        if (got != headLen || strncmp(answer, "HTTP/1.1 204 ", 13)) DIE("unexpected answer: %.*s", (int)got, answer);
        c->lat[k] = (now_s() - t) * 1e3;
    }
    c->seconds = now_s() - t0;
    return NULL;
}

/* Each batch as a whole PUT /api/sync/update request. */
static void build_requests(const lines_t *L, size_t batch, client_t *c) {
    c->count = (L->n + batch - 1) / batch;
    c->requests = malloc(c->count * sizeof(char *));
    c->sizes = malloc(c->count * sizeof(size_t));
    c->lat = malloc(c->count * sizeof(double));
    for (size_t k = 0; k < c->count; k++) {
        size_t first = k * batch, end = first + batch < L->n ? first + batch : L->n, bodyLen = 64;
        for (size_t i = first; i < end; i++) bodyLen += L->len[i] + 1;
        char *body = malloc(bodyLen), *p = body;
        p += sprintf(p, "{\"entities\":[");
        for (size_t i = first; i < end; i++) {
            if (i > first) *p++ = ',';
            memcpy(p, L->line[i], L->len[i]);
            p += L->len[i];
        }
        p += sprintf(p, "],\"instanceId\":\"benchClient0\"}");
        size_t n = (size_t)(p - body);
        c->requests[k] = malloc(n + 256);
        int h = sprintf(c->requests[k],
                        "PUT /api/sync/update HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        "pageCount: 1\r\npageIndex: 0\r\nContent-Length: %zu\r\n\r\n", n);
        memcpy(c->requests[k] + h, body, n);
        c->sizes[k] = (size_t)h + n;
        free(body);
    }
}

/* Serves `count` requests on fd into g; the bodies stay in `arena`, as the tables point into
 * them. */
static void serve(int fd, log_t *g, rec_t *out, size_t records, size_t count, char *arena, size_t arenaSize) {
    size_t pos = 0, next = 0;
    for (size_t k = 0; k < count; k++) {
        size_t bodyLen, got;
        char *body = recv_message(fd, arena + pos, arenaSize - pos, &bodyLen, &got);
        double t = now_s();
        uint64_t last;
        long n = floor_decode_records(body, bodyLen, bodyLen + 64, "entities", out + next, records - next, &last);
        if (n < 0) DIE("request %zu: not a sync update body", k);
        g->decodeSeconds += now_s() - t;
        apply_batch(g, next, next + (size_t)n);
        next += (size_t)n;
        pos += got + 64;  /* simdjson's padding */
        static const char answer[] = "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n";
        send_all(fd, answer, sizeof answer - 1);
    }
}

/* One TCP connection over loopback, TCP_NODELAY at both ends (as NIO and AsyncHTTPClient set it):
 * *client is the connecting end, *server the accepted one. */
static void loopback_pair(int *client, int *server) {
    int listener = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof a) || listen(listener, 1) ||
        getsockname(listener, (struct sockaddr *)&a, &n))
        DIE("listen: %s", strerror(errno));
    *client = socket(AF_INET, SOCK_STREAM, 0);
    if (*client < 0 || connect(*client, (struct sockaddr *)&a, sizeof a)) DIE("connect: %s", strerror(errno));
    *server = accept(listener, NULL, NULL);
    if (*server < 0) DIE("accept: %s", strerror(errno));
    close(listener);
    setsockopt(*client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(*server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Memory for received bodies, touched before the clock starts so no page fault is timed. */
static char *touched_arena(size_t size) {
    char *arena = malloc(size);
    if (!arena) DIE("no memory for a %zu-byte arena", size);
    memset(arena, 0, size);
    return arena;
}

/* ---- W4: a hub serving pull pages from its log, a fresh node fetching one page ahead ---- */

static char *put_u64(char *p, uint64_t v) {
    char digits[20];
    int n = 0;
    do digits[n++] = (char)('0' + v % 10); while (v /= 10);
    while (n) *p++ = digits[--n];
    return p;
}

static char *put_lit(char *p, const char *s) {
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/* A JSON string: `"` and `\` escaped; the log's fields hold no control characters. */
static char *put_string(char *p, const unsigned char *s, size_t n) {
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') *p++ = '\\';
        *p++ = (char)s[i];
    }
    *p++ = '"';
    return p;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static char *put_digits(char *p, int64_t v, int width) {
    for (int i = width - 1; i >= 0; i--, v /= 10) p[i] = (char)('0' + v % 10);
    return p + width;
}

/* "2024-01-01 00:00:00.005Z" */
static char *put_date(char *p, int64_t ms) {
    int64_t days = ms / 86400000, rest = ms % 86400000, y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    p = put_digits(p, y, 4);
    *p++ = '-';
    p = put_digits(p, m, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = ' ';
    p = put_digits(p, rest / 3600000, 2);
    *p++ = ':';
    p = put_digits(p, rest / 60000 % 60, 2);
    *p++ = ':';
    p = put_digits(p, rest / 1000 % 60, 2);
    *p++ = '.';
    p = put_digits(p, rest % 1000, 3);
    *p++ = 'Z';
    return p;
}

/* One stored record (Tributary's format, its CRC checked) as Trilium's pull JSON. */
static char *put_record(char *p, uint64_t id, const unsigned char *b, size_t n) {
    uint32_t stored;
    memcpy(&stored, b + 1, 4);
    if (n < 21 || b[0] != 1 || b[6] >= sizeof names / sizeof *names || stored != tributary_crc32c(0, b + 5, n - 5))
        DIE("record %llu is damaged",
                                                                                (unsigned long long)id);
    int64_t date;
    memcpy(&date, b + 7, 8);
    static const char *keys[] = {",\"entityId\":", ",\"hash\":", ",\"changeId\":", ",\"componentId\":",
                                 ",\"instanceId\":"};
    p = put_lit(p, "{\"entityChange\":{\"id\":");
    p = put_u64(p, id);
    p = put_lit(p, ",\"entityName\":\"");
    p = put_lit(p, names[b[6]]);
    *p++ = '"';
    size_t q = 15;
    for (int f = 0; f < 6; f++) {  /* the sixth, originInstanceId, is not shipped */
        size_t len = b[q];
        if (q + 1 + len > n) DIE("record %llu is damaged", (unsigned long long)id);
        if (f < 5) {
            p = put_lit(p, keys[f]);
            p = put_string(p, b + q + 1, len);
        }
        if (f == 1) {
            p = put_lit(p, ",\"isErased\":");
            *p++ = (b[5] & 1) ? '1' : '0';
        }
        q += 1 + len;
    }
    p = put_lit(p, ",\"isSynced\":");
    *p++ = (b[5] & 2) ? '1' : '0';
    p = put_lit(p, ",\"utcDateChanged\":\"");
    p = put_date(p, date);
    *p++ = '"';
    *p++ = '}';
    if (b[5] & 4) {
        p = put_lit(p, ",\"entity\":");
        memcpy(p, b + q, n - q);
        p += n - q;
    }
    *p++ = '}';
    return p;
}

/* ---- the content-hash check (GET /api/sync/check), as SectorDigests computes it whole ---- */

typedef struct {
    uint64_t hash;         /* 0: empty slot */
    span_t id;
} blob_slot_t;

typedef struct {
    uint8_t isErased;
    span_t id, hash;
    char inlineHash[16];   /* the hash when it fits (Trilium's are 10 characters), as a Swift */
} member_t;                /* small string holds it: no trip back to the record at hashing time */

/* What a sector's sort moves: 16 bytes (glibc's qsort takes a temporary buffer the size of what
 * it sorts, and at 72-byte members that is a fresh, page-faulting mmap per sector). */
typedef struct {
    uint64_t prefix;       /* the id's first 8 bytes, big-endian, zero-padded: most comparisons */
    uint32_t index;        /* the member, in its sector's stretch of `members` */
    uint32_t unused;
} sort_key_t;

/* entityId order within a sector: byte order, which is JavaScript's for ASCII ids. */
static int member_order(const void *a, const void *b, void *sectorMembers) {
    const sort_key_t *x = a, *y = b;
    if (x->prefix != y->prefix) return x->prefix < y->prefix ? -1 : 1;
    const member_t *m = sectorMembers, *u = &m[x->index], *v = &m[y->index];
    int c = memcmp(u->id.p, v->id.p, u->id.n < v->id.n ? u->id.n : v->id.n);
    return c ? c : (int)u->id.n - (int)v->id.n;
}

/* Whether `id` is in the blob set, inserting it when `insert`. */
static int blob_set(blob_slot_t *set, size_t mask, span_t id, int insert) {
    uint64_t h = hash_bytes(5, id.p, id.n);
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        blob_slot_t *s = &set[i];
        if (!s->hash) {
            if (insert) *s = (blob_slot_t){h, id};
            return 0;
        }
        if (s->hash == h && s->id.n == id.n && !memcmp(s->id.p, id.p, id.n)) return 1;
    }
}

enum { sectors = 9 * 256 };

/* The check's working memory, allocated and touched before the clock starts, as the arenas are:
 * page faults cost more than the check's work on this machine (50 ms for a blob set at 100k). */
typedef struct {
    size_t records, blobMask, textCap;
    uint64_t *latest;      /* a bit per record: whether it is its entity's latest change */
    blob_slot_t *blobs;
    member_t *members;
    sort_key_t *keys;      /* beside members: each one's sort key */
    size_t *start;         /* each sector's first member, then (sectors + 1 on) its end */
    char *text;
} check_scratch_t;

static void check_scratch_init(check_scratch_t *c, size_t records) {
    size_t cap = table_capacity(records);
    c->records = records;
    c->blobMask = cap - 1;
    c->textCap = 64 * records + 64;
    c->latest = (uint64_t *)touched_arena((records / 64 + 1) * sizeof *c->latest);
    c->blobs = (blob_slot_t *)touched_arena(cap * sizeof *c->blobs);
    c->members = (member_t *)touched_arena((records + 1) * sizeof *c->members);
    c->keys = (sort_key_t *)touched_arena((records + 1) * sizeof *c->keys);
    c->start = (size_t *)touched_arena((2 * sectors + 2) * sizeof *c->start);
    c->text = touched_arena(c->textCap);
}

/* Every sector's digest from every entity's latest change (`current`, whose records are the
 * first c->records of current->recs), as canonical JSON `{"notes":{"A":"<base64 SHA-1>",…},…}`:
 * names in code order, sectors in byte order. Left out, as Tributary and Trilium leave them:
 * non-synced changes, note_reordering, and a live blob that no live note, attachment or revision
 * points at (their rows are read for their blobId). Each sector's digest is the SHA-1 of its
 * members' hash and isErased digit, in entityId order.
 *
 * Two passes over the latest changes, in arrival order (a bitmap of them first), as Tributary
 * reads its `current` index in key order; walking the table's slots would read the records at
 * random, and each random read costs a few hundred ns here. The first collects the referenced
 * blobs and counts each sector's candidates; the second copies each member straight into its
 * sector's stretch, which is then sorted on its own. */
/* Record i when it is a member candidate of the check: its entity's latest change, synced, not
 * note_reordering (a live blob may still be left out); else NULL. */
static const rec_t *check_candidate(const table_t *current, const check_scratch_t *c, size_t i) {
    if (!(c->latest[i / 64] >> (i % 64) & 1)) return NULL;
    const rec_t *r = &current->recs[i];
    return !r->isSynced || r->name == 8 || !r->entityId.n ? NULL : r;
}

static size_t sector_digests(const table_t *current, check_scratch_t *c, char *out) {
    size_t cap = current->mask + 1, *start = c->start, *end = c->start + sectors + 1;
    memset(c->latest, 0, (c->records / 64 + 1) * sizeof *c->latest);
    memset(c->blobs, 0, (c->blobMask + 1) * sizeof *c->blobs);
    memset(start, 0, (2 * sectors + 2) * sizeof *start);
    for (size_t i = 0; i < cap; i++) {
        const slot_t *s = &current->slots[i];
        if (s->hash) c->latest[s->rec / 64] |= 1ull << (s->rec % 64);
    }
    for (size_t i = 0; i < c->records; i++) {
        const rec_t *r = check_candidate(current, c, i);
        if (!r) continue;
        start[r->name * 256 + (unsigned char)r->entityId.p[0] + 1]++;
        if ((r->name != 0 && r->name != 3 && r->name != 4) || r->isErased || !r->row) continue;
        const char *v = find_bytes(r->row, r->rowLen, "\"blobId\":\"", 10);
        if (!v) continue;
        v += 10;
        const char *e = memchr(v, '"', (size_t)(r->row + r->rowLen - v));
        if (e && e - v <= 255) blob_set(c->blobs, c->blobMask, (span_t){v, (uint8_t)(e - v)}, 1);
    }
    for (size_t k = 0; k < sectors; k++) start[k + 1] += start[k];
    memcpy(end, start, sectors * sizeof *start);  /* where each sector's next member goes */
    for (size_t i = 0; i < c->records; i++) {
        const rec_t *r = check_candidate(current, c, i);
        if (!r) continue;
        if (r->name == 5 && !r->isErased && !blob_set(c->blobs, c->blobMask, r->entityId, 0)) continue;
        unsigned char head[8] = {0};
        memcpy(head, r->entityId.p, r->entityId.n < 8 ? r->entityId.n : 8);
        uint64_t prefix = 0;
        for (int b = 0; b < 8; b++) prefix = prefix << 8 | head[b];
        size_t at = end[r->name * 256 + head[0]]++;
        member_t *m = &c->members[at];
        *m = (member_t){r->isErased, r->entityId, r->hash, {0}};
        if (r->hash.n <= sizeof m->inlineHash) memcpy(m->inlineHash, r->hash.p, r->hash.n);
        c->keys[at] = (sort_key_t){prefix, (uint32_t)(at - start[r->name * 256 + head[0]]), 0};
    }
    char *p = out;
    *p++ = '{';
    for (size_t name = 0, k = 0; name < 9; name++) {
        int first = 1;
        for (size_t byte = 0; byte < 256; byte++, k++) {
            size_t from = start[k], n = end[k] - from, len = 0;
            if (!n) continue;
            const member_t *members = c->members + from;
            qsort_r(c->keys + from, n, sizeof *c->keys, member_order, (void *)members);
            for (size_t i = from; i < from + n; i++) {
                const member_t *m = &members[c->keys[i].index];
                if (len + m->hash.n + 1 > c->textCap) DIE("check: text buffer full");
                memcpy(c->text + len, m->hash.n <= sizeof m->inlineHash ? m->inlineHash : m->hash.p, m->hash.n);
                len += m->hash.n;
                c->text[len++] = m->isErased ? '1' : '0';
            }
            unsigned char md[20];
            if (!EVP_Digest(c->text, len, md, NULL, EVP_sha1(), NULL)) DIE("SHA-1 failed");
            if (first) {
                if (p != out + 1) *p++ = ',';
                p = put_lit(p, "\"");
                p = put_lit(p, names[name]);
                p = put_lit(p, "\":{");
            } else {
                *p++ = ',';
            }
            first = 0;
            *p++ = '"';
            *p++ = (char)byte;
            p = put_lit(p, "\":\"");
            p += EVP_EncodeBlock((unsigned char *)p, md, 20);
            *p++ = '"';
        }
        if (!first) *p++ = '}';
    }
    *p++ = '}';
    return (size_t)(p - out);
}

typedef struct {
    int fd;
    MDB_env *env;
    MDB_dbi changes;
    uint64_t head;
    const table_t *current;  /* each entity's latest change: compacted pages, the check */
    check_scratch_t check;
    int compacted;
    double encodeSeconds, checkSeconds;
    size_t pages;
} hub_t;

/* The answer to GET /api/sync/check, its head written before the body it ends. */
static size_t hub_check(hub_t *h, char *body) {
    double t = now_s();
    char *p = put_lit(body, "{\"entityHashes\":");
    p += sector_digests(h->current, &h->check, p);
    p = put_lit(p, ",\"maxEntityChangeId\":");
    p = put_u64(p, h->head);
    *p++ = '}';
    h->checkSeconds += now_s() - t;
    return (size_t)(p - body);
}

/* Sends `body` (n bytes of JSON) as a 200 answer, its head written into the room before it. */
static void send_json(int fd, char *body, size_t n) {
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: %zu\r\n\r\n", n);
    memcpy(body - hn, head, (size_t)hn);
    send_all(fd, body - hn, n + (size_t)hn);
}

/* Answers each GET /api/sync/changed?…&lastEntityChangeId=N with the next page of up to 1000
 * records (compacted: only each entity's latest change, looked up for every record read), and
 * GET /api/sync/check with the digests, until the connection closes. */
static void *hub_run(void *arg) {
    hub_t *h = arg;
    size_t cap = 64 << 20;
    char request[2048], *response = malloc(cap);
    for (;;) {
        size_t headLen, got = recv_head(h->fd, request, sizeof request - 1, &headLen);
        if (!got) return NULL;
        request[got] = 0;
        if (!strncmp(request, "GET /api/sync/check ", 20)) {
            char *body = response + 256;
            send_json(h->fd, body, hub_check(h, body));
            continue;
        }
        char *at = strstr(request, "lastEntityChangeId=");
        if (!at) DIE("hub: no lastEntityChangeId in %.80s", request);
        uint64_t after = strtoull(at + 19, NULL, 10), last = after;
        double t = now_s();
        char *body = response + 256, *p = body;
        p = put_lit(p, "{\"entityChanges\":[");
        MDB_txn *txn;
        MDB_cursor *cursor;
        CHK(mdb_txn_begin(h->env, NULL, MDB_RDONLY, &txn));
        CHK(mdb_cursor_open(txn, h->changes, &cursor));
        unsigned char key[8];
        put_key(key, after + 1);
        MDB_val k = {8, key}, v;
        int rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
        for (size_t n = 0; rc == 0 && n < 1000; rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
            uint64_t id = 0;
            for (int b = 0; b < 8; b++) id = id << 8 | ((unsigned char *)k.mv_data)[b];
            last = id;
            const unsigned char *b = v.mv_data;
            if (h->compacted) {
                /* Superseded or not synced: skipped (the CRC is checked for what ships). */
                if (v.mv_size < 16 || v.mv_size < 16u + b[15]) DIE("hub: record %llu is damaged", (unsigned long long)id);
                span_t entityId = {(const char *)b + 16, b[15]};
                const slot_t *latest = table_find(h->current, 1, b[6], entityId,
                                                  hash_bytes(b[6], entityId.p, entityId.n));
                if (!(b[5] & 2) || !latest->hash || latest->id != id) continue;
            }
            if ((size_t)(p - response) + 2 * v.mv_size + 1024 > cap) DIE("hub: page buffer full");
            if (n++) *p++ = ',';
            p = put_record(p, id, b, v.mv_size);
        }
        if (rc && rc != MDB_NOTFOUND) DIE("hub: %s", mdb_strerror(rc));
        mdb_cursor_close(cursor);
        mdb_txn_abort(txn);
        p = put_lit(p, "],\"lastEntityChangeId\":");
        p = put_u64(p, last);
        p = put_lit(p, ",\"outstandingPullCount\":");
        p = put_u64(p, h->head - last);
        *p++ = '}';
        h->encodeSeconds += now_s() - t;
        h->pages++;
        send_json(h->fd, body, (size_t)(p - body));
    }
}

/* The fresh node's fetcher: requests the page after the last one, decodes it into the records,
 * hands it to the applier, and asks for the next once the applier has taken it: one page
 * ahead, as Tributary's sync engine prefetches. */
typedef struct {
    int fd;
    char *arena;
    size_t arenaSize, records;
    rec_t *out;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    size_t start, count;     /* the page handed over, not yet taken */
    int full, done;
    double decodeSeconds;
    char *check;             /* the hub's answer to GET /api/sync/check, once caught up */
    size_t checkLen;
} fetcher_t;

static void *fetch_run(void *arg) {
    fetcher_t *f = arg;
    uint64_t after = 0;
    size_t pos = 0, next = 0;
    for (;;) {
        char request[256];
        int n = snprintf(request, sizeof request,
                         "GET /api/sync/changed?instanceId=floorSpoke01&lastEntityChangeId=%llu&logMarkerId=x "
                         "HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                         (unsigned long long)after);
        send_all(f->fd, request, (size_t)n);
        size_t bodyLen, got;
        char *body = recv_message(f->fd, f->arena + pos, f->arenaSize - pos, &bodyLen, &got);
        if (strncmp(f->arena + pos, "HTTP/1.1 200 ", 13)) DIE("fetcher: %.40s", f->arena + pos);
        double t = now_s();
        uint64_t last = after;
        long count = floor_decode_records(body, bodyLen, bodyLen + 64, "entityChanges", f->out + next,
                                          f->records - next, &last);
        if (count < 0) DIE("fetcher: not a pull page");
        f->decodeSeconds += now_s() - t;
        pos += got + 64;
        pthread_mutex_lock(&f->lock);
        while (f->full) pthread_cond_wait(&f->changed, &f->lock);
        f->start = next;
        f->count = (size_t)count;
        f->full = 1;
        f->done = count == 0;
        pthread_cond_broadcast(&f->changed);
        while (f->full) pthread_cond_wait(&f->changed, &f->lock);
        pthread_mutex_unlock(&f->lock);
        if (count == 0) {
            /* Caught up: the hub's digests, asked for while the applier computes its own. */
            static const char check[] = "GET /api/sync/check HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
            send_all(f->fd, check, sizeof check - 1);
            pos += got + 64;
            f->check = recv_message(f->fd, f->arena + pos, f->arenaSize - pos, &f->checkLen, &got);
            return NULL;
        }
        next += (size_t)count;
        after = last;
    }
}

int main(int argc, char **argv) {
    if (argc < 3) DIE("usage: w1-apply-floor DIR EVENTS.jsonl [sync|nosync] [http|pull|pull-compacted]");
    const char *dir = argv[1];
    int nosync = argc > 3 && !strcmp(argv[3], "nosync");
    int http = argc > 4 && !strcmp(argv[4], "http"), compacted = argc > 4 && !strcmp(argv[4], "pull-compacted");
    int pull = compacted || (argc > 4 && !strcmp(argv[4], "pull"));
    const size_t batch = 1000;
    lines_t L;
    load_lines(argv[2], 0, &L);
    rec_t *decoded = malloc(L.n * sizeof(rec_t));
    log_t g;
    double secs, *lat;
    size_t c;
    char http_extra[256] = "";
    if (pull) {
        /* The hub's log, written before the clock starts (not timed, no fsync). */
        char hubDir[4096], spokeDir[4096];
        snprintf(hubDir, sizeof hubDir, "%s/hub", dir);
        snprintf(spokeDir, sizeof spokeDir, "%s/spoke", dir);
        if (mkdir(hubDir, 0755) || mkdir(spokeDir, 0755)) DIE("mkdir in %s: %s", dir, strerror(errno));
        for (size_t i = 0; i < L.n; i++) decode(L.line[i], L.len[i], &decoded[i]);
        log_t hubLog;
        log_open(&hubLog, hubDir, 1, decoded, L.n);
        for (size_t i = 0; i < L.n; i += batch) apply_batch(&hubLog, i, i + batch < L.n ? i + batch : L.n);
        hub_t hub = {.env = hubLog.env, .changes = hubLog.changes, .head = hubLog.nextId - 1,
                     .current = &hubLog.current, .compacted = compacted};
        check_scratch_init(&hub.check, L.n);
        check_scratch_t check;
        check_scratch_init(&check, L.n);
        char *mine = touched_arena(1 << 20);
        /* The fresh node. */
        rec_t *pulled = calloc(L.n, sizeof(rec_t));
        log_open(&g, spokeDir, nosync, pulled, L.n);
        size_t arenaSize = 2 * L.total + (L.n / batch + 2) * 4096;
        fetcher_t f = {.arena = touched_arena(arenaSize), .arenaSize = arenaSize, .records = L.n, .out = pulled};
        pthread_mutex_init(&f.lock, NULL);
        pthread_cond_init(&f.changed, NULL);
        loopback_pair(&f.fd, &hub.fd);
        pthread_t hubThread, fetchThread;
        pthread_create(&hubThread, NULL, hub_run, &hub);
        double t0 = now_s();
        pthread_create(&fetchThread, NULL, fetch_run, &f);
        for (;;) {
            pthread_mutex_lock(&f.lock);
            while (!f.full) pthread_cond_wait(&f.changed, &f.lock);
            size_t start = f.start, count = f.count;
            int done = f.done;
            f.full = 0;
            pthread_cond_broadcast(&f.changed);
            pthread_mutex_unlock(&f.lock);
            if (done) break;
            apply_batch(&g, start, start + count);
        }
        /* The content-hash check: this node's digests, then the hub's compared with them. */
        double tc = now_s();
        char *theirs;
        size_t mineLen = sector_digests(&g.current, &check, mine);
        double checkSeconds = now_s() - tc;
        pthread_join(fetchThread, NULL);
        theirs = f.check;
        if (f.checkLen < mineLen + 16 || memcmp(theirs, "{\"entityHashes\":", 16) ||
            memcmp(theirs + 16, mine, mineLen))
            DIE("content hashes differ after the catch-up");
        secs = now_s() - t0;
        shutdown(f.fd, SHUT_RDWR);
        pthread_join(hubThread, NULL);
        mdb_env_close(hubLog.env);
        lat = g.lat;
        c = g.batches;
        snprintf(http_extra, sizeof http_extra,
                 " pages=%zu hub_encode_mean_ms=%.2f decode_mean_ms=%.2f check_ms=%.1f hub_check_ms=%.1f", hub.pages,
                 hub.encodeSeconds * 1e3 / (double)hub.pages, f.decodeSeconds * 1e3 / (double)hub.pages,
                 checkSeconds * 1e3, hub.checkSeconds * 1e3);
    } else if (http) {
        log_open(&g, dir, nosync, decoded, L.n);
        client_t client;
        build_requests(&L, batch, &client);
        int fd;
        loopback_pair(&client.fd, &fd);
        size_t arenaSize = L.total + L.n + client.count * 1024 + 4096;
        char *arena = touched_arena(arenaSize);
        memset(decoded, 0, L.n * sizeof(rec_t));  /* touched too */
        pthread_t thread;
        pthread_create(&thread, NULL, client_run, &client);
        serve(fd, &g, decoded, L.n, client.count, arena, arenaSize);
        pthread_join(thread, NULL);
        secs = client.seconds;
        lat = client.lat;
        c = client.count;
        qsort(g.lat, g.batches, sizeof(double), cmp_double);
        snprintf(http_extra, sizeof http_extra, " apply_p50_ms=%.2f decode_mean_ms=%.2f", pct(g.lat, g.batches, 50),
                 g.decodeSeconds * 1e3 / (double)g.batches);
    } else {
        log_open(&g, dir, nosync, decoded, L.n);
        for (size_t i = 0; i < L.n; i++) decode(L.line[i], L.len[i], &decoded[i]);
        double t0 = now_s();
        for (size_t i = 0; i < L.n; i += batch) apply_batch(&g, i, i + batch < L.n ? i + batch : L.n);
        secs = now_s() - t0;
        lat = g.lat;
        c = g.batches;
    }
    qsort(lat, c, sizeof(double), cmp_double);
    char extra[384];
    snprintf(extra, sizeof extra,
             "durability=%s batch=%zu commit_p50_ms=%.2f commit_p99_ms=%.2f applied=%zu duplicates=%zu lost=%zu%s",
             nosync ? "none" : "fsync", batch, pct(lat, c, 50), pct(lat, c, 99), g.applied, g.duplicates, g.lost,
             http_extra);
    if (pull)
        result("W4-catchup", "c-pull-floor", compacted ? "compacted" : "full-history", L.n, secs, (double)L.total,
               extra);
    else
        result("W1-append", http ? "c-http-floor" : "c-apply-floor", nosync ? "nosync" : "sync", L.n, secs,
               (double)L.total, extra);
    mdb_env_close(g.env);
    return 0;
}
