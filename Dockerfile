# syntax=docker/dockerfile:1
# trigger-router image for machines with a container engine (docker build / buildah bud).
# Where there is none (this project's machines and CI), deploy/image/build.py makes the image of the
# final stage below from a Debian root (mmdebstrap) instead; keep the two in step: same base
# suite, same prefix, user, state volume, environment, labels, entrypoint and command.
#
#   docker build --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg SOURCE=<repository URL> -t trigger-router:0.1.0 .
#
# The root filesystem can be read-only: all state (the embedded JetStream store, the endpoint and
# lock files) goes to /var/lib/trigger-router, a volume; Python writes no bytecode at run time
# (it is compiled at install time).

ARG DEBIAN=bookworm

FROM debian:${DEBIAN}-slim AS build
RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
# The same interpreter path as the final stage, so the venv's python3 link stays valid there.
RUN python3 -m venv /opt/trigger-router
COPY pyproject.toml README.md /src/
COPY router /src/router
COPY handlers /src/handlers
RUN /opt/trigger-router/bin/pip install --no-cache-dir /src \
 && /opt/trigger-router/bin/pip uninstall --yes pip setuptools

FROM debian:${DEBIAN}-slim
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 trigger-router \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/trigger-router \
      --no-create-home --shell /usr/sbin/nologin trigger-router \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/trigger-router
COPY --from=build /opt/trigger-router /opt/trigger-router
ENV PATH=/opt/trigger-router/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/trigger-router \
    TRIGGER_ROUTER_STATE_DIR=/var/lib/trigger-router \
    TRIGGER_ROUTER_HTTP__HOST=0.0.0.0
LABEL org.opencontainers.image.source=$SOURCE \
      org.opencontainers.image.revision=$REVISION \
      org.opencontainers.image.version=$VERSION \
      org.opencontainers.image.title=trigger-router \
      org.opencontainers.image.licenses=Apache-2.0
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/trigger-router
VOLUME /var/lib/trigger-router
EXPOSE 8080
ENTRYPOINT ["/opt/trigger-router/bin/trigger-router"]
CMD ["serve"]
