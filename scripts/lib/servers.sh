# Shared by the scripts that start a server of their own (hydra.sh, seaweedfs.sh,
# centrifugo.sh): sourced, not run. The caller defines `log` and `die`.

random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# N distinct ports in 20000-32767 on which nothing listens on 127.0.0.1.
free_ports() {
    local n=$1 p tries=0
    local -a got=()
    while ((${#got[@]} < n)); do
        ((++tries <= 1000)) || die "no $n free ports found in 20000-32767"
        p=$((20000 + RANDOM % 12768))
        [[ " ${got[*]} " == *" $p "* ]] && continue
        port_in_use "$p" && continue
        got+=("$p")
    done
    printf '%s\n' "${got[*]}"
}

# terminate PID: SIGTERM and up to 10 s for it to end, then SIGKILL and up to 5 s more.
terminate() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    log "pid $pid still running after 10 s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 25); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
}
