#!/usr/bin/env bash
# Stages the Debian bookworm libraries that the lean build (CLIPSHARD_WITH_MPI=OFF,
# CLIPSHARD_WITH_OPENCV=OFF) needs on a CUDA host without a package registry (docs/GPU.md).
# Run here, on Debian bookworm x86-64, from anywhere:
#   scripts/stage-gpu-deps.sh [--dest DIR]     # DIR defaults to gpu-deps/ (git-ignored)
# It `apt-get download`s the -dev packages (headers, link symlinks, CMake/pkg-config files), their
# runtime libraries and every further shared library those need (found from the ELF NEEDED entries
# and dpkg -S; only glibc, libstdc++ and libgcc_s are assumed present on the host), unpacks them
# with dpkg-deb -x into DIR/root, prunes what the build never reads (static HDF5/ICU archives,
# documentation, Fortran), and packs DIR/root into DIR/gpu-deps.tar.xz: the one file that travels.
# Not staged: LibTorch (the host's Python torch has it), OpenCV and MPI (the lean build has neither).
# Prints the size of the working tree and of the archive: together they must stay under 64 MiB.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=$repo/gpu-deps
while [[ $# -gt 0 ]]; do
  case $1 in
    --dest) dest=$2; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "stage-gpu-deps.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# What the lean build finds in cmake/Dependencies.cmake (except Torch, OpenCV, MPI), as -dev package
# plus its runtime library, and pkgconf (CMake's FindPkgConfig needs the program).
packages=(
  nlohmann-json3-dev libcli11-dev libgtest-dev
  libhdf5-dev libhdf5-103-1
  libicu-dev libicu72
  libjpeg62-turbo-dev libjpeg62-turbo libpng-dev libpng16-16 libgif-dev libgif7
  libwebp-dev libwebp7 libwebpdemux2 libwebpmux3
  libxxhash-dev libxxhash0 zlib1g-dev zlib1g
  pkgconf pkgconf-bin libpkgconf3
)
# Present on any host whose glibc is >= 2.36 (bookworm's), never staged.
base_packages="libc6 libstdc++6 libgcc-s1"

if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
  echo "stage-gpu-deps.sh: needs apt-get and dpkg-deb (run it on Debian bookworm)" >&2
  exit 1
fi
debs=$dest/debs
root=$dest/root
rm -rf "$root"
mkdir -p "$debs" "$root"

download() {  # download PACKAGE...: the .debs not yet in $debs
  local p todo=()
  for p in "$@"; do
    compgen -G "$debs/${p}_*.deb" >/dev/null || todo+=("$p")
  done
  [[ ${#todo[@]} -eq 0 ]] && return 0
  (cd "$debs" && apt-get download -q "${todo[@]}" >/dev/null) || {
    echo "stage-gpu-deps.sh: apt-get download failed for: ${todo[*]}" >&2
    exit 1
  }
}

# The closure: download, unpack, then add the package of every NEEDED library that neither the
# staged files nor the base packages provide; repeat until nothing is added.
staged=" ${packages[*]} "
round=("${packages[@]}")
while [[ ${#round[@]} -gt 0 ]]; do
  download "${round[@]}"
  for p in "${round[@]}"; do dpkg-deb -x "$debs/${p}"_*.deb "$root"; done
  round=()
  while read -r soname; do
    [[ -n $(find "$root" -name "$soname" -print -quit) ]] && continue
    path=$(/sbin/ldconfig -p | awk -v s="$soname" '$1 == s && /x86-64/ && !p {print $NF; p = 1}')
    if [[ -z $path ]]; then
      echo "stage-gpu-deps.sh: $soname is needed but not installed here; install its package" >&2
      exit 1
    fi
    pkg=""
    for candidate in "$(readlink -f "$path")" "$path" "${path#/usr}" "/usr$path"; do
      pkg=$(dpkg -S "$candidate" 2>/dev/null | head -1 | cut -d: -f1) || pkg=""
      [[ -n $pkg ]] && break
    done
    if [[ -z $pkg ]]; then
      echo "stage-gpu-deps.sh: no package owns $path (needed: $soname)" >&2
      exit 1
    fi
    [[ " $base_packages " == *" $pkg "* || $staged == *" $pkg "* ]] && continue
    staged+="$pkg "
    round+=("$pkg")
  done < <(find "$root" -type f \( -name '*.so*' -o -path '*/bin/*' \) -exec sh -c \
             'readelf -d "$1" 2>/dev/null' _ {} \; |
           sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u)
done

# Prune: static archives (the build links the shared libraries; libgtest*.a are the only static
# ones it needs), documentation, Fortran and C++ HDF5 bindings, HDF5's compiler wrappers (they name
# /usr paths and would send FindHDF5 to the system's HDF5).
lib=$root/usr/lib/x86_64-linux-gnu
find "$root" -name '*.a' ! -name 'libgtest*.a' -delete
rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/lintian" "$root/usr/share/info"
rm -f "$root"/usr/bin/h5* "$lib"/libhdf5*fortran* "$lib"/hdf5/serial/*fortran* "$lib"/libgmock*
find "$root" -xtype l -delete  # links into packages not staged (the HDF5 C++/HL bindings)

tar -C "$root" -cJf "$dest/gpu-deps.tar.xz.tmp" .
mv "$dest/gpu-deps.tar.xz.tmp" "$dest/gpu-deps.tar.xz"
printf '%s\n' $staged | sort >"$dest/packages.txt"

# What travels to the GPU machine: tracked files, untracked files git does not ignore, and the
# archive (the only ignored path carried).
tree_bytes=$(cd "$repo" && { git ls-files -z; git ls-files -z --others --exclude-standard; } |
  xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
archive_bytes=$(stat -c %s "$dest/gpu-deps.tar.xz")
root_bytes=$(du -sb "$root" | cut -f1)
total=$((tree_bytes + archive_bytes))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "staged $(wc -l <"$dest/packages.txt") packages: $(mib "$root_bytes") unpacked in $root"
echo "travels: working tree $(mib "$tree_bytes") + $dest/gpu-deps.tar.xz $(mib "$archive_bytes")" \
  "= $(mib "$total") (limit 64 MiB)"
if ((total > 64 * 1048576)); then
  echo "stage-gpu-deps.sh: over the 64 MiB that may travel" >&2
  exit 1
fi
