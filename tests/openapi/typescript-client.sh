#!/usr/bin/env bash
# Generates TypeScript types from the OpenAPI document with openapi-typescript at its default
# options and type-checks typescript/client.ts against them with `tsc --strict`.
#   typescript-client.sh OPENAPI_JSON NODE_MODULES WORK_DIR
set -euo pipefail
doc=$1 modules=$2 work=$3
here="$(cd "$(dirname "$0")" && pwd)"
[ -x "$modules/.bin/openapi-typescript" ] && [ -x "$modules/.bin/tsc" ] ||
  { echo "openapi-typescript or tsc missing in $modules: run npm ci in tests/openapi (scripts/test does)" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"
cp "$here/typescript/client.ts" "$work/client.ts"
"$modules/.bin/openapi-typescript" "$doc" --output "$work/api.d.ts"
"$modules/.bin/tsc" --version
"$modules/.bin/tsc" --strict --noEmit --target es2022 --module nodenext --moduleResolution nodenext \
  --skipLibCheck false "$work/client.ts"
echo "client.ts type-checks against the generated types"
