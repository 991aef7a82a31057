#!/usr/bin/env bash
# Everything a fresh Linux machine with a Docker engine needs, then one night on tasks/quickstart
# with the offline `mutate` agent (no API key). Safe to run again: each step is skipped when done.
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'

if ! docker image inspect overnight/python:2 >/dev/null 2>&1; then
    if ! command -v debootstrap >/dev/null 2>&1; then
        as_root apt-get update -qq
        as_root apt-get install -y -qq debootstrap >/dev/null
    fi
    as_root .venv/bin/overnight image build
fi

.venv/bin/overnight run tasks/quickstart --max-experiments "${MAX_EXPERIMENTS:-10}" "$@"
