#!/usr/bin/env bash
# Builds the Debian package and prints its path (target/debian/hostbgp_*.deb).
#
#   scripts/package.sh
#
# Needs cargo-deb (`cargo install --locked cargo-deb`); no root. What goes in the
# package is listed in Cargo.toml, [package.metadata.deb]. The man pages and shell
# completions are written from the clap definitions by the binary itself (the hidden
# `hostbgp generate DIR`), so they always match `--help`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! cargo deb --version >/dev/null 2>&1; then
    echo "package.sh: cargo-deb is missing: cargo install --locked cargo-deb" >&2
    exit 1
fi

cargo build --release --locked --bin hostbgp
bin="${CARGO_TARGET_DIR:-target}/release/hostbgp"

# Cargo.toml's assets name this directory.
assets=target/deb-assets
rm -rf "$assets"
"$bin" generate "$assets"
gzip -9n "$assets"/*.8

# --strip: the release profile keeps debug info for profiling; the package must not.
# --no-build: built above, with the same profile.
cargo deb --no-build --strip
