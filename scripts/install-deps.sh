#!/usr/bin/env bash
# Installs every Debian package gradwatch needs to build, test and run.
# Idempotent: packages already present are skipped by apt.
set -euo pipefail

packages=(
  # toolchain
  cmake ninja-build g++ pkg-config clang-format git ca-certificates
  # C++ libraries (Debian's oneDNN CMake config requires OpenCL headers)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libdnnl-dev ocl-icd-opencl-dev prometheus-cpp-dev libsqlite3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # test helpers
  python3 python3-grpcio python3-yaml procps prometheus prometheus-alertmanager
  openssl  # the TLS tests make a throwaway CA
)
# kubectl for the deploy/k8s test, unless one is installed already (another
# package may own /usr/bin/kubectl).
command -v kubectl >/dev/null || packages+=(kubernetes-client)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
