# Test dependencies of tests/openapi (sourced by scripts/lib/common.sh): Node.js (18 or newer) for
# `redocly lint`, the response validator (ajv) and the generated-client check (openapi-typescript
# and tsc), all pinned in tests/openapi/package.json; and promtool (Debian package prometheus)
# for `promtool check metrics` on the live /metrics output.
#
# npm: a Node.js from NodeSource (as on this project's machines) brings its own npm and
# conflicts with Debian's npm package, so that package is only asked for when no npm is there.
TEST_PACKAGES+=(nodejs prometheus)
if ! command -v npm >/dev/null 2>&1; then
  TEST_PACKAGES+=(npm)
fi

# Installs tests/openapi/node_modules from package-lock.json (pinned versions); skipped while
# node_modules matches the lock file.
openapi_npm_ci() {
  local dir="$SNAPVIRT_ROOT/tests/openapi"
  local stamp="$dir/node_modules/.snapvirt-lock.sha256"
  local want
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dir/node_modules/.bin/redocly" ] &&
     [ -x "$dir/node_modules/.bin/openapi-typescript" ] && [ -x "$dir/node_modules/.bin/tsc" ]; then
    return 0
  fi
  log "Installing the OpenAPI test tools (npm ci in tests/openapi)"
  if ! (cd "$dir" && npm ci --no-audit --no-fund) >/tmp/snapvirt-npm-openapi.log 2>&1; then
    tail -20 /tmp/snapvirt-npm-openapi.log >&2
    die "npm ci in tests/openapi failed (log: /tmp/snapvirt-npm-openapi.log)"
  fi
  echo "$want" >"$stamp"
}
TEST_SETUP+=(openapi_npm_ci)
