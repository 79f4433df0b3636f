// The HTTP floor's JSON decoding (scripts/w1-apply-floor.c, `http` mode), with simdjson's
// on-demand parser: UTF-8 and structure are checked at several GB/s, and only the members the
// apply path needs are read. The entity row is taken as its raw bytes without a walk of its
// members, less than Tributary does: this is a floor.
#include <simdjson.h>
#include <cstring>
#include <string_view>
extern "C" {
#include "w1-apply-floor.h"
}

using namespace simdjson;

static ondemand::parser parser;

// A string member as the span of its bytes in the body (ids and hashes carry no escapes; one
// that does is refused).
static bool string_span(ondemand::value value, span_t *out) {
    std::string_view token = value.raw_json_token();
    while (!token.empty() && token.back() != '"') token.remove_suffix(1);  // trailing whitespace
    if (token.size() < 2 || token.front() != '"' || token.size() - 2 > 255) return false;
    token = token.substr(1, token.size() - 2);
    if (std::memchr(token.data(), '\\', token.size())) return false;
    out->p = token.data();
    out->n = (uint8_t)token.size();
    return true;
}

static bool flag(ondemand::value value, uint8_t *out) {
    int64_t number;
    if (value.get_int64().get(number) || (number != 0 && number != 1)) return false;
    *out = (uint8_t)number;
    return true;
}

static bool decode_change(ondemand::object change, rec_t *r) {
    span_t name = {nullptr, 0}, date = {nullptr, 0};
    for (auto member : change) {
        std::string_view key;
        ondemand::value value;
        if (member.unescaped_key().get(key) || member.value().get(value)) return false;
        bool ok = true;
        if (key == "entityName") ok = string_span(value, &name);
        else if (key == "entityId") ok = string_span(value, &r->entityId);
        else if (key == "hash") ok = string_span(value, &r->hash);
        else if (key == "changeId") ok = string_span(value, &r->changeId);
        else if (key == "componentId") ok = string_span(value, &r->componentId);
        else if (key == "instanceId") ok = string_span(value, &r->instanceId);
        else if (key == "utcDateChanged") ok = string_span(value, &date);
        else if (key == "isErased") ok = flag(value, &r->isErased);
        else if (key == "isSynced") ok = flag(value, &r->isSynced);
        if (!ok) return false;
    }
    if (!name.p || !date.p) return false;
    r->name = floor_name_code(name.p, name.n);
    r->date = floor_parse_date(date.p, date.n);
    return r->name != 255 && r->date != 0;
}

static bool decode_record(ondemand::object record, rec_t *r) {
    std::memset(r, 0, sizeof *r);
    r->isSynced = 1;
    bool sawChange = false;
    for (auto member : record) {
        std::string_view key;
        ondemand::value value;
        if (member.unescaped_key().get(key) || member.value().get(value)) return false;
        if (key == "entityChange") {
            ondemand::object change;
            if (value.get_object().get(change) || !decode_change(change, r)) return false;
            sawChange = true;
        } else if (key == "entity") {
            if (value.is_null()) continue;
            ondemand::object row;
            std::string_view raw;
            if (value.get_object().get(row) || row.raw_json().get(raw)) return false;
            r->row = raw.data();
            r->rowLen = (uint32_t)raw.size();
        }
    }
    return sawChange;
}

extern "C" long floor_decode_records(const char *body, size_t len, size_t capacity, const char *array, rec_t *out,
                                     size_t max, uint64_t *last) {
    ondemand::document document;
    ondemand::object top;
    if (parser.iterate(body, len, capacity).get(document) || document.get_object().get(top)) return -1;
    long count = -1;
    for (auto member : top) {
        std::string_view key;
        ondemand::value value;
        if (member.unescaped_key().get(key) || member.value().get(value)) return -1;
        if (key == "lastEntityChangeId") {
            if (value.get_uint64().get(*last)) return -1;
            continue;
        }
        if (key != array) continue;
        ondemand::array entities;
        if (value.get_array().get(entities)) return -1;
        count = 0;
        for (auto element : entities) {
            ondemand::object record;
            if ((size_t)count == max || element.get_object().get(record) || !decode_record(record, &out[count]))
                return -1;
            count++;
        }
    }
    return count;
}
