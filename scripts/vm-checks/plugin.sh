#!/usr/bin/env bash
# shellcheck disable=SC2154 # $state and vm, on_all, inside come from scripts/vm-test.sh
# Docker network plugin checks for the VM suite (issue 17): `docker run --network red|pods` on the
# VMs' own dockerd (Docker 20.10 with its defaults), served by each VM's ovsmesh daemon through
# ovsmesh.socket. Source this file from scripts/vm-test.sh, which defines `vm HOST SCRIPT`, `on_all`,
# `inside` (in VM scripts) and `$state`. Checks print what they saw and return 0 or 1.
#
# The topology (topology/vagrant.toml): red (VLAN 200, 192.0.2.0/24) with pools node1 .64/27 and
# node2 .96/27, and --net=none containers red1 .2 (node1), red2 .3 (node2), red3 .1 (node3); pods
# (routed): node1 203.0.113.128/27 (gateway .129, pod1 .140), node2 .160/27, node3 .192/27.

PL_IMAGE=ovsmesh-busybox:latest

# The daemon made the Docker networks of every topology network a VM takes part in.
pl_networks() {
    on_all "for _ in \$(seq 60); do
        got=\$(docker network ls --filter driver=ovsmesh --format '{{.Name}}' | sort | tr '\n' ' ')
        [ \"\$got\" = 'blue pods red ' ] && { echo \"\$got\"; exit 0; }
        sleep 1
    done; echo \"networks: \$got\"; docker network ls; exit 1"
}

# A pooled address: the lowest of node2's pool, reached from red1 on node1 at once.
pl_pooled() {
    vm node2 "docker run -d --name pool1 --network red $PL_IMAGE sleep infinity >/dev/null &&
        docker exec pool1 ip -4 -o addr show eth0 | grep -q ' 192.0.2.96/24 '" || return 1
    vm node1 "inside red1 ping -c 1 -W 2 192.0.2.96"
}

# Refused addresses: Docker prints why.
pl_refused() {
    local out
    out=$(vm node1 "docker run --rm --network red --ip 192.0.2.3 $PL_IMAGE true 2>&1; echo exit \$?")
    echo "$out"
    grep -q "192.0.2.3 belongs to container red2 on host node2" <<<"$out" || return 1
    grep -q "exit 125" <<<"$out" || return 1
    out=$(vm node1 "docker run --rm --network red --ip 192.0.2.100 $PL_IMAGE true 2>&1")
    echo "$out"
    grep -q "192.0.2.100 is in host node2's pool 192.0.2.96/27 of network red" <<<"$out"
}

# The race test: OVSMESH_VM_RACE fresh containers in a row (default 15; the issue's proof is a run
# with 50), each printing its address and reaching red2 on node2 with its first packet. Figures
# (also to $state/plugin-figures): the start latency (median of the first 20 runs), the plugin's
# mean answer time per call and the daemon's reconciles meanwhile (node1's metrics); with
# OVSMESH_VM_LATENCY=1 (at least 20 runs then) next to 20 runs on Docker's default bridge (about
# 4 minutes more under TCG, so not in CI).
pl_race() {
    local runs=${OVSMESH_VM_RACE:-15} bridge=0 out
    if [ "${OVSMESH_VM_LATENCY:-0}" = 1 ]; then
        bridge=20
        [ "$runs" -ge 20 ] || runs=20
    fi
    # shellcheck disable=SC2016 # expanded in the VM
    out=$(vm node1 '
        median() { sort -n | awk "{ a[NR] = \$1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }"; }
        metrics() { (exec 5<>/dev/tcp/127.0.0.1/9475 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&5 && cat <&5) || true; }
        reconciles() { awk "/^ovsmesh_reconciles_total/ { n += \$2 } END { print n + 0 }" "$1"; }
        ok=0; : > /tmp/red.times; : > /tmp/bridge.times
        metrics > /tmp/before.metrics
        for i in $(seq '"$runs"'); do
            t0=$(date +%s.%N)
            got=$(docker run --rm --network red --ip 192.0.2.70 '"$PL_IMAGE"' sh -c "ip -4 -o addr show; ping -c1 -W2 192.0.2.3" 2>&1)
            t1=$(date +%s.%N)
            [ "$i" -le 20 ] && awk "BEGIN { print $t1 - $t0 }" >> /tmp/red.times
            if grep -q " 192.0.2.70/24 " <<<"$got" && grep -q "1 packets received" <<<"$got"; then ok=$((ok + 1)); else echo "run $i: $got"; fi
        done
        metrics > /tmp/after.metrics
        for i in $(seq '"$bridge"'); do
            t0=$(date +%s.%N)
            docker run --rm --network bridge '"$PL_IMAGE"' sh -c "ip -4 -o addr show; ping -c1 -W2 127.0.0.1" >/dev/null 2>&1
            t1=$(date +%s.%N)
            awk "BEGIN { print $t1 - $t0 }" >> /tmp/bridge.times
        done
        echo "race: $ok/'"$runs"' first packets"
        bridge=$([ -s /tmp/bridge.times ] && echo ", --network bridge $(median < /tmp/bridge.times) s (median of $(wc -l < /tmp/bridge.times))")
        echo "start latency: --network red $(median < /tmp/red.times) s (median of $(wc -l < /tmp/red.times))$bridge"
        echo "plugin answer time (mean): $(awk "FNR == NR { a[\$1] = \$2; next } { b[\$1] = \$2 }
            END { for (k in b) if (k ~ /^ovsmesh_plugin_call_duration_seconds_sum/) { c = k; sub(/_sum/, \"_count\", c); n = b[c] - a[c]
                if (n > 0) { split(k, p, \"\\\"\"); printf \"%s %.0f ms, \", p[2], (b[k] - a[k]) / n * 1000 } } }" /tmp/before.metrics /tmp/after.metrics)"
        echo "daemon reconciles during the runs: $(( $(reconciles /tmp/after.metrics) - $(reconciles /tmp/before.metrics) ))"
        [ "$ok" -eq '"$runs"' ]')
    local rc=$?
    echo "$out"
    grep -E '^(race|start latency|plugin answer|daemon reconciles)' <<<"$out" >> "$state/plugin-figures"
    return "$rc"
}

# A declared address (the plugin variant declares web1 on node1): exactly its MAC, MTU and routes;
# `docker restart` keeps them; `docker rm` removes the veth and the port.
pl_declared() {
    local before after show="docker exec web1c cat /sys/class/net/eth0/address /sys/class/net/eth0/mtu
        docker exec web1c ip -4 -o addr show eth0 | grep -o '192.0.2.10/24'; docker exec web1c ip route | grep 198.51.100"
    # The daemon (and so the plugin) takes the edited topology within a moment of its copy.
    vm node1 "for _ in \$(seq 20); do
        docker run -d --name web1c --network red --ip 192.0.2.10 $PL_IMAGE sleep infinity >/dev/null && exit 0
        docker rm -f web1c >/dev/null 2>&1; sleep 1
    done; exit 1" || return 1
    before=$(vm node1 "$show")
    echo "$before"
    [ "$(head -3 <<<"$before" | tr '\n' ' ')" = "02:00:5e:00:02:0a 1400 192.0.2.10/24 " ] || return 1
    grep -q "198.51.100.0/24 via 192.0.2.9" <<<"$before" || return 1
    vm node1 "docker exec web1c ping -c 1 -W 2 192.0.2.3" || return 1
    vm node1 "docker restart -t 1 web1c >/dev/null" || return 1
    after=$(vm node1 "$show")
    echo "after docker restart: $after"
    [ "$after" = "$before" ] || return 1
    vm node1 "docker rm -f web1c >/dev/null
        test -z \"\$(ovs-vsctl --bare --columns=name find port external_ids:ovsmesh-address=192.0.2.10/24)\" || { echo 'port left'; exit 1; }
        ! ip -d link | grep 'ovsmesh-ep:.* 192.0.2.10/24' || { echo 'veth left'; exit 1; }"
}

# docker restart of a pooled container keeps address and MAC.
pl_restart_keeps() {
    local before after
    local show="docker exec pool1 cat /sys/class/net/eth0/address; docker exec pool1 ip -4 -o addr show eth0 | grep -o ' 192.0.2.[0-9]*/24 '"
    before=$(vm node2 "$show")
    vm node2 "docker restart -t 1 pool1 >/dev/null" || return 1
    after=$(vm node2 "$show")
    echo "before: $before"
    echo "after: $after"
    [ -n "$after" ] && [ "$after" = "$before" ]
}

# The routed network: node1's subnet and gateway, reached from pod2 (node2). A fresh container's
# first packet on it is proven after the daemon's restart (pl_daemon_restart): one docker run less.
pl_routed() {
    vm node1 "docker run -d --name p9 --restart=always --network pods $PL_IMAGE sleep infinity >/dev/null &&
        docker exec p9 ip -4 -o addr show eth0 | grep -q ' 203.0.113.130/27 ' &&
        docker exec p9 ip route | grep -q 'default via 203.0.113.129'" || return 1
    vm node2 "inside pod2 ping -c 1 -W 2 203.0.113.130"
}

# systemctl restart ovsmesh: pod2 (node2) keeps reaching p9 (node1) all along; the next docker run
# works, and its first packet crosses to pod2 on the routed network.
pl_daemon_restart() {
    local out
    vm node2 "pid=\$(docker inspect -f '{{.State.Pid}}' pod2)
        nohup nsenter -t \$pid -n ping -c 25 -i 0.2 -W 1 203.0.113.130 > /tmp/during-restart 2>&1 < /dev/null &" || return 1
    sleep 1
    vm node1 "systemctl restart ovsmesh" || return 1
    sleep 6
    out=$(vm node2 "cat /tmp/during-restart")
    echo "$out" | tail -3
    grep -Eq "25 packets transmitted, 25 (packets )?received" <<<"$out" || return 1
    vm node1 "docker run --rm --network pods $PL_IMAGE ping -c 1 -W 2 203.0.113.170"
}

# systemctl restart docker: the --restart=always container comes back networked.
pl_docker_restart() {
    vm node1 "systemctl restart docker
        for _ in \$(seq 120); do docker exec p9 true 2>/dev/null && break; sleep 1; done
        docker exec p9 ip -4 -o addr show eth0" || return 1
    vm node2 "for _ in \$(seq 30); do inside pod2 ping -c 1 -W 2 203.0.113.130 && exit 0; done; exit 1"
}

# Before node3 reboots: a --restart=always container on pods there (203.0.113.194).
pl_before_reboot() {
    vm node3 "docker run -d --name p3 --restart=always --network pods $PL_IMAGE sleep infinity >/dev/null &&
        docker exec p3 ip -4 -o addr show eth0 | grep ' 203.0.113.194/27 '"
}

pl_after_reboot() {
    vm node3 "for _ in \$(seq 120); do docker exec p3 true 2>/dev/null && break; sleep 1; done; docker ps --filter name=p3" || return 1
    vm node1 "for _ in \$(seq 30); do inside pod1 ping -c 1 -W 2 203.0.113.194 && exit 0; done; exit 1"
}

# ovsmesh down refuses while Docker endpoints of the mesh exist.
pl_down_refused() {
    local out
    # The service stopped first: `down` under the mesh's daemon is refused for that reason alone.
    out=$(vm node1 "systemctl stop ovsmesh; ovsmesh down --host node1 /etc/ovsmesh/topology.toml 2>&1; echo exit \$?; systemctl start ovsmesh")
    echo "$out"
    grep -q "refusing to go down: 1 Docker endpoint(s) of mesh vagrant" <<<"$out" && grep -q "exit 1" <<<"$out" &&
        vm node1 "test -n \"\$(ovs-vsctl --bare --columns=name find port external_ids:ovsmesh-role=endpoint)\""
}

# The plugin's containers, removed one at a time (each bounded: parallel removals deadlock dockerd 20.10).
pl_remove_containers() {
    vm node1 "timeout 120 docker rm -f p9" && vm node2 "timeout 120 docker rm -f pool1" &&
        vm node3 "timeout 120 docker rm -f p3" &&
        on_all "test -z \"\$(ovs-vsctl --bare --columns=name find port external_ids:ovsmesh-role=endpoint)\""
}
