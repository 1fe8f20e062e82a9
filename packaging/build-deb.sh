#!/usr/bin/env bash
# build-deb.sh [OUT_DIR] — nspod_<version>_<arch>.deb from this checkout: the files git tracks (and
# new ones it does not ignore) copied to a build tree with packaging/debian as debian/, built with
# `dpkg-buildpackage -us -uc -b`, then checked with lintian, which must show no errors.
# The .deb and lintian's report land in OUT_DIR (default build/deb). Needs root only to install
# the build's Debian packages when they are missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=$(mkdir -p "${1:-$repo/build/deb}" && cd "${1:-$repo/build/deb}" && pwd)
# the build's tools, then debian/control's own Build-Depends (one list: it cannot drift from this one)
"$repo/tests/harness/apt-ensure.sh" dpkg-dev fakeroot lintian
"$repo/tests/harness/apt-ensure.sh" --build-deps "$repo/packaging"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/pyproject.toml")
work=$(mktemp -d /var/tmp/nspod-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/nspod-$version
mkdir -p "$src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
	tar --null -T - -cf -) | tar -C "$src" -xf -
cp -r "$src/packaging/debian" "$src/debian"
[ "$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)" = "$version" ] ||
	{ echo "build-deb: packaging/debian/changelog is not at version $version (pyproject.toml)" >&2; exit 1; }

echo "build-deb: dpkg-buildpackage in $src" >&2
# Debian's python3 and tools only (not a virtualenv's or pyenv's); pip's settings (the way to PyPI
# for pysequoia) pass through
env_vars=(PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$work" LANG=C.UTF-8)
while IFS='=' read -r name value; do env_vars+=("$name=$value"); done < <(env | grep -E '^(PIP_|https?_proxy=|no_proxy=)' || true)
(cd "$src" && env -i "${env_vars[@]}" dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 ||
	{ tail -n 40 "$work/build.log" >&2; echo "build-deb: dpkg-buildpackage failed" >&2; exit 1; }
deb=$(ls "$work"/nspod_"$version"_*.deb)
# errors fail the build; warnings and notes are kept in the report
lintian --fail-on error --tag-display-limit 0 "$deb" >"$out/lintian.txt" 2>&1 ||
	{ cat "$out/lintian.txt" >&2; echo "build-deb: lintian found errors" >&2; exit 1; }
rm -f "$out"/nspod_*.deb
cp "$deb" "$out/"
echo "build-deb: $out/$(basename "$deb") (lintian: $(grep -c '^E:' "$out/lintian.txt" || true) errors, $(grep -c '^W:' "$out/lintian.txt" || true) warnings)" >&2
