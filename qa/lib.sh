# Shared by the qa/ scripts: a throwaway site (PKI + ccnqd configuration) and a running
# ccnqd to point tools at. Source it; it defines functions only.

# qa_site DIR PORT: make a site in DIR (CA, admin/reader certificates, a server
# certificate for localhost, an operator token) and a ccnqd.toml listening on PORT.
qa_site() {
    local dir=$1 port=$2 ctl=${CCNQCTL:-target/debug/ccnqctl}
    rm -rf "$dir" && mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd)
    "$ctl" pki init "$dir/pki" --server-name localhost --server-name 127.0.0.1 >/dev/null
    "$ctl" pki issue "$dir/pki" --name reader --role reader >/dev/null
    "$ctl" token new --name qa --role operator >"$dir/token" 2>"$dir/token.toml"
    cat >"$dir/ccnqd.toml" <<TOML
host = "$(hostname -f 2>/dev/null || hostname)"
data_dir = "$dir/data"

[api]
listen = ["127.0.0.1:$port"]
admin_ca = "$dir/pki/ca.pem"
cert = "$dir/pki/server.crt"
key = "$dir/pki/server.key"

$(grep -v '^#' "$dir/token.toml")
TOML
}

# qa_start_ccnqd DIR: start ccnqd on DIR's configuration in the background, wait until it
# answers, and set CCNQD_PID. Its log goes to DIR/ccnqd.log.
qa_start_ccnqd() {
    local dir=$1 daemon=${CCNQD:-target/debug/ccnqd}
    "$daemon" --config "$dir/ccnqd.toml" >"$dir/ccnqd.log" 2>&1 &
    CCNQD_PID=$!
    local port
    port=$(sed -n 's/^listen = \["127.0.0.1:\([0-9]*\)"\]/\1/p' "$dir/ccnqd.toml")
    for _ in $(seq 100); do
        if curl -sf --cacert "$dir/pki/ca.pem" "https://localhost:$port/v1/health" >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$CCNQD_PID" 2>/dev/null; then
            cat "$dir/ccnqd.log" >&2
            echo "ccnqd exited during start-up" >&2
            return 1
        fi
        sleep 0.1
    done
    cat "$dir/ccnqd.log" >&2
    echo "ccnqd did not answer within 10 s" >&2
    return 1
}

# qa_free_port [udp]: a TCP (or UDP) port nobody listens on right now.
qa_free_port() {
    python3 -c 'import socket, sys
kind = socket.SOCK_DGRAM if sys.argv[1:] == ["udp"] else socket.SOCK_STREAM
s = socket.socket(socket.AF_INET, kind); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' "$@"
}

# qa_port_is_free tcp|udp PORT: true if PORT can be bound on 127.0.0.1 right now.
qa_port_is_free() {
    python3 -c 'import socket, sys
kind = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
s = socket.socket(socket.AF_INET, kind)
try:
    s.bind(("127.0.0.1", int(sys.argv[2])))
except OSError:
    sys.exit(1)' "$1" "$2"
}

# qa_median FILE: the median of the numbers in FILE, one per line.
qa_median() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# qa_keepalive_ns ROUNDS URL CURL-ARGS...: POSTs to URL ROUNDS+1 times over one kept-alive
# connection, as a management system or a loop of API calls does, and prints each
# request's time (sent to answer received) in ns, one per line; the first, which pays
# the TLS handshake, is left out. CURL-ARGS carry the credentials.
qa_keepalive_ns() {
    local rounds=$1 url=$2 urls=() _
    shift 2
    # (-o once per URL: curl applies each -o to one URL only.)
    for _ in $(seq $((rounds + 1))); do urls+=(-o /dev/null "$url"); done
    curl -sSf -X POST -w '%{time_total}\n' "$@" "${urls[@]}" | tail -n +2 |
        awk '{printf "%.0f\n", $1 * 1000000000}'
}

# qa_central_couch DIR FQDN: the central database of the VM harnesses, a real CouchDB
# 3.4.3 on this machine's loopback (qa/couchdb/couchdb-server), with the `provisioning`
# database and FQDN's own user there: a member of the database, not an admin, as a host
# logs in on a real site. Sets QA_COUCH_PID (kill it to stop CouchDB), QA_COUCH_URL,
# QA_COUCH_PORT, QA_COUCH_ADMIN, QA_COUCH_PASSWORD and QA_HOST_PASSWORD. Logs in DIR.
qa_central_couch() {
    local dir=$1 fqdn=$2 root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    QA_COUCH_PID=$("$root/qa/couchdb/couchdb-server" "$dir/couch.line" vm-central 2>"$dir/couch.err") || {
        echo "qa_central_couch: CouchDB did not start: $(tail -3 "$dir/couch.err" | tr '\n' ' ')" >&2
        return 1
    }
    read -r QA_COUCH_URL QA_COUCH_ADMIN QA_COUCH_PASSWORD <"$dir/couch.line"
    QA_COUCH_PORT=${QA_COUCH_URL##*:}
    QA_HOST_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    qa_central -X PUT "$QA_COUCH_URL/provisioning" >"$dir/setup.log" &&
    qa_central -X PUT "$QA_COUCH_URL/_users/org.couchdb.user:$fqdn" \
        -d "{\"name\": \"$fqdn\", \"password\": \"$QA_HOST_PASSWORD\", \"roles\": [\"hosts\"], \"type\": \"user\"}" >>"$dir/setup.log" &&
    qa_central -X PUT "$QA_COUCH_URL/provisioning/_security" \
        -d '{"admins": {"names": [], "roles": []}, "members": {"names": [], "roles": ["hosts"]}}' >>"$dir/setup.log" ||
        { echo "qa_central_couch: setting up the database failed: $(cat "$dir/setup.log")" >&2; return 1; }
}

# qa_central CURL-ARGS...: curl against the central CouchDB as its admin, JSON bodies.
qa_central() {
    curl -sS --max-time 20 -u "$QA_COUCH_ADMIN:$QA_COUCH_PASSWORD" -H 'Content-Type: application/json' "$@"
}

# qa_host_doc FQDN VERSION: the QA appliance's host document (stdout): one profile `qa`
# on the guest's address under qemu's user network (10.0.2.15:5200, egress 15200),
# handing calls to the QA image's answering context, at the image's own version. Its
# ingress_acl admits only 192.0.2.1: the callers the harnesses forward (seen as 10.0.2.2)
# are refused until a change lists them.
qa_host_doc() {
    jq -n --arg fqdn "$1" --arg v "$2" '{
        _id: ("host:" + $fqdn), type: "host", host: $fqdn, image: {version: $v},
        interfaces: {primary: {ipv4: "10.0.2.15"}}, sip_domain_name: "qa.example.net",
        sip_profiles: {qa: {ingress_sip_ip: "10.0.2.15", ingress_sip_port: 5200,
                            ingress_acl: ["192.0.2.1/32"], handler: {context: "qa-answer"}}}}'
}

# qa_nginx DIR ROOT: a real nginx (Debian's nginx-light) serving ROOT on a free port of
# this machine's loopback (10.0.2.2:PORT from a guest), in the foreground of its own
# process, logs and state in DIR: the VM harnesses' update repository. Sets
# QA_NGINX_PID and QA_NGINX_PORT. Symbolic links under ROOT are followed, so a harness
# can swap what is served by re-pointing one.
qa_nginx() {
    local dir=$1 root=$2 _
    mkdir -p "$dir"
    QA_NGINX_PORT=$(qa_free_port)
    cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 64; }
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    default_type application/octet-stream;
    server { listen 127.0.0.1:$QA_NGINX_PORT; root $root; }
}
CONF
    /usr/sbin/nginx -c "$dir/nginx.conf" -p "$dir" </dev/null >/dev/null 2>>"$dir/error.log" &
    QA_NGINX_PID=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$QA_NGINX_PORT/" && return 0
        kill -0 "$QA_NGINX_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "qa_nginx: not serving on $QA_NGINX_PORT: $(tail -3 "$dir/error.log" | tr '\n' ' ')" >&2
    return 1
}
