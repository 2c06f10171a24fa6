# The `agent` command as an image, for CI systems that run steps in containers. It
# talks to the Docker engine through a mounted socket or DOCKER_HOST:
#   docker build -t agent .
#   docker run --rm -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" -v "$PWD:/work" \
#     agent run --locked specs/*.toml
# It runs as the unprivileged user 10001; `--group-add` gives it the socket's group.
#
# Stages, in the order the classic builder needs for `--target`:
#   runtime-base  the small runtime: CA certificates and the user
#   prebuilt      a binary built elsewhere (a release, `cargo build`):
#                 docker build --target prebuilt --build-arg AGENT_BINARY=target/release/agent .
#   build         compiles agent (the default path, with a Rust image)
#   runtime       the default image: runtime-base with the compiled binary
ARG RUST_IMAGE=rust:1.85-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUNTIME_IMAGE} AS runtime-base
# false: the runtime image already has CA certificates, or has no package mirror.
ARG INSTALL_CA_CERTIFICATES=true
RUN if [ "$INSTALL_CA_CERTIFICATES" = true ]; then \
      apt-get update && apt-get install -y --no-install-recommends ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && echo 'agent:x:10001:10001:agent:/home/agent:/usr/sbin/nologin' >>/etc/passwd \
    && echo 'agent:x:10001:' >>/etc/group \
    && mkdir -p /home/agent /work && chown 10001:10001 /home/agent /work
ENV HOME=/home/agent
WORKDIR /work
USER 10001:10001
ENTRYPOINT ["agent"]
CMD ["--help"]

FROM runtime-base AS prebuilt
ARG AGENT_BINARY=target/release/agent
COPY ${AGENT_BINARY} /usr/local/bin/agent

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p agent-cli \
    && install -m 0755 target/release/agent /agent

FROM runtime-base AS runtime
COPY --from=build /agent /usr/local/bin/agent
