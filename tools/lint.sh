#!/usr/bin/env bash
# Lint as mmsegmentation does: flake8, isort, yapf and codespell with the
# settings in setup.cfg, on every Python file git knows (tracked, or new and
# not ignored) and on the Markdown docs, requirements and shell scripts.
#
#   tools/lint.sh          check only; exits 1 when a tool has findings
#   tools/lint.sh --fix    let isort and yapf rewrite the files, then check
#
# The tools' versions are pinned in requirements-test.txt (isort and yapf
# format differently from one release to the next).
set -uo pipefail
cd "$(dirname "$0")/.."

fix=0
case "${1:-}" in
  '') ;;
  --fix) fix=1 ;;
  *) echo "usage: tools/lint.sh [--fix]" >&2; exit 2 ;;
esac

for tool in flake8 isort yapf codespell; do
  if ! command -v "$tool" > /dev/null; then
    echo "tools/lint.sh: $tool is not installed; run" \
      "'pip install -r requirements-test.txt'" >&2
    exit 2
  fi
done

if ! git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
  echo "tools/lint.sh: run it in a git checkout (it lints the files git" \
    "knows)" >&2
  exit 2
fi
mapfile -t py < <(git ls-files --cached --others --exclude-standard \
  -- '*.py' | sort -u)
mapfile -t text < <(git ls-files --cached --others --exclude-standard \
  -- '*.py' '*.md' '*.txt' '*.cfg' '*.ini' '*.sh' '*.yaml' '.ci/*' | sort -u)
# files deleted in the work tree but still in the index
mapfile -t py < <(for f in "${py[@]}"; do [ -f "$f" ] && echo "$f"; done)
mapfile -t text < <(for f in "${text[@]}"; do [ -f "$f" ] && echo "$f"; done)

if [ "$fix" -eq 1 ]; then
  isort "${py[@]}"
  yapf --in-place "${py[@]}"
fi

failed=()
echo '== flake8'
flake8 "${py[@]}" || failed+=(flake8)
echo '== isort (check only)'
isort --check-only --diff "${py[@]}" || failed+=(isort)
echo '== yapf (check only)'
yapf --diff "${py[@]}" || failed+=(yapf)
echo '== codespell'
codespell "${text[@]}" || failed+=(codespell)

if [ "${#failed[@]}" -gt 0 ]; then
  echo "tools/lint.sh: findings from ${failed[*]} (see above). Fix" \
    "formatting with 'tools/lint.sh --fix'; flake8 and codespell" \
    "findings by hand." >&2
  exit 1
fi
echo 'tools/lint.sh: clean'
