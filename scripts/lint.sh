#!/usr/bin/env bash
# The style and structure checks, one place for both npm scripts:
#   scripts/lint.sh          (npm run lint)    ESLint, Prettier, clang-format, the import rules of lib/ and
#                                               the types of the test suites (tsconfig.test.json);
#                                               runs them all, names each that failed, exits non-zero
#   scripts/lint.sh format   (npm run format)  rewrites the files Prettier and clang-format would change
# Configuration: eslint.config.mjs, .prettierrc, .clang-format, .dependency-cruiser.cjs.
# clang-format comes from Debian (package clang-format).
set -uo pipefail
cd "$(dirname "$0")/.."
bin=node_modules/.bin
# What Prettier formats: the TypeScript and the JavaScript build and config files.
js=('lib/**/*.ts' 'test/**/*.ts' 'scripts/**/*.js' eslint.config.mjs vitest.config.mts .dependency-cruiser.cjs)
mapfile -t cpp < <(find native \( -name '*.cc' -o -name '*.h' \) | sort)

if ! command -v clang-format > /dev/null; then
  echo "clang-format not found: install it (Debian: apt-get install clang-format)" >&2
  exit 1
fi

case "${1:-check}" in
  format)
    "$bin/prettier" --write --log-level warn "${js[@]}" && clang-format -i "${cpp[@]}"
    exit
    ;;
  check) ;;
  *)
    echo "usage: scripts/lint.sh [check | format]" >&2
    exit 2
    ;;
esac

failed=()
check() {
  local name=$1
  shift
  "$@" || failed+=("$name")
}
check eslint "$bin/eslint" --max-warnings 0 .
check prettier "$bin/prettier" --check --log-level warn "${js[@]}"
check clang-format clang-format --dry-run -Werror "${cpp[@]}"
check imports "$bin/depcruise" --config .dependency-cruiser.cjs lib
# The suites are type-checked too (tsconfig.json builds lib/ only): a test importing a name that
# moved fails here, not at run time.
check test-types "$bin/tsc" -p tsconfig.test.json
if [ "${#failed[@]}" -gt 0 ]; then
  echo "lint failed: ${failed[*]} (npm run format fixes what Prettier and clang-format report)" >&2
  exit 1
fi
echo "lint: ESLint, Prettier, clang-format, the import rules and the test types pass"
