# syntax=docker/dockerfile:1
#
# okeguard: the Slack bot (`okeguard serve`, the default) and the CLI.
#
#   docker build -t okeguard:0.1.0 .
#   docker run --rm okeguard:0.1.0 scan --demo
#
# Runs as 10001:10001 on a read-only root filesystem. Mount writable volumes (emptyDir in
# Kubernetes, see deploy/kustomize/base/deployment.yaml) at:
#   /tmp               scratch; matplotlib's cache (MPLCONFIGDIR=/tmp/matplotlib)
#   /var/lib/okeguard  HOME; XDG_STATE_HOME=/var/lib/okeguard/state holds the SQLite database
#                      when no OKEGUARD_DATABASE_URL (PostgreSQL) is configured
# Ports: 8081 /healthz, /readyz, /metrics (always); 3000 the Slack Events API (`serve --http
# 3000`; Socket Mode, the default, needs no inbound port). No HEALTHCHECK: Kubernetes ignores
# it and uses the probes on 8081.
#
# Base image: pinned by version here. Pin it by digest too when publishing (the machine that
# wrote this could not reach a registry):
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm --format '{{.Manifest.Digest}}'
# and write FROM python:3.11.14-slim-bookworm@sha256:<digest> in both stages.

# --- builder: the venv at /opt/okeguard, built, pruned and verified by scripts/build_image.py
# (the same script the tests run, so the image and the tests cannot drift) -----------------
FROM python:3.11.14-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY pyproject.toml README.md ./
COPY examples/demo/ ./examples/demo/
COPY okeguard/ ./okeguard/
COPY scripts/build_image.py scripts/prune_oci.py ./scripts/

# Builds okeguard's wheel, installs it with its dependencies (wheels only: no compiler), prunes
# the OCI SDK to the services okeguard uses, removes pip/setuptools/wheel from the venv, then
# runs `okeguard --version`, `checks`, `scan --demo` and imports every module in the result.
RUN python scripts/build_image.py --target /opt/okeguard

# --- runtime ----------------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="okeguard" \
      org.opencontainers.image.description="Keeps Oracle Kubernetes Engine (OKE) clusters on Oracle's OKE security best practices: scans, Slack approvals, audited fixes." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-bookworm" \
      org.opencontainers.image.documentation="README.md"

# Nothing can install software at run time: the interpreter's pip, setuptools, wheel and
# ensurepip go, and so do apt and dpkg (their database in /var/lib/dpkg stays, for image
# scanners). The base image has no compiler, curl or wget; apt lists are emptied.
RUN rm -rf /usr/local/bin/pip* \
           /usr/local/lib/python3.11/ensurepip \
           /usr/local/lib/python3.11/site-packages/pip \
           /usr/local/lib/python3.11/site-packages/pip-* \
           /usr/local/lib/python3.11/site-packages/setuptools \
           /usr/local/lib/python3.11/site-packages/setuptools-* \
           /usr/local/lib/python3.11/site-packages/_distutils_hack \
           /usr/local/lib/python3.11/site-packages/distutils-precedence.pth \
           /usr/local/lib/python3.11/site-packages/pkg_resources \
           /usr/local/lib/python3.11/site-packages/wheel \
           /usr/local/lib/python3.11/site-packages/wheel-* \
           /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old \
    && groupadd --system --gid 10001 okeguard \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/okeguard \
               --no-create-home --shell /usr/sbin/nologin okeguard \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/okeguard /var/lib/okeguard/state \
    && rm -f /usr/bin/apt /usr/bin/apt-* /usr/bin/dpkg /usr/bin/dpkg-*

COPY --from=builder /opt/okeguard /opt/okeguard

ENV PATH=/opt/okeguard/bin:$PATH \
    HOME=/var/lib/okeguard \
    XDG_STATE_HOME=/var/lib/okeguard/state \
    MPLCONFIGDIR=/tmp/matplotlib \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /var/lib/okeguard
USER 10001:10001
EXPOSE 3000 8081

ENTRYPOINT ["okeguard"]
CMD ["serve"]
