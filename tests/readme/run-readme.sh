#!/usr/bin/env bash
# Runs README.md's command blocks as written, in order, in one shell, against scripts/run: the
# README cannot rot. The blocks are read from README.md itself at test time. Every fenced block
# whose language is sh (or bash) runs, unless its info string says `norun` (for an installed
# package, another host...); other blocks (toml, json, plain) are not commands.
#
# Like a user in a second shell at the repository's root while scripts/run serves: the working
# directory is a stand-in for the checkout (its files linked, `build` the build directory, `var`
# this test's own state), and the only rewriting is the test's own port for 127.0.0.1:8080 and
# its own demo VM for snapvirt-demo. Afterwards the lines scripts/run's banner offers for the CLI
# are run too, and no job of the demo may have failed.
#   run-readme.sh SOURCE_DIR BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" "$2" readme

# The README's runnable blocks, each with the line it starts on.
blocks="$WORK/readme-blocks.sh"
awk -v out="$blocks" '
  BEGIN { n = 0 }
  !inblock && /^[ \t]*```/ {
    info = $0; sub(/^[ \t]*```/, "", info)
    split(info, word, /[ \t]+/)
    inblock = 1; indent = $0; sub(/```.*/, "", indent)
    run = (word[1] == "sh" || word[1] == "bash") && info !~ /(^|[ \t])norun([ \t]|$)/
    if (run) { n++; printf "echo \"--- README.md block %d (line %d)\" >&2\n", n, NR > out }
    next
  }
  inblock && /^[ \t]*```[ \t]*$/ { inblock = 0; next }
  inblock && run { line = $0; if (indent != "" && index(line, indent) == 1) line = substr(line, length(indent) + 1); print line > out }
  END { print n > "/dev/stderr" }
' "$SRC/README.md" 2>"$WORK/count"
count=$(cat "$WORK/count")
say "README.md has $count runnable command blocks"
[ "$count" -ge 4 ] || fail "README.md has only $count runnable sh blocks; expected the set-up, curl and CLI blocks"
grep -q 'snapvirt instances' "$blocks" || fail "README.md's runnable blocks do not use the CLI"

start_scripts_run

# The stand-in checkout.
root="$WORK/checkout"
mkdir -p "$root"
for entry in "$SRC"/* "$SRC"/.[!.]*; do
  [ -e "$entry" ] || continue
  name=$(basename "$entry")
  case "$name" in build* | var | .git) continue ;; esac
  ln -s "$entry" "$root/$name"
done
ln -s "$BUILD" "$root/build"
ln -s "$WORK/var" "$root/var"

script="$WORK/readme.sh"
{
  echo 'set -euo pipefail'
  sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$PORT/g" -e "s/snapvirt-demo/$DEMO/g" "$blocks"
} >"$script"

wait_demo_booted   # as a user who reads the banner first: the demo has booted
say "running README.md's blocks in $root"
(cd "$root" && env -u SNAPVIRT_URL -u SNAPVIRT_TOKEN -u SNAPVIRT_OUTPUT PATH="$PATH" HOME="$WORK" \
   timeout 600 bash "$script") || fail "a README.md command failed (exit $?); its output is above"

# The banner's CLI lines, as printed, from anywhere.
banner=$(sed -n '/The CLI, in another shell:/,/^$/p' "$RUN_LOG" | sed '1d;/^$/d;s/^ *//')
[ -n "$banner" ] || fail "scripts/run's banner has no CLI lines"
say "running the banner's CLI lines: $banner"
(cd "$WORK" && env -u SNAPVIRT_URL PATH=/usr/bin:/bin bash -euo pipefail -c "$banner") >/dev/null ||
  fail "the banner's CLI lines failed"

failed=$(get "/v1/jobs?instance=$DEMO&state=failed")
[ "$(jq '.items | length' <<<"$failed")" = 0 ] || fail "jobs of the README's commands failed: $failed"
say "ok: every runnable command block of README.md ran as written"
