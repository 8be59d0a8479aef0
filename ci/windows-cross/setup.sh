#!/usr/bin/env bash
# spuff's copy of the Windows cross setup (used by .ci/run; docs/windows.md).
# Set up cross-compiling Rust (x86_64-pc-windows-msvc) on Debian 12 without MSVC / Windows SDK,
# and running the result under Wine. Tested with rustc 1.95, russh 0.65 (aws-lc-rs and ring),
# tokio, hyper-rustls 0.27, redb 4, crossterm 0.29, clap 4, indicatif 0.18.
# Usage: bash setup.sh [DIR]   (DIR default: $HOME/.cache/wincross)
# Then:  . DIR/env.sh && cargo build --target x86_64-pc-windows-msvc
#        cargo test --target x86_64-pc-windows-msvc       # runs test .exe under wine64
set -euo pipefail
D=${1:-$HOME/.cache/wincross}
mkdir -p "$D"/{bin,shim,lib,crt}
MINGW=/usr/x86_64-w64-mingw32

if ! command -v clang >/dev/null || ! command -v llvm-dlltool >/dev/null || ! command -v llvm-lib >/dev/null \
   || [ ! -d $MINGW/include ] || [ ! -x /usr/lib/wine/wine64 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    clang llvm mingw-w64-x86-64-dev wine64 >/dev/null
fi
CLANG=$(readlink -f "$(command -v clang)")
ln -sf "$CLANG" "$D/bin/clang-cl"      # argv[0] == clang-cl selects the MSVC-compatible driver
# Linker: rustup's rust-lld in lld-link flavour (no Debian lld needed)
SYSROOT=$(rustc --print sysroot)
ln -sf "$SYSROOT/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld" "$D/bin/lld-link"

# --- header shims: mingw-w64 headers + clang in MSVC mode ---
# clang's own intrin.h (MSVC mode) clashes with mingw's intrinsic macros: use mingw's.
echo "#include \"$MINGW/include/intrin.h\"" > "$D/shim/intrin.h"
cat > "$D/shim/_mingw.h" <<EOF
/* Built with -fgnuc-version so mingw takes its __attribute__ paths, then undo the
   GNU-only keyword macros that clash with MSVC-mode clang. */
#ifndef WINCROSS_MINGW_SHIM
#define WINCROSS_MINGW_SHIM
#include "$MINGW/include/_mingw.h"
#undef __forceinline
#undef __int8
#undef __int16
#undef __int32
#undef __int64
#undef __ptr32
#undef __ptr64
#undef __unaligned
#undef __w64
#ifndef __MINGW_IMPORT
#define __MINGW_IMPORT extern __declspec(dllimport)
#endif
#endif
EOF

# --- import libraries: mingw's lib*.a work with lld-link under MSVC names ---
for f in "$MINGW"/lib/lib*.a; do b=$(basename "$f" .a); ln -sf "$f" "$D/lib/${b#lib}.lib"; done
rm -f "$D/lib/msvcrt.lib" "$D/lib/oldnames.lib" "$D/lib/legacy_stdio_definitions.lib"
printf '!<arch>\n' > "$D/lib/oldnames.lib"     # clang-cl objects ask for it; nothing needed
# the libc crate links it on MSVC (printf family; libc comes in through
# psm/stacker under handlebars); nothing calls those.
printf '!<arch>\n' > "$D/lib/legacy_stdio_definitions.lib"
# math functions that ucrtbase.dll exports but mingw's libucrtbase.a leaves to libmingwex
U=$(llvm-nm $MINGW/lib/libucrtbase.a 2>/dev/null | awk '$2=="T"{print $3}' | sort -u)
{ echo "LIBRARY ucrtbase.dll"; echo EXPORTS
  for f in acos acosf asin asinf atan atanf atan2 atan2f ceil ceilf cos cosf cosh coshf exp expf \
    exp2 exp2f expm1 expm1f fabs fabsf floor floorf fmod fmodf frexp ldexp log logf log10 log10f \
    log2 log2f log1p log1pf modf modff pow powf sin sinf sinh sinhf sqrt sqrtf tan tanf tanh tanhf \
    round roundf trunc truncf cbrt cbrtf hypot hypotf fma fmaf lround llround rint nearbyint; do
    echo "$U" | grep -qx "$f" || echo "$f"; done; } > "$D/crt/ucrtmath.def"
llvm-dlltool -m i386:x86-64 -d "$D/crt/ucrtmath.def" -l "$D/lib/ucrtmath.lib"

# --- msvcrt.lib replacement (startup, TLS directory, /GS, __chkstk, ...) ---
HERE=$(cd "$(dirname "$0")" && pwd)
cp "$HERE/crtshim.c" "$HERE/bcryptprimitives.c" "$D/crt/"
CL="$D/bin/clang-cl --target=x86_64-pc-windows-msvc /nologo /GS- /O2 /Zl"
$CL -c "$D/crt/crtshim.c" -Fo"$D/crt/crtshim.obj"
llvm-lib /out:"$D/lib/msvcrt.lib" "$D/crt/crtshim.obj"

# --- Wine prefix + bcryptprimitives.dll stand-in (Wine 8.0 lacks it; std needs ProcessPrng) ---
$CL -c "$D/crt/bcryptprimitives.c" -Fo"$D/crt/bcryptprimitives.obj"
"$D/bin/lld-link" -flavor link /nologo /dll /nodefaultlib /entry:_DllMainCRTStartup /libpath:"$D/lib" \
  /out:"$D/crt/bcryptprimitives.dll" "$D/crt/bcryptprimitives.obj" advapi32.lib
export WINEPREFIX="$D/wineprefix" WINEDEBUG=-all
[ -d "$WINEPREFIX/drive_c/windows/system32" ] || /usr/lib/wine/wine64 wineboot --init >/dev/null 2>&1 || true
cp "$D/crt/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"

cat > "$D/env.sh" <<EOF
export PATH="$D/bin:\$PATH"
export CC_x86_64_pc_windows_msvc=clang-cl CXX_x86_64_pc_windows_msvc=clang-cl
export AR_x86_64_pc_windows_msvc=llvm-lib
export CFLAGS_x86_64_pc_windows_msvc="-I$D/shim /imsvc$MINGW/include /clang:-fgnuc-version=4.2.1 -D_UCRT -D__USE_MINGW_ANSI_STDIO=0"
export CXXFLAGS_x86_64_pc_windows_msvc="\$CFLAGS_x86_64_pc_windows_msvc"
export CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_LINKER=lld-link
export LIB="$D/lib"
export WINEPREFIX="$D/wineprefix" WINEDEBUG=-all
export CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_RUNNER=/usr/lib/wine/wine64
EOF
echo "ok: . $D/env.sh"
