#!/bin/sh
# Renders KeyLM's nginx configuration before nginx starts (run from /docker-entrypoint.d/).
# Without KEYLM_DOMAIN: plain HTTP on port 8000. With it: HTTPS on 443 from the certificate in
# /etc/keylm/tls (docs/operations.md shows how the certbot companion fetches and renews it).
set -eu

: "${KEYLM_GATEWAY:=gateway:8000}"
: "${KEYLM_EDGE_CONN_PER_IP:=64}"
: "${KEYLM_EDGE_PORT:=8000}"
: "${KEYLM_DOMAIN:=}"
KEYLM_EDGE_CONF_DIR=/etc/nginx/keylm
KEYLM_TLS_DIR=/etc/keylm/tls
export KEYLM_GATEWAY KEYLM_EDGE_CONN_PER_IP KEYLM_EDGE_PORT KEYLM_DOMAIN KEYLM_EDGE_CONF_DIR KEYLM_TLS_DIR

names='${KEYLM_GATEWAY} ${KEYLM_EDGE_CONN_PER_IP} ${KEYLM_EDGE_PORT} ${KEYLM_DOMAIN} ${KEYLM_EDGE_CONF_DIR} ${KEYLM_TLS_DIR}'
render() { envsubst "$names" < "/etc/keylm/edge/$1.template" > "$2"; }

mkdir -p "$KEYLM_EDGE_CONF_DIR"
rm -f /etc/nginx/conf.d/default.conf
render keylm.conf /etc/nginx/conf.d/00-keylm.conf
render keylm-site.conf "$KEYLM_EDGE_CONF_DIR/keylm-site.conf"

if [ -z "$KEYLM_DOMAIN" ]; then
    render http.conf /etc/nginx/conf.d/10-keylm-http.conf
elif [ -f "$KEYLM_TLS_DIR/live/$KEYLM_DOMAIN/fullchain.pem" ]; then
    render https.conf /etc/nginx/conf.d/10-keylm-https.conf
    # Pick up renewed certificates: reload twice a day (a reload keeps open streams running).
    (while sleep 43200; do nginx -s reload; done) &
else
    # No certificate yet: answer the ACME challenge on port 80 so the companion can fetch one,
    # and nothing else. `docker compose restart edge` once it is there.
    echo "keylm edge: no certificate for $KEYLM_DOMAIN yet; serving only the ACME challenge" >&2
    cat > /etc/nginx/conf.d/10-keylm-acme.conf <<CONF
server {
    listen 80;
    server_name $KEYLM_DOMAIN;
    location ^~ /.well-known/acme-challenge/ { root /var/www/acme; }
    location / { return 503; }
}
CONF
fi
