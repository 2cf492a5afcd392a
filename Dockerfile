# syntax=docker/dockerfile:1
#
# snowgate container image: one binary, `snowgate serve` by default.
#
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t snowgate .
#   docker run -p 8080:8080 \
#     -e SNOWGATE_UPSTREAM_URL='https://<provider_host>/api/v2/entities/{id}?select=id,label,location' \
#     -e SNOWGATE_UPSTREAM_TOKEN=<provider_token> snowgate
#
# Snowpark Container Services runs linux/amd64 images only: add
# --platform linux/amd64 when building on another architecture.
#
# Base images: a tag, and a digest slot beside it. A digest never changes
# under you; a tag does, whenever the image is rebuilt for security fixes. The
# digest slots are empty in this file because no digest has been checked
# against the registry here: fill them, for a reproducible build, with the
# digest of the multi-platform index the tag points to today (the "Digest:"
# line these print),
#   docker buildx imagetools inspect golang:1.26-bookworm
#   docker buildx imagetools inspect gcr.io/distroless/cc-debian12:nonroot
#   docker buildx imagetools inspect gcr.io/distroless/static-debian12:nonroot
# either below (GO_IMAGE_DIGEST=sha256:...) or per build, without editing:
#   docker build --build-arg GO_IMAGE_DIGEST=sha256:<digest> \
#                --build-arg RUNTIME_IMAGE_DIGEST=sha256:<digest> .
# The FROM lines add "@" only when a digest is set. Record the digests with
# your releases, and re-resolve them on a schedule rather than forever.
# cmd/snowgate/sqlscripts_test.go checks that a digest, when set, is one.
#
# Why the runtime image has a C library: DuckDB (the embedded warehouse that
# `snowgate backfill` and `snowgate demo` use locally) is C++ linked in through
# cgo, so the binary is dynamically linked against glibc, libstdc++ and
# libgcc_s. A static image (scratch, distroless/static) would fail at start
# with "no such file or directory". distroless/cc-debian12 is distroless/base
# (glibc, libssl, CA certificates, tzdata) plus libstdc++ and libgcc_s, with
# no shell or package manager. The build stage is Debian 12 (bookworm) too, so the binary needs
# no newer glibc or libstdc++ symbols than the runtime image has; keep the two
# Debian releases equal when you change either tag.

ARG GO_IMAGE=golang:1.26-bookworm
ARG GO_IMAGE_DIGEST=
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG RUNTIME_IMAGE_DIGEST=
ARG SLIM_RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot
ARG SLIM_RUNTIME_IMAGE_DIGEST=

# ---------------------------------------------------------------------------
# Build: the same script CI runs (scripts/build.sh), so a green CI proves this
# step compiles. Modules come through Go's default module proxy. go.mod names
# the minimum Go release; an image with an older Go stops with an error
# saying so (the official Go images do not fetch newer toolchains), so move
# the tag or digest forward together with go.mod.
# ---------------------------------------------------------------------------
FROM ${GO_IMAGE}${GO_IMAGE_DIGEST:+@}${GO_IMAGE_DIGEST} AS build
WORKDIR /src
# Build cache in a fixed place, mounted as a BuildKit cache below so rebuilds
# recompile only what changed (DuckDB's cgo part takes the longest).
ENV GOCACHE=/cache/go-build

# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
# The build context has no .git (see .dockerignore), so pass the version in.
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/cache/go-build \
    OUT=/out/snowgate VERSION="${VERSION}" bash scripts/build.sh

# Fail the build, not the container start, if the binary ever needs a shared
# library the runtime image does not have (for example after a dependency
# starts linking another C library).
RUN ldd /out/snowgate | tee /out/ldd.txt \
 && if grep -q 'not found' /out/ldd.txt \
    || grep -qvE '^[[:space:]]*(linux-vdso\.so\.1|libstdc\+\+\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libc\.so\.6|libdl\.so\.2|libpthread\.so\.0|/lib64/ld-linux-x86-64\.so\.2|/lib/ld-linux-aarch64\.so\.1)[[:space:]]' /out/ldd.txt; \
    then echo "snowgate links a library distroless/cc does not ship; see above" >&2; exit 1; fi

# The serve-only binary (no DuckDB, gosnowflake or plotting; static) for the
# slim image and AWS Lambda: `docker build --target slim -t snowgate:slim .`
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/cache/go-build \
    OUT=/out/snowgate-slim TAGS=slim,lambda.norpc CGO=0 VERSION="${VERSION}" bash scripts/build.sh

# ---------------------------------------------------------------------------
# Slim: the serve-only binary on distroless/static (CA certificates, tzdata;
# no libc). It serves Snowflake, BigQuery, REST and, as a Lambda container
# image, Redshift; backfill, sql, demo and bench are not in it.
# ---------------------------------------------------------------------------
FROM ${SLIM_RUNTIME_IMAGE}${SLIM_RUNTIME_IMAGE_DIGEST:+@}${SLIM_RUNTIME_IMAGE_DIGEST} AS slim
COPY --from=build /out/snowgate-slim /usr/local/bin/snowgate
USER 65532:65532
ENV SNOWGATE_LISTEN=:8080
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["snowgate", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["snowgate"]
CMD ["serve"]

# ---------------------------------------------------------------------------
# Runtime: the binary alone on distroless/cc (glibc, libstdc++, CA
# certificates, tzdata; no shell).
# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}${RUNTIME_IMAGE_DIGEST:+@}${RUNTIME_IMAGE_DIGEST}

ARG VERSION=dev
LABEL org.opencontainers.image.title="snowgate" \
      org.opencontainers.image.description="Snowflake external-function service and backfill loader for a rate-limited location API" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=build /out/snowgate /usr/local/bin/snowgate

# distroless's nonroot user, by number so that platforms which check
# "run as non-root" (Kubernetes runAsNonRoot) can verify it without
# /etc/passwd. Its home directory is writable, for `snowgate demo`'s DuckDB
# file.
USER 65532:65532
WORKDIR /home/nonroot

# The port SPCS endpoints, Cloud Run and most container platforms are told to
# use. Every flag has an environment twin; SNOWGATE_LISTEN is --listen.
ENV SNOWGATE_LISTEN=:8080
EXPOSE 8080

# No shell or curl in the image: the binary checks its own /healthz on
# SNOWGATE_LISTEN. (SPCS ignores this and uses the service specification's
# readinessProbe on /readyz instead.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["snowgate", "healthcheck"]

# snowgate drains on SIGTERM: readiness goes false, in-flight and async
# batches finish (up to --shutdown-timeout), then it exits 0. Give the
# platform's stop grace period at least that long.
STOPSIGNAL SIGTERM

ENTRYPOINT ["snowgate"]
CMD ["serve"]
