#!/usr/bin/env bash
# The main job on the embedded default: back up the bundled Chinook SQLite database into a local
# repository, list it, restore it into a new file, and show that the copy matches.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/cli/main.js ] || npm run build --silent
demo=.cairn-demo
rm -rf "$demo" && mkdir -p "$demo"
cp fixtures/chinook/chinook.sqlite "$demo/chinook.db"
run() { echo "\$ $*"; "$@"; echo; }
cairn() { node bin/cairn.js "$@"; }
run cairn repo init "$demo/repo"
run cairn backup create --source "sqlite:$demo/chinook.db" --repo "$demo/repo" --id chinook-demo
run cairn backup list --repo "$demo/repo"
run cairn restore chinook-demo --repo "$demo/repo" --to "sqlite:$demo/chinook-restored.db"
run node scripts/compare-sqlite.mjs "$demo/chinook.db" "$demo/chinook-restored.db"
