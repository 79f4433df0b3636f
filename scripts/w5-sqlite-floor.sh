#!/usr/bin/env bash
# SQLite's own floor for W5-rebuild on this machine, to read Tributary's figure against: the
# rows of a built views.sqlite are loaded by the sqlite3 shell into a fresh database (CSV
# .import, one transaction, no journal, no fsync), then the same indexes are created. No JSON
# parsing, no log reading: what SQLite alone needs to write these views.
#
#   scripts/w5-sqlite-floor.sh DATA_DIR [EVENTS]
#
# DATA_DIR holds a views.sqlite built from EVENTS changes (default: the entity_changes rows).
# Prints one line: workload=W5-rebuild system=sqlite3-shell … events_per_s=…
set -euo pipefail
data="${1:?usage: $0 DATA_DIR [EVENTS]}"
views="$data/views.sqlite"
[ -f "$views" ] || { echo "no $views (run tributary rebuild --data $data first)" >&2; exit 1; }
command -v sqlite3 >/dev/null || { echo "needs the sqlite3 shell (apt-get install sqlite3)" >&2; exit 1; }
events="${2:-$(sqlite3 "$views" 'SELECT COUNT(*) FROM entity_changes')}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tables="$(sqlite3 "$views" "SELECT name FROM sqlite_master WHERE type = 'table'
  AND name NOT IN ('projector_state') AND name NOT LIKE 'sqlite_%' ORDER BY name")"
{
  echo "PRAGMA journal_mode = OFF;"
  echo "PRAGMA synchronous = OFF;"
  echo ".mode csv"
  echo "BEGIN;"
} > "$work/load.sql"
: > "$work/index.sql"
for table in $tables; do
  sqlite3 -csv "$views" "SELECT * FROM \"$table\"" > "$work/$table.csv"
  sqlite3 "$views" "SELECT sql || ';' FROM sqlite_master WHERE type = 'table' AND name = '$table'" >> "$work/load.sql"
  echo ".import $work/$table.csv $table" >> "$work/load.sql"
  sqlite3 "$views" "SELECT sql || ';' FROM sqlite_master WHERE type = 'index' AND tbl_name = '$table'
    AND sql IS NOT NULL" >> "$work/index.sql"
done
echo "COMMIT;" >> "$work/load.sql"
start=$(date +%s.%N)
sqlite3 "$work/floor.sqlite" ".read $work/load.sql" > /dev/null
sqlite3 "$work/floor.sqlite" ".read $work/index.sql"
end=$(date +%s.%N)
python3 - "$events" "$start" "$end" "$(stat -c %s "$work/floor.sqlite")" <<'PY'
import sys
events, start, end, size = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
seconds = end - start
print(f"workload=W5-rebuild system=sqlite3-shell events={events} seconds={seconds:.3f} "
      f"events_per_s={events / seconds:.0f} variant=csv-import-then-index durability=none "
      f"views_mb={size / 1e6:.0f}")
PY
