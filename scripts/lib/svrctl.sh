# shellcheck shell=bash
# Parsers for svrctl output, so that scripts read figures, not screen layouts. Each reads
# svrctl's output on standard input.

# Prints "COMPLETE TOTAL" for `svrctl --json show peers security`: the number of peer
# paths whose security_status is MKEY_EXCH_COMP, and the number of paths.
svrctl_peer_paths_complete() {
    python3 -c '
import json, sys
try:
    paths = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
if not isinstance(paths, list):
    sys.exit(1)
done = sum(1 for p in paths if isinstance(p, dict) and p.get("security_status") == "MKEY_EXCH_COMP")
print(done, len(paths))
'
}

# Prints the first "Metadata Rekey Index" of `svrctl show security key-status`, and
# returns non-zero when there is none.
svrctl_metadata_rekey_index() {
    local index
    index=$(sed -n 's/^ *Metadata Rekey Index: *\([0-9][0-9]*\) *$/\1/p' | head -n 1)
    [[ -n $index ]] || return 1
    printf '%s\n' "$index"
}

# Prints "PATH VALUE" for every numeric counter of `svrctl --json show stats` whose path
# (object keys joined by dots; list items named by their "reason" or "name" field, else
# their position) contains "drop".
svrctl_drop_counters() {
    python3 -c '
import json, sys

def walk(value, path):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, path + [str(key)])
    elif isinstance(value, list):
        for number, item in enumerate(value):
            label = None
            if isinstance(item, dict):
                label = item.get("reason") or item.get("name")
            yield from walk(item, path + [str(label or number)])
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if any("drop" in part.lower() for part in path):
            yield ".".join(path), value

try:
    stats = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
for name, value in walk(stats, []):
    print(name, value)
'
}
