#!/usr/bin/env bash
# build-appc-oracles.sh OUTDIR — build the appc spec authors' conformance tools
# (`actool` and the static `ace-validator`) from the Go source Debian 12 ships in
# golang-github-appc-spec-dev (spec 0.8.11), offline (GOPATH mode, no module proxy).
#
# Output: OUTDIR/bin/actool, OUTDIR/bin/ace-validator, OUTDIR/STAMP (package version).
# A second run with the same package version is a no-op, so `make test` stays fast.
set -euo pipefail

[ $# -eq 1 ] && [ -n "$1" ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
SPEC=github.com/appc/spec
GOCODE=/usr/share/gocode

missing=()
for p in golang-go golang-github-appc-spec-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "build-appc-oracles: installing ${missing[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
		--no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$1/bin"
OUT=$(cd "$1" && pwd)
want="$(dpkg-query -W -f='${Version}' golang-github-appc-spec-dev) $(go version)"
if [ -x "$OUT/bin/actool" ] && [ -x "$OUT/bin/ace-validator" ] && [ "$(cat "$OUT/STAMP" 2>/dev/null)" = "$want" ]; then
	exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/appc-oracles.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export GO111MODULE=off GOPATH="$WORK/gopath:$GOCODE" GOCACHE="$WORK/cache" GOFLAGS='' \
	GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0
unset GOBIN GOOS GOARCH
go build -trimpath -o "$WORK/actool" "$SPEC/actool"
go build -trimpath -o "$WORK/ace-validator" "$SPEC/ace"
# install atomically: a half-built oracle must never be mistaken for a good one
mv "$WORK/actool" "$WORK/ace-validator" "$OUT/bin/"
echo "$want" >"$OUT/STAMP"
echo "build-appc-oracles: built $("$OUT/bin/actool" version 2>&1 | head -1) into $OUT/bin" >&2
