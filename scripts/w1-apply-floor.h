/* What scripts/w1-apply-floor.c shares with its JSON parser (scripts/w1-http-floor-json.cc). */
#ifndef W1_APPLY_FLOOR_H
#define W1_APPLY_FLOOR_H
#include <stddef.h>
#include <stdint.h>

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

/* The entity name's code, or 255 for a name Tributary does not know. */
uint8_t floor_name_code(const char *p, size_t n);

/* "2024-01-01 00:00:00.005Z" as ms since the epoch; 0 when it is not in that form. */
int64_t floor_parse_date(const char *s, size_t n);

/* Decodes the records of a JSON object body into `out` (at most `max`): the array member `array`
 * holds them (`entities` of a PUT /api/sync/update, `entityChanges` of a pull page), and
 * `lastEntityChangeId`, when present, goes to *last. Spans point into `body`, which has
 * `capacity - len` bytes of padding. Returns the record count, or -1 when the body is not that
 * JSON. */
long floor_decode_records(const char *body, size_t len, size_t capacity, const char *array, rec_t *out, size_t max,
                          uint64_t *last);

#endif
