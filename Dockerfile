# The appliance image: Debian 12 with HAProxy, stunnel and keepalived from Debian's packages.
FROM debian:12-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv haproxy stunnel4 keepalived iproute2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/lbadmin
COPY requirements.lock ./
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir -r requirements.lock
ENV PATH="/opt/venv/bin:$PATH" PYTHONUNBUFFERED=1
COPY manage.py ./
COPY appliance ./appliance
COPY lbadmin ./lbadmin
COPY templates ./templates
COPY static ./static

EXPOSE 9443
CMD ["python", "manage.py", "serve"]
