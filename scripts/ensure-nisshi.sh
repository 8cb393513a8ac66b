#!/usr/bin/env bash
# Prints the path of a nisshi 0.8.1 broker (a Kafka-compatible broker from crates.io, used by the
# Kafka backend's tests), installing it into a cache keyed by version if needed:
#   1. the cached binary, if it reports the right version;
#   2. else ../shared/tools/nisshi.gz beside the repo, if its sha256 matches the .sha256 file;
#   3. else `cargo install` from crates.io (25-35 min on 2 cores; memory storage only).
# Never use tansu 0.6.0: it skips records when a fetch starts inside a batch.
set -euo pipefail
version=0.8.1
cache="${AORTA_CACHE:-$HOME/.cache/aorta}/nisshi-$version"
bin="$cache/nisshi"
ok() { [ -x "$1" ] && "$1" --version 2>/dev/null | grep -qx "nisshi $version"; }
if ok "$bin"; then echo "$bin"; exit 0; fi
mkdir -p "$cache"
shared="${AORTA_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}"
gz="$shared/tools/nisshi.gz"
if [ -f "$gz" ] && [ -f "$gz.sha256" ]; then
  want=$(awk '{print $1}' "$gz.sha256")
  have=$(sha256sum "$gz" | awk '{print $1}')
  if [ "$want" = "$have" ]; then
    gunzip -c "$gz" > "$bin.tmp" && chmod +x "$bin.tmp" && mv "$bin.tmp" "$bin"
    if ok "$bin"; then echo "$bin"; exit 0; fi
    echo "warning: $gz unpacked but does not run as nisshi $version; building instead" >&2
  else
    echo "warning: $gz does not match its sha256 ($have != $want); building instead" >&2
  fi
fi
echo "building nisshi $version from crates.io into $cache (25-35 minutes on 2 cores)..." >&2
cargo install nisshi --version "$version" --locked --ignore-rust-version --no-default-features \
  --features dynostore --root "$cache/build" >&2
cp "$cache/build/bin/nisshi" "$bin"
ok "$bin" || { echo "error: the built nisshi does not report version $version" >&2; exit 1; }
echo "$bin"
