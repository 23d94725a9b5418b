#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The wheels an image installs into /opt/edgecoder, for ARCH (x86_64 or arm64), into OUT:
# EdgeCoder's own wheel with the compiled core (required), llama-cpp-python built for the
# image's CPU baseline (never this host's CPU), and every other dependency at the exact
# version in image/requirements.txt as a binary wheel.
#
# usage: image/wheels.sh ARCH OUT PYTHON
source "$(dirname "$0")/lib.sh"

ARCH=$1 OUT=$2 PYTHON=$3
LLAMA_VERSION=0.3.36
NUMPY_VERSION=$(sed -n 's/^numpy==//p' "$IMAGE_DIR/requirements.txt")

# llama.cpp's CPU kernels per architecture. GGML_NATIVE would tune them for the build
# host's CPU and the image would die with SIGILL on an older box.
#
# x86_64: x86-64-v3 (AVX, AVX2, FMA, F16C, BMI2). Every Intel Core since Haswell (2013),
#   every AMD Zen, and the Intel N100/N200/N305 that most x86 mini PCs sold today carry;
#   it runs quantised models about twice as fast as SSE-only code. Not AVX-512 (absent on
#   most mini PCs) and not the Atom-class Celerons (J4125, N5105): those need the x86-64-v2
#   fallback below, which a boot-time generator selects when the CPU lacks AVX2.
# arm64: armv8.2-a with dotprod and fp16 (the Pi 5's Cortex-A76); the Pi 4's Cortex-A72
#   is armv8.0, which the armv8-a fallback covers. Cross-compiled with Debian's
#   crossbuild-essential-arm64 (image/aarch64-linux-gnu.cmake), never under emulation.
llama_cmake_args() {
    local common="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DGGML_CCACHE=OFF"
    local cross="$common -DCMAKE_TOOLCHAIN_FILE=$IMAGE_DIR/aarch64-linux-gnu.cmake"
    case "$1" in
        armv8.2-a) echo "$cross -DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16" ;;
        armv8-a) echo "$cross -DGGML_CPU_ARM_ARCH=armv8-a" ;;
        x86-64-v3) echo "$common -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON" ;;
        x86-64-v2) echo "$common -DGGML_SSE42=ON -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_BMI2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF" ;;
        *) die "no llama.cpp flags for $1" ;;
    esac
}

# Build a wheel from its source distribution (or take it from the cache); prints its path.
# usage: source_wheel PROJECT VERSION LABEL ENV PIP_ARGS...  (ENV: "NAME=value" or "")
source_wheel() {
    local project=$1 version=$2 label=$3 env=$4 key key_env toolchain="" dir sdist_dir
    shift 4
    # Keyed by what the flags say, not where this checkout is: a cross build names its
    # CMake toolchain by path, and each clone (CI's included) has its own.
    key_env=${env//$IMAGE_DIR/image}
    [ "$key_env" = "$env" ] || toolchain=$(cat "$IMAGE_DIR"/*.cmake)
    key=$(printf '%s\n' "$project" "$version" "$ARCH" "$label" "$key_env" "$*" \
        "$("$(compiler)" -dumpfullversion)" ${toolchain:+"$toolchain"} \
        | sha256sum | cut -c1-16)
    dir="$WHEEL_CACHE/$project-$version-$ARCH-$label-$key"
    if ! ls "$dir"/*.whl >/dev/null 2>&1; then
        echo "image: building $project $version ($label; several minutes; cached in $dir)" >&2
        rm -rf "$dir.tmp"
        mkdir -p "$dir.tmp"
        sdist_dir=$(mktemp -d)
        "$PYTHON" -m pip download --quiet --no-deps --no-binary="$project" \
            "$project==$version" -d "$sdist_dir" >&2 || die "cannot download $project $version"
        # --no-cache-dir: pip's wheel cache is keyed by the source, not the flags, so it
        # would hand back a wheel built with other flags (the host's native one).
        # _PYTHON_HOST_PLATFORM: a cross-compiled wheel is tagged for its target.
        env ${env:+"$env"} CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
            _PYTHON_HOST_PLATFORM="linux-$(uname_m)" \
            "$PYTHON" -m pip wheel --quiet --no-deps --no-cache-dir -w "$dir.tmp" "$@" \
            "$sdist_dir"/*.tar.gz >&2 || die "building $project $version ($label) failed"
        rm -rf "$sdist_dir" "$dir"
        mv "$dir.tmp" "$dir"
    fi
    ls "$dir"/*.whl
}

llama_wheel() {
    source_wheel llama-cpp-python "$LLAMA_VERSION" "$1" "CMAKE_ARGS=$(llama_cmake_args "$1")"
}

# numpy without OpenBLAS and without its run-time SIMD variants: llama-cpp-python only
# keeps token arrays in numpy and never multiplies matrices with it, while the PyPI wheel's
# OpenBLAS and AVX-512 kernels are 7 MB of the compressed image. numpy's baseline (SSE3 on
# x86-64) runs on every box.
numpy_wheel() {
    source_wheel numpy "$NUMPY_VERSION" noblas-nodispatch "" -Csetup-args=-Dblas=none \
        -Csetup-args=-Dlapack=none -Csetup-args=-Dallow-noblas=true \
        -Csetup-args=-Dcpu-dispatch=none
}

# ARCH as the kernel and Python's platform tags name it.
uname_m() {
    case "$ARCH" in
        x86_64) echo x86_64 ;;
        arm64) echo aarch64 ;;
    esac
}

# The C compiler for ARCH (its version keys the wheel cache).
compiler() {
    case "$ARCH" in
        x86_64) echo gcc ;;
        arm64) echo aarch64-linux-gnu-gcc ;;
    esac
}

# EdgeCoder's wheel from the working tree (tracked and untracked files, not ignored ones:
# no stale build/ or .venv/), with the compiled core required. The copy's random path is
# mapped to a fixed one: it lands in the debug information, and so in the libraries' build
# ids, which stripping keeps.
#
# For arm64 the core is cross-compiled: Debian's arm64 build configuration of Python 3.11
# (libpython3.11-dev:arm64 gives its headers and _sysconfigdata__aarch64-linux-gnu, which
# names the aarch64-linux-gnu-gcc compiler and the .cpython-311-aarch64-linux-gnu.so
# suffix) stands in for this interpreter's. Build isolation would drop the PYTHONPATH that
# finds it, so the wheel builds with this environment's setuptools and Cython.
edgecoder_wheel() {
    local src sysconfig="" cross=() isolation=()
    src=$(mktemp -d)
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
        | xargs -0 -I{} find {} -maxdepth 0 -type f -print0 | cpio -0pdm --quiet "$src")
    if [ "$ARCH" = arm64 ]; then
        sysconfig=$(mktemp -d)
        cp /usr/lib/python3.11/_sysconfigdata__aarch64-linux-gnu.py "$sysconfig/" \
            || die "no arm64 Python build configuration: apt-get install libpython3.11-dev:arm64"
        cross=(PYTHONPATH="$sysconfig" _PYTHON_HOST_PLATFORM=linux-aarch64
            _PYTHON_SYSCONFIGDATA_NAME=_sysconfigdata__aarch64-linux-gnu)
        isolation=(--no-build-isolation)
    fi
    env ${cross[@]+"${cross[@]}"} CFLAGS="-ffile-prefix-map=$src=/usr/src/edgecoder" \
        EDGECODER_REQUIRE_EXTENSIONS=1 "$PYTHON" -m pip wheel --quiet --no-deps \
        ${isolation[@]+"${isolation[@]}"} -w "$OUT" "$src"
    rm -rf "$src" ${sysconfig:+"$sysconfig"}
}

# Only libggml-cpu differs between CPU levels (the other libraries carry no ISA-specific
# code), so the fallback is that one library; image/overlay's generator puts its directory
# on the agent's LD_LIBRARY_PATH on a CPU below the baseline.
fallback_cpu_library() {
    local wheel dir
    wheel=$(llama_wheel "$1")
    dir="$OUT/fallback/$1"
    mkdir -p "$dir"
    unzip -q -j -o "$wheel" 'llama_cpp/lib/libggml-cpu.so.0' -d "$dir"
}

rm -rf "$OUT"
mkdir -p "$OUT"
case "$ARCH" in
    x86_64)
        edgecoder_wheel
        llama=$(llama_wheel x86-64-v3)
        numpy=$(numpy_wheel)
        cp "$llama" "$numpy" "$OUT/"
        fallback_cpu_library x86-64-v2
        ;;
    arm64)
        # numpy is PyPI's wheel here (with OpenBLAS): the size limit is the x86 image's.
        edgecoder_wheel
        cp "$(llama_wheel armv8.2-a)" "$OUT/"
        fallback_cpu_library armv8-a
        ;;
    *) die "no wheels for $ARCH (x86_64 or arm64)" ;;
esac
platform=$(uname_m)

platforms=()
for glibc in 5 12 17 24 27 28 31 34 35 36; do
    platforms+=(--platform "manylinux_2_${glibc}_$platform")
done
platforms+=(--platform "manylinux2014_$platform")
# Everything else comes as PyPI's binary wheels (numpy too, unless built above).
if ls "$OUT"/numpy-*.whl >/dev/null 2>&1; then
    grep -v '^numpy==' "$IMAGE_DIR/requirements.txt" > "$OUT/requirements.txt"
else
    cp "$IMAGE_DIR/requirements.txt" "$OUT/requirements.txt"
fi
"$PYTHON" -m pip download --quiet --only-binary=:all: --no-deps \
    -r "$OUT/requirements.txt" "${platforms[@]}" \
    --python-version 3.11 --implementation cp --abi cp311 -d "$OUT"
rm "$OUT/requirements.txt"
ls "$OUT" | sed 's/^/image:   wheel /'
