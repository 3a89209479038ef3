# gradwatch-server and the gradwatch CLI in one small runtime image.
# docs/deploy.md describes the image, its flags, ports and volume.
#
#   docker build -t gradwatch .        (podman: add --format docker so that
#                                       the HEALTHCHECK is kept)

# --- builder: the -dev packages of scripts/install-deps.sh, a Release build
# of the two binaries, and the list of Debian packages they load at run time.
FROM debian:bookworm AS builder
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN bash scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY CMakeLists.txt ./
COPY cmake cmake
COPY proto proto
COPY engine engine
COPY server server
COPY client client
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DGRADWATCH_BUILD_TESTS=OFF -DGRADWATCH_BUILD_BENCH=OFF \
 && cmake --build build --target gradwatch-server gradwatch \
 && mkdir -p /out \
 && strip -o /out/gradwatch-server build/server/gradwatch-server \
 && strip -o /out/gradwatch build/client/gradwatch
# The shared libraries the binaries load, mapped to their Debian packages.
# dpkg knows some libraries only by their pre-usr-merge /lib path, hence the
# second lookup.
RUN set -eu; \
    for lib in $(ldd /out/gradwatch-server /out/gradwatch | awk '/=> \//{print $3}' | sort -u); do \
      real=$(readlink -f "$lib"); \
      dpkg -S "$lib" 2>/dev/null || dpkg -S "$real" 2>/dev/null \
        || dpkg -S "${real#/usr}" 2>/dev/null \
        || { echo "no Debian package owns $lib" >&2; exit 1; }; \
    done | cut -d: -f1 | sort -u > /out/runtime-packages; \
    cat /out/runtime-packages

# --- runtime: the shared libraries and the two binaries, run as a non-root
# user.
FROM debian:bookworm-slim
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="gradwatch" \
      org.opencontainers.image.description="gRPC training service for MLPs that streams per-layer gradient health and exports it to Prometheus" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim" \
      org.opencontainers.image.documentation="docs/deploy.md"
COPY --from=builder /out/runtime-packages /usr/share/gradwatch/runtime-packages
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      $(cat /usr/share/gradwatch/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && groupadd --system --gid 10001 gradwatch \
 && useradd --system --uid 10001 --gid gradwatch --home-dir /var/lib/gradwatch \
      --no-create-home --shell /usr/sbin/nologin gradwatch \
 && mkdir -p /var/lib/gradwatch \
 && chown gradwatch:gradwatch /var/lib/gradwatch
COPY --from=builder /out/gradwatch-server /out/gradwatch /usr/local/bin/
COPY examples/*.json /usr/share/gradwatch/examples/
USER 10001:10001
WORKDIR /var/lib/gradwatch
VOLUME /var/lib/gradwatch
# gRPC API; Prometheus /metrics.
EXPOSE 50051 9464
# The CLI inside the container talks to this server by default.
ENV GRADWATCH_SERVER=127.0.0.1:50051
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["gradwatch", "health", "--server", "127.0.0.1:50051", "--timeout", "3"]
# Arguments given to `docker run IMAGE ...` are appended: a later flag wins.
ENTRYPOINT ["gradwatch-server", "--listen=0.0.0.0:50051", \
            "--metrics_listen=0.0.0.0:9464", "--data_dir=/var/lib/gradwatch"]
