# The web page's browser tests (tests/web): Debian's chromium, Node.js and npm, and
# playwright-core from npm (pinned in tests/web/package-lock.json). No browser download:
# the tests drive /usr/bin/chromium.
TEST_PACKAGES+=(chromium nodejs)
# Debian's npm, unless an npm is there already: a nodejs package that bundles npm (NodeSource's)
# conflicts with Debian's npm package.
command -v npm >/dev/null 2>&1 || TEST_PACKAGES+=(npm)

# Installs tests/web/node_modules from the lock file, once per lock file.
web_test_setup() {
  local dir="$SNAPVIRT_ROOT/tests/web"
  [ -f "$dir/package.json" ] || return 0
  local stamp="$dir/node_modules/.snapvirt-lock"
  local want
  want=$(cat "$dir/package.json" "$dir/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$dir/node_modules/playwright-core" ]; then
    return 0
  fi
  log "Installing the browser tests' npm packages (tests/web)"
  if [ -f "$dir/package-lock.json" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in tests/web failed"
  else
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error) || die "npm install in tests/web failed"
  fi
  printf '%s\n' "$want" >"$stamp"
}
TEST_SETUP+=(web_test_setup)
