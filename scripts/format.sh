#!/usr/bin/env bash
# Format C sources with clang-format and the repository's .clang-format.
#   scripts/format.sh FILE...   format these files in place
#   scripts/format.sh           format every file of scripts/format-files.txt
#   scripts/format.sh --check   fail (naming them) if any file of
#                               scripts/format-files.txt is not formatted
# scripts/format-files.txt lists the files the check covers: files that
# are clean and stay so. It grows: format a file (a whole-file commit of
# its own, when nobody else is rewriting it) and add it. A file on the list
# stays clean: run scripts/format.sh FILE before committing a change to it.
# scripts/test.sh runs the check (CI). docs/development.md says more.
set -euo pipefail
cd "$(dirname "$0")/.."
list=scripts/format-files.txt
cf=${CLANG_FORMAT:-clang-format}
command -v "$cf" >/dev/null || {
  echo "format: $cf not found (scripts/deps.sh installs clang-format)" >&2
  exit 1
}
files() { grep -v '^\s*#' "$list" | grep -v '^\s*$'; }
if [ "${1:-}" = "--check" ]; then
  bad=()
  while read -r f; do
    if [ ! -f "$f" ]; then
      echo "format: $f is listed in $list but does not exist" >&2
      bad+=("$f")
    elif ! "$cf" --dry-run -Werror "$f" >/dev/null 2>&1; then
      bad+=("$f")
    fi
  done < <(files)
  if [ ${#bad[@]} -gt 0 ]; then
    echo "format: not formatted (fix with scripts/format.sh FILE):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
  fi
  echo "format: $(files | wc -l) files clean"
  exit 0
fi
if [ $# -gt 0 ]; then
  "$cf" -i "$@"
else
  files | xargs "$cf" -i
fi
