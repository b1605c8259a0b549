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
