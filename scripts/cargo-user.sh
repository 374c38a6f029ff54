# shellcheck shell=bash disable=SC2034  # AS_BUILDER is for the sourcing script
# Sourced by scripts/lab.sh and .ci/run, which run as root (network namespaces) and
# build with cargo. Under sudo, root usually has no cargo: rustup installs it per
# user, in ~/.cargo/bin, which sudo's PATH leaves out. Then the build runs as the
# invoking user (SUDO_USER), with their toolchain, so target/ stays theirs.
#
# find_cargo sets AS_BUILDER, the prefix to put before each build command: empty
# when root has cargo, else `runuser -u USER ...` (util-linux, on every Debian; sudo
# itself may not be). Returns 1, with a message, when neither has cargo.

find_cargo() {
    AS_BUILDER=()
    if command -v cargo >/dev/null 2>&1; then
        return 0
    fi
    local user=${SUDO_USER:-} home cargo=
    if [ -n "$user" ] && [ "$user" != root ]; then
        home=$(getent passwd "$user" | cut -d: -f6)
        if [ -x "$home/.cargo/bin/cargo" ]; then
            cargo=$home/.cargo/bin/cargo
        else
            # A toolchain elsewhere, put on the PATH by the user's login profile.
            cargo=$(runuser -l "$user" -c 'command -v cargo' 2>/dev/null || true)
            # A nologin shell prints its refusal on stdout.
            [ -x "$cargo" ] || cargo=
        fi
    fi
    if [ -z "$cargo" ]; then
        echo "no cargo: root has none on its PATH${user:+, nor has $user}." >&2
        echo "Install Rust (rustup) for root or for the user running sudo." >&2
        return 1
    fi
    local target
    target=${CARGO_TARGET_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target}
    # Not there yet: cargo will create it, in a directory the user must be able to write.
    [ -e "$target" ] || target=$(dirname "$target")
    if ! runuser -u "$user" -- test -w "$target"; then
        echo "$target is not writable by $user (built as root before?):" >&2
        echo "  sudo chown -R $user $target" >&2
        return 1
    fi
    echo "root has no cargo: building as $user with $cargo"
    AS_BUILDER=(runuser -u "$user" -- env "HOME=$home" "PATH=$(dirname "$cargo"):$PATH"
        ${CARGO_TARGET_DIR:+"CARGO_TARGET_DIR=$CARGO_TARGET_DIR"})
}
