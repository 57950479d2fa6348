# The dr-agent image: the agent, the restic pinned in go.mod (a tool line),
# and nsenter for host actions (systemd through nsenter -t 1). Multi-arch:
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=v0.1.0 -t IMAGE .
# The lab builds an image of the same layout without Docker (hack/lab image,
# make image); this file is for registries and is not built in CI here (no
# Docker on the CI machines).
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS TARGETARCH VERSION=v0.0.0-dev COMMIT=
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH
RUN go build -trimpath -ldflags "-s -w \
      -X github.com/kubectl-dr/kubectl-dr/agent/buildinfo.version=$VERSION \
      -X github.com/kubectl-dr/kubectl-dr/agent/buildinfo.commit=$COMMIT" \
      -o /out/dr-agent ./cmd/dr-agent \
 && go build -trimpath -ldflags "-s -w" -o /out/restic github.com/restic/restic/cmd/restic

# util-linux (nsenter) is part of Debian's base. The agent runs as root: it
# reads and restores k3s's data and volumes on the host, which belong to
# root and to the workloads' users.
FROM debian:bookworm-slim
COPY --from=build /out/dr-agent /out/restic /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/dr-agent"]
CMD ["serve", "--config", "/etc/dr-agent/config/config.yaml"]
