# shellcheck shell=bash disable=SC2154
# Sourced by scripts/container-check.sh (which sets cache, logs and log). Base images cannot be pulled on the
# development machines (no registry but NuGet, npm and Debian), so the images the Dockerfiles name are built here from a Debian
# bookworm root filesystem (mmdebstrap) plus the machine's own .NET and Node, and tagged with the
# upstream names: the Dockerfiles then build unmodified with --pull=never. Everything is for this
# check only and never pushed. Each stand-in is cached twice: in podman's storage, and as an
# archive in $cache (.containers/, git-ignored) keyed by what went into it, so a fresh storage
# reloads it in seconds instead of rebuilding it.

dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
node_bin=$(readlink -f "$(command -v node)")
npm_root=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
host_ca=/etc/ssl/certs/ca-certificates.crt

# The root filesystem: minbase plus what the .NET runtime loads (ICU, OpenSSL, time zones) and
# CA certificates. The apt sources are the machine's own, so apt-get inside a build reaches the
# same mirror as the host's apt (the Dockerfiles' runtime stages run apt-get).
base_rootfs() {
  local tar="$cache/bookworm.tar" sources=()
  [ -s "$tar" ] && return 0
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [ -s "$f" ] && sources+=("$f")
  done
  log "building the bookworm root filesystem (mmdebstrap, ~25 s)"
  # The hook runs in mmdebstrap's shell with $1 the new root; only apt settings the host needs to
  # reach its mirror (proxy, artifact registry) are copied.
  # shellcheck disable=SC2016
  mmdebstrap --quiet --variant=minbase --include=ca-certificates,libicu72,libssl3,tzdata \
    --customize-hook='for f in /etc/apt/apt.conf.d/*; do case "$f" in *proxy*|*artifact*|*[Pp]roxy*) cp "$f" "$1/etc/apt/apt.conf.d/";; esac; done' \
    bookworm "$cache/bookworm.tmp.tar" "${sources[@]}" >"$logs/mmdebstrap.log" 2>&1 || { tail -20 "$logs/mmdebstrap.log" >&2; rm -f "$cache/bookworm.tmp.tar"; return 1; }
  mv "$cache/bookworm.tmp.tar" "$tar"
}

# A key for each stand-in: how it is made (its setup function), the rootfs and the host tools
# copied in. A change to any of them rebuilds it.
stand_in_key() {
  {
    declare -f "setup_$1" add_host_ca
    stat -c '%s %Y' "$cache/bookworm.tar"
    case "$1" in
      sdk) ls "$dotnet_root/sdk" "$dotnet_root/shared"/* ; sha256sum "$host_ca" ;;
      aspnet) ls "$dotnet_root/shared"/* ;;
      node) "$node_bin" --version; sha256sum "$npm_root/package.json" "$host_ca" ;;
      redis) : ;;
    esac
  } | sha256sum | cut -c1-12
}

# ensure_image NAME KEY BUILD_FUNCTION TAG...: reuse, reload from the archive, or build and archive.
ensure_image() {
  local name=$1 key=$2 build=$3
  shift 3
  local archive="$cache/$name-$key.oci.tar" tag
  if [ "$(podman image inspect --format '{{index .Labels "container-check.key"}}' "$1" 2>/dev/null)" = "$key" ]; then
    return 0
  fi
  if [ -s "$archive" ]; then
    log "loading stand-in $name from $archive"
    podman load -q -i "$archive" >/dev/null || return 1
  else
    log "building stand-in $name"
    "$build" "$key" "$1" || return 1
    rm -f "$cache/$name"-*.oci.tar
    podman save -q --format oci-archive -o "$archive.tmp" "$1" && mv "$archive.tmp" "$archive" || return 1
  fi
  for tag in "${@:2}"; do podman tag "$1" "$tag" || return 1; done
}

# buildah_image KEY TAG SETUP: a container from the rootfs, SETUP CONTAINER MOUNTPOINT fills it, committed as TAG.
buildah_image() {
  local key=$1 tag=$2 setup=$3 ctr mnt
  ctr=$(buildah from --pull-never localhost/container-check/bookworm:latest) || return 1
  mnt=$(buildah mount "$ctr") || { buildah rm "$ctr" >/dev/null; return 1; }
  if ! "$setup" "$ctr" "$mnt"; then buildah umount "$ctr" >/dev/null; buildah rm "$ctr" >/dev/null; return 1; fi
  buildah umount "$ctr" >/dev/null
  buildah config --label "container-check.key=$key" "$ctr" &&
    buildah commit -q --rm "$ctr" "$tag" >/dev/null
}

# The machine's CA bundle (it may hold a TLS-intercepting proxy's CA that NuGet and npm need), where
# update-ca-certificates keeps it if a build step reinstalls ca-certificates.
add_host_ca() {
  mkdir -p "$1/usr/local/share/ca-certificates"
  cp "$host_ca" "$1/usr/local/share/ca-certificates/container-check-host.crt"
  cp "$host_ca" "$1/etc/ssl/certs/ca-certificates.crt"
}

# Like mcr.microsoft.com/dotnet/aspnet: the runtime at /usr/share/dotnet, and the non-root user
# app with uid and gid 1654.
setup_aspnet() {
  local ctr=$1 mnt=$2 d
  mkdir -p "$mnt/usr/share/dotnet/shared"
  cp -a "$dotnet_root/dotnet" "$dotnet_root/host" "$mnt/usr/share/dotnet/"
  for d in Microsoft.NETCore.App Microsoft.AspNetCore.App; do cp -a "$dotnet_root/shared/$d" "$mnt/usr/share/dotnet/shared/"; done
  ln -sf /usr/share/dotnet/dotnet "$mnt/usr/bin/dotnet"
  buildah run "$ctr" -- sh -c 'groupadd --gid=1654 app && useradd --no-log-init --uid=1654 --gid=1654 --create-home app' || return 1
  buildah config --env APP_UID=1654 --env ASPNETCORE_HTTP_PORTS=8080 --env DOTNET_RUNNING_IN_CONTAINER=true \
    --env DOTNET_VERSION="$(find "$dotnet_root/shared/Microsoft.NETCore.App" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -1)" "$ctr"
}
build_aspnet() { buildah_image "$1" "$2" setup_aspnet; }

# Like mcr.microsoft.com/dotnet/sdk: the machine's whole SDK.
setup_sdk() {
  local ctr=$1 mnt=$2
  mkdir -p "$mnt/usr/share/dotnet"
  cp -a "$dotnet_root/." "$mnt/usr/share/dotnet/"
  ln -sf /usr/share/dotnet/dotnet "$mnt/usr/bin/dotnet"
  add_host_ca "$mnt"
  # NUGET_CERT_REVOCATION_MODE: as on the machine (its proxy's certificates carry no reachable CRL).
  buildah config --env DOTNET_RUNNING_IN_CONTAINER=true --env DOTNET_NOLOGO=true --env DOTNET_CLI_TELEMETRY_OPTOUT=true \
    --env DOTNET_SKIP_FIRST_TIME_EXPERIENCE=true --env NUGET_XMLDOC_MODE=skip \
    --env NUGET_CERT_REVOCATION_MODE="${NUGET_CERT_REVOCATION_MODE:-online}" "$ctr"
}
build_sdk() { buildah_image "$1" "$2" setup_sdk; }

# Like node:20-bookworm-slim: node and npm under /usr/local, with the machine's npm settings
# (registry, CA file) as npm's global configuration.
setup_node() {
  local ctr=$1 mnt=$2 globalrc
  mkdir -p "$mnt/usr/local/bin" "$mnt/usr/local/lib/node_modules" "$mnt/usr/local/etc"
  cp "$node_bin" "$mnt/usr/local/bin/node"
  cp -a "$npm_root" "$mnt/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$mnt/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$mnt/usr/local/bin/npx"
  globalrc=$(npm config get globalconfig 2>/dev/null)
  [ -f "$globalrc" ] && cp "$globalrc" "$mnt/usr/local/etc/npmrc"
  printf 'registry=%s\n' "$(npm config get registry)" >>"$mnt/usr/local/etc/npmrc"
  add_host_ca "$mnt"
  buildah run "$ctr" -- sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node' || return 1
  buildah config --env NODE_VERSION="$("$node_bin" --version | tr -d v)" --cmd node "$ctr"
}
build_node() { buildah_image "$1" "$2" setup_node; }

# Redis for the membership table, as the manifests run it in its own pod: Debian's redis-server
# (7.0) instead of redis:7.2-alpine, installed by apt inside the build (the same path the
# Dockerfiles' apt-get takes). The official image is built with protected mode off (it would refuse
# every client not on loopback, i.e. every other pod); Debian's is not, hence the entrypoint's flag.
setup_redis() {
  local ctr=$1
  buildah run --network=host "$ctr" -- sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null && rm -rf /var/lib/apt/lists/*' || return 1
  mkdir -p "$2/data"
  buildah config --workingdir /data --entrypoint '["redis-server", "--protected-mode", "no"]' "$ctr"
}
build_redis() { buildah_image "$1" "$2" setup_redis; }

build_stand_ins() {
  base_rootfs || return 1
  if [ "$(podman image inspect --format '{{.Id}}' localhost/container-check/bookworm:latest 2>/dev/null)" = "" ] ||
     [ "$(cat "$cache/bookworm.imported" 2>/dev/null)" != "$(stat -c '%s %Y' "$cache/bookworm.tar")" ]; then
    podman import -q "$cache/bookworm.tar" localhost/container-check/bookworm:latest >/dev/null || return 1
    stat -c '%s %Y' "$cache/bookworm.tar" >"$cache/bookworm.imported"
  fi
  ensure_image aspnet "$(stand_in_key aspnet)" build_aspnet localhost/container-check/aspnet:latest mcr.microsoft.com/dotnet/aspnet:10.0 || return 1
  ensure_image sdk "$(stand_in_key sdk)" build_sdk localhost/container-check/sdk:latest mcr.microsoft.com/dotnet/sdk:10.0 || return 1
  ensure_image node "$(stand_in_key node)" build_node localhost/container-check/node:latest docker.io/library/node:20-bookworm-slim || return 1
  ensure_image redis "$(stand_in_key redis)" build_redis localhost/container-check/redis:latest || return 1
}
