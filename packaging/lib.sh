# Shared by packaging/{deb,rpm,arch,test}; sourced, not run.
#
# Every package is built from `git archive HEAD` (a clean checkout: only
# committed files). The crates of Cargo.lock are fetched beforehand into the
# build user's CARGO_HOME and the package builds run offline
# (CARGO_NET_OFFLINE). All builds run as the unprivileged user $builder and
# share that CARGO_HOME and one cargo target directory, so the release
# binaries are compiled once for all formats: each format still runs its own
# cargo build, which finds everything fresh (the crates' sources sit at the
# same absolute paths every time, which cargo's fingerprints need).

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$repo/target/packages
work=$out/work
sources=$out/sources
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n1)
revision=${MOSH_PKG_REVISION:-1}
builder=mosh-pkg-build
export CARGO_TARGET_DIR=${MOSH_PKG_TARGET_DIR:-$out/cargo-target}

die() { echo "packaging: $*" >&2; exit 1; }

# Fails unless every named command exists.
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool is missing (run packaging/test, which installs the tools)"
    done
}

# Writes the source tarball into $sources and fetches the crates of
# Cargo.lock for $builder.
make_sources() {
    need git cargo tar gzip
    mkdir -p "$sources"
    local commit
    commit=$(git -C "$repo" rev-parse HEAD)
    if ! git -C "$repo" diff --quiet HEAD -- 2>/dev/null; then
        echo "packaging: note: uncommitted changes are not packaged (building $commit)" >&2
    fi
    git -C "$repo" archive --format=tar.gz --prefix="mosh-daemon-$version/" \
        -o "$sources/mosh-daemon-$version.tar.gz" "$commit"
    (cd "$repo" && CARGO_NET_OFFLINE=false as_builder cargo fetch --locked --quiet)
}

# The directory holding a cargo and rustc that $builder may run: the active
# toolchain, or a hard-linked copy of it when it lives in a private home.
toolchain_for_builder() {
    local sysroot
    sysroot=$(rustc --print sysroot)
    if [ "$(id -u)" != 0 ] || runuser -u "$builder" -- test -x "$sysroot/bin/cargo"; then
        echo "$sysroot/bin"
        return
    fi
    local copy=$out/toolchain
    if [ "$(cat "$copy.version" 2>/dev/null)" != "$(rustc -V)" ]; then
        rm -rf "$copy"
        cp -al "$sysroot" "$copy" 2>/dev/null || cp -a "$sysroot" "$copy"
        rustc -V > "$copy.version"
    fi
    echo "$copy/bin"
}

# Runs a command as $builder (creating the user), with a clean environment
# that keeps the toolchain, CARGO_TARGET_DIR, CARGO_NET_OFFLINE (true unless
# set), PKGEXT and SOURCE_DATE_EPOCH.
as_builder() {
    if [ "$(id -u)" != 0 ]; then
        "$@"
        return
    fi
    if ! id "$builder" >/dev/null 2>&1; then
        useradd --system --create-home --home-dir "/var/lib/$builder" --shell /bin/sh "$builder"
    fi
    mkdir -p "$CARGO_TARGET_DIR" "$work"
    chown -R "$builder:" "$CARGO_TARGET_DIR" "$work"
    local tools
    tools=$(toolchain_for_builder)
    runuser -u "$builder" -- env -i HOME="/var/lib/$builder" USER="$builder" LOGNAME="$builder" \
        PATH="$tools:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" LANG=C.UTF-8 \
        CARGO_HOME="/var/lib/$builder/cargo" CARGO_TARGET_DIR="$CARGO_TARGET_DIR" \
        CARGO_NET_OFFLINE="${CARGO_NET_OFFLINE:-true}" CARGO_TERM_COLOR=never ${PKGEXT:+PKGEXT=$PKGEXT} ${SOURCE_DATE_EPOCH:+SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH} \
        "$@"
}

# Unpacks the source tarball into DIR/mosh-daemon-$version.
unpack_sources() {
    local dir=$1
    rm -rf "$dir"
    mkdir -p "$dir"
    tar -C "$dir" -xzf "$sources/mosh-daemon-$version.tar.gz"
}
