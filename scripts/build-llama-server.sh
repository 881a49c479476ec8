#!/usr/bin/env bash
# Build llama.cpp's `llama-server` (and `llama-bench`, the reference `chatbot bench generate`
# compares against) into the virtual environment's bin/, from the llama.cpp sources vendored in
# llama-cpp-python's source release on PyPI: the registry is the one source this project may use.
#
#   scripts/build-llama-server.sh .venv/bin/python
#
# Needs a C++ compiler; cmake comes from PyPI when the system has none. Without a compiler it
# says so and exits 0: the product then generates with transformers (slower on a CPU). Built for
# this machine's CPU (GGML_NATIVE), like any local build: rebuild when moving to another CPU.
# KESTREL_NO_LLAMA_CPP=1 skips the build.
set -euo pipefail

PYTHON=${1:-.venv/bin/python}
VERSION=$(sed -n 's/^llama-cpp-python==//p' constraints.txt)
BIN=$(dirname "$PYTHON")
WORK=${KESTREL_BUILD_DIR:-var/build}/llama.cpp-$VERSION
STAMP="$BIN/.llama-server-$VERSION"

if [[ "${KESTREL_NO_LLAMA_CPP:-0}" == "1" ]]; then
    echo "llama-server: skipped (KESTREL_NO_LLAMA_CPP=1); generation uses transformers"
    exit 0
fi
if [[ -f "$STAMP" && -x "$BIN/llama-server" ]]; then
    exit 0
fi
if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
    echo "llama-server: not built (no C++ compiler; apt-get install g++); generation uses transformers"
    exit 0
fi
CMAKE=$(command -v cmake || true)
if [[ -z "$CMAKE" ]]; then
    "$PYTHON" -m pip install -q cmake
    CMAKE="$BIN/cmake"
fi

started=$SECONDS
echo "llama-server: building llama.cpp from llama-cpp-python $VERSION (once; several minutes on 2 cores)"
mkdir -p "$WORK"
if [[ ! -d "$WORK/src" ]]; then
    "$PYTHON" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$WORK"
    mkdir -p "$WORK/src"
    tar -xzf "$WORK"/llama_cpp_python-"$VERSION".tar.gz -C "$WORK/src" --strip-components=3 \
        "llama_cpp_python-$VERSION/vendor/llama.cpp"
fi
# No AMX: ggml's AMX kernels crash (SIGSEGV in ggml_backend_amx_mul_mat) on the virtual machines
# this was built on, whose CPUs advertise AMX; AVX-512/AVX2 kernels are used instead.
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
if ! echo 'int main(){}' | c++ $NO_AMX -x c++ -o /dev/null - 2>/dev/null; then
    NO_AMX=""  # a compiler too old to know AMX cannot emit it either
fi
"$CMAKE" -S "$WORK/src" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DGGML_NATIVE=ON "-DCMAKE_C_FLAGS=$NO_AMX" "-DCMAKE_CXX_FLAGS=$NO_AMX" > "$WORK/cmake.log"
if ! "$CMAKE" --build "$WORK/build" --target llama-server llama-bench -j "$(nproc)" > "$WORK/build.log" 2>&1; then
    tail -20 "$WORK/build.log"
    echo "llama-server: build failed (log: $WORK/build.log); generation uses transformers"
    exit 0
fi
install -m 755 "$WORK/build/bin/llama-server" "$WORK/build/bin/llama-bench" "$BIN/"
rm -f "$BIN"/.llama-server-*
touch "$STAMP"
echo "llama-server: built in $((SECONDS - started)) s -> $BIN/llama-server"
