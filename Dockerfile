# One image for every firewatch service: ingest, alerting, api, the dashboards
# export, the metrics relay, the simulator and the `device` commands.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY contract contract
COPY ingest ingest
COPY alerting alerting
COPY notify notify
COPY api api
COPY dashboards dashboards
COPY simulators simulators
COPY bench bench
COPY supervision supervision
COPY gateway gateway
COPY firewatch firewatch
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres]"

FROM python:3.11-slim
# The monthly PDF reports (supervision/reports.py) are set in Debian's CJK font.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*
# uid/gid 1883 is the `mosquitto` user of the eclipse-mosquitto image: the two
# containers share the broker's password file, which `firewatch device add` writes.
RUN groupadd --gid 1883 firewatch \
    && useradd --uid 1883 --gid 1883 --no-create-home --home-dir /data firewatch \
    && mkdir -p /data /dashboards /mosquitto/auth \
    && chown firewatch:firewatch /data /dashboards /mosquitto/auth
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "firewatch[postgres]" && rm -rf /wheels
USER firewatch
WORKDIR /data
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["firewatch"]
CMD ["--help"]
