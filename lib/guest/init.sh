#!/bin/sh
# /init of the test and benchmark guest: busybox ash as PID 1 in an initramfs built by lib/guest/initramfs.ts.
#
# Parameters come from /proc/cmdline (the kernel keeps dotted words there and does not hand them to us):
#   vhu.run=link,probe,ping,tcp-tx,tcp-rx,ping-loop   scenarios, run in order (default: link)
#           dhcp,tcp-serve,udp,dns,tcp-banner        (the user port's suite, qemu-user.test.ts)
#           tcp-sink                                 (vhost-user bench --user-net)
#           node                                     runs vhu.node with Node (an initramfs from node_initramfs.ts)
#   vhu.ip=10.0.2.15/24  vhu.host=10.0.2.1  vhu.iface=eth0
#                        vhu.ip=none: no static address (the dhcp scenario asks udhcpc for one)
#                        vhu.iface=none: no NIC to wait for (the node scenario brings its own taps)
#   vhu.node=PATH        node: the program Node runs, from /pkg (this package inside the guest)
#   vhu.serve_port=N     tcp-serve: listens on N and sends vhu.mb MiB to the first connection
#   vhu.sink_port=N      tcp-sink: listens on N and reads the first connection to its end (the benchmark)
#   vhu.udp_port=N       udp: reads file vhu-udp from a TFTP server at host:N, reports its first line
#   vhu.dns=ADDR vhu.name=NAME   dns: nslookup NAME at ADDR (default 10.0.2.3, vhu-test.example)
#   vhu.banner_port=N    tcp-banner: connects to host:N, reports the first line the host sends
#   vhu.mb=50            tcp-tx: MiB sent (random data made in /tmp, a tmpfs)
#   vhu.port=5001        tcp-tx connects to host:port, tcp-rx to host:port+1
#   vhu.rx_wait=0        tcp-rx tries again for up to this many seconds while the server is not listening
#                        yet (another guest whose own scenarios come first)
#   vhu.count=20  vhu.interval=1                      ping
#   vhu.tx_cpu=N  vhu.rx_cpu=N   tcp-tx / tcp-rx run on CPU N (taskset): with several queue pairs the
#                        driver maps CPU i to TX queue i, so each transfer leaves on a queue of its own
#   vhu.timeout=120      the guest powers itself off after this many seconds, whatever it is doing
#
# Output, one line each (the host parses them; keep them single-line, key=value, no spaces in values):
#   VHU-UP uptime=<s>                         eth0 configured and up
#   VHU-INFO <scenario> key=value...          something the host may need before the result (or a moment
#                                             it times: "VHU-INFO tcp-sink end" as soon as nc has ended)
#   VHU-RESULT <scenario> key=value...        the outcome of one scenario
#   VHU-ERROR <text>                          setup failed; the guest powers off
#   VHU-DONE uptime=<s>                       all scenarios ran; poweroff follows
# ping-loop prints busybox ping's own reply lines ("64 bytes from H: seq=N ttl=64 time=T ms") forever.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev || /bin/busybox mount -t tmpfs tmpfs /dev
# The initramfs has no /dev/console node, so the kernel started us without stdio: take the console now.
exec </dev/console >/dev/console 2>&1
echo # the firmware's "Booting from ROM.." has no newline: start our lines on a fresh one
[ -x /bin/ip ] || /bin/busybox --install -s
mount -t tmpfs -o size=160m tmpfs /tmp

uptime_s() { read -r u _ </proc/uptime; echo "$u"; }
stop() {
	echo "VHU-DONE uptime=$(uptime_s)"
	sync
	poweroff -f
	sleep 10
}
die() {
	echo "VHU-ERROR $*"
	stop
}

# Parameters: vhu.KEY=VALUE -> P_KEY (KEY restricted to [a-z0-9_] before it reaches eval).
P_run=link P_ip=10.0.2.15/24 P_host=10.0.2.1 P_iface=eth0 P_mb=50 P_port=5001 P_count=20 P_interval=1 P_timeout=120
P_tx_cpu= P_rx_cpu= P_rx_wait=0 P_node=
P_serve_port=5080 P_sink_port=5081 P_udp_port=5003 P_dns=10.0.2.3 P_name=vhu-test.example P_banner_port=5004
for w in $(cat /proc/cmdline); do
	case "$w" in
	vhu.*=*)
		k=${w%%=*}
		k=${k#vhu.}
		case "$k" in '' | *[!a-z0-9_]*) continue ;; esac
		eval "P_$k=\${w#*=}"
		;;
	esac
done

# Watchdog: a guest whose host went away must not run forever.
(
	sleep "$P_timeout"
	echo "VHU-ERROR timeout: still running after ${P_timeout}s"
	poweroff -f
) &

while read -r m; do
	[ -n "$m" ] || continue
	insmod "/lib/modules/$m.ko" || die "insmod $m failed"
done </lib/modules/order

# The NIC: its link up and addressed, once its driver made it (vhu.iface=none: there is none).
setup_nic() {
	i=0
	while [ ! -e "/sys/class/net/$P_iface" ]; do
		i=$((i + 1))
		[ $i -le 100 ] || die "no $P_iface after 10 s: $(ls /sys/class/net | tr '\n' ' ')"
		sleep 0.1
	done
	ip link set lo up
	[ "$P_ip" = none ] || ip addr add "$P_ip" dev "$P_iface" || die "ip addr add $P_ip dev $P_iface failed"
	ip link set "$P_iface" up || die "ip link set $P_iface up failed"
	# Carrier comes with the device's link status (VIRTIO_NET_F_STATUS, read by a work item after probe).
	# operstate only turns "up" up to 1 s later (linkwatch's rate limit); IPv4 traffic does not wait for it.
	i=0
	while [ "$(cat /sys/class/net/$P_iface/carrier 2>/dev/null)" != 1 ]; do
		i=$((i + 1))
		[ $i -le 100 ] || die "no carrier on $P_iface after 10 s"
		sleep 0.1
	done
}
[ "$P_iface" = none ] || setup_nic
echo "VHU-UP uptime=$(uptime_s)"

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

sc_link() {
	d=/sys/class/net/$P_iface
	# operstate follows "ip link set up" asynchronously (linkwatch): give it up to 5 s.
	i=0
	while [ "$(cat $d/operstate)" != up ] && [ $i -lt 50 ]; do
		i=$((i + 1))
		sleep 0.1
	done
	flags=$(ip -o link show "$P_iface" | sed -n 's/^[0-9]*: [^:]*: <\([^>]*\)>.*/\1/p')
	# The guest-side view of the negotiated virtio features: one character per bit, bit 0 first.
	feat=$(cat "$d/device/features" 2>/dev/null)
	echo "VHU-RESULT link iface=$P_iface mac=$(cat $d/address) flags=$flags operstate=$(cat $d/operstate)" \
		"carrier=$(cat $d/carrier 2>/dev/null || echo none) mtu=$(cat $d/mtu) features=${feat:-none}"
}

sc_probe() {
	ping -c 1 -W 1 "$P_host" >/dev/null 2>&1
	echo "VHU-RESULT probe rc=$?"
}

sc_ping() {
	out=$(ping -c "$P_count" -i "$P_interval" -W 2 "$P_host" 2>&1)
	rc=$?
	echo "$out" | sed 's/^/  /'
	tx=$(echo "$out" | sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p')
	rx=$(echo "$out" | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
	rtt=$(echo "$out" | sed -n 's#^round-trip min/avg/max = \([0-9./]*\) ms.*#\1#p')
	echo "VHU-RESULT ping transmitted=${tx:-0} received=${rx:-0} rtt=${rtt:-none} rc=$rc"
}

sc_ping_loop() {
	ping -i 1 "$P_host" # not exec: PID 1 must stay the shell (its exit panics the kernel)
}

md5_of() { md5sum "$1" | cut -d' ' -f1; }
# random_file PATH: vhu.mb MiB of random data (in /tmp, a tmpfs); prints "md5=<md5> bytes=<n>".
random_file() {
	dd if=/dev/urandom of="$1" bs=1048576 count="$P_mb" 2>/dev/null || return 1
	echo "md5=$(md5_of "$1") bytes=$(wc -c <"$1")"
}
# on_cpu N cmd...: cmd on CPU N, or wherever the scheduler puts it when N is empty.
on_cpu() {
	cpu=$1
	shift
	if [ -n "$cpu" ]; then taskset -c "$cpu" "$@"; else "$@"; fi
}

sc_tcp_tx() {
	file=$(random_file /tmp/tx.bin) || {
		echo "VHU-RESULT tcp-tx error=dd-failed"
		return
	}
	echo "VHU-INFO tcp-tx $file"
	t0=$(uptime_s)
	on_cpu "$P_tx_cpu" nc -w 5 "$P_host" "$P_port" </tmp/tx.bin
	rc=$?
	t1=$(uptime_s)
	rm -f /tmp/tx.bin
	echo "VHU-RESULT tcp-tx $file rc=$rc secs=$(elapsed "$t0" "$t1")"
}

# fd 3: a fifo nobody writes, held open until release_stdin, as a reading nc's stdin. busybox nc
# half-closes the connection when its stdin ends, and its peer may stop sending when it sees that (a
# server that is busybox nc too, Debian 12's passt): so nc reads until the other side's FIN.
hold_stdin() {
	rm -f /tmp/nc.hold
	mkfifo /tmp/nc.hold
	exec 3<>/tmp/nc.hold
}
release_stdin() {
	exec 3>&-
	rm -f /tmp/nc.hold
}

sc_tcp_rx() {
	hold_stdin
	t0=$(uptime_s)
	waited=0
	while :; do
		on_cpu "$P_rx_cpu" nc -w 5 "$P_host" $((P_port + 1)) <&3 >/tmp/rx.bin
		rc=$?
		# Refused (nothing read, an error): the server may not listen yet.
		[ "$rc" -ne 0 ] && [ ! -s /tmp/rx.bin ] && [ "$waited" -lt "$P_rx_wait" ] || break
		sleep 1
		waited=$((waited + 1))
		t0=$(uptime_s)
	done
	t1=$(uptime_s)
	release_stdin
	echo "VHU-RESULT tcp-rx md5=$(md5_of /tmp/rx.bin) bytes=$(wc -c </tmp/rx.bin) rc=$rc secs=$(elapsed "$t0" "$t1")"
	rm -f /tmp/rx.bin
}

# udhcpc's hook: it configures the interface itself (no default.script in the initramfs), with the MTU
# the server offers if it offers one (passt does: 65520; it has no other way to tell the guest).
sc_dhcp() {
	cat >/tmp/udhcpc.sh <<'HOOK'
#!/bin/sh
[ "$1" = bound ] || [ "$1" = renew ] || exit 0
[ -z "$mtu" ] || ip link set dev "$interface" mtu "$mtu"
ifconfig "$interface" "$ip" netmask "$subnet" up
route add default gw "$router" dev "$interface"
echo "ip=$ip subnet=$subnet router=$router dns=$(echo $dns | tr ' ' ,) mtu=${mtu:-none}" >/tmp/lease
HOOK
	chmod +x /tmp/udhcpc.sh
	udhcpc -i "$P_iface" -n -q -t 5 -T 2 -O mtu -s /tmp/udhcpc.sh >/tmp/udhcpc.log 2>&1
	rc=$?
	sed 's/^/  /' /tmp/udhcpc.log
	echo "VHU-RESULT dhcp $(cat /tmp/lease 2>/dev/null || echo ip=none) rc=$rc"
}

# The host connects (through a forward of the user port) and reads vhu.mb MiB; the md5 comes first.
sc_tcp_serve() {
	file=$(random_file /tmp/serve.bin) || {
		echo "VHU-RESULT tcp-serve error=dd-failed"
		return
	}
	nc -l -p "$P_serve_port" </tmp/serve.bin >/dev/null &
	pid=$!
	sleep 0.5 # nc listening before the host is told to connect
	echo "VHU-INFO tcp-serve $file port=$P_serve_port"
	t0=$(uptime_s)
	wait $pid
	rc=$?
	t1=$(uptime_s)
	rm -f /tmp/serve.bin
	echo "VHU-RESULT tcp-serve $file rc=$rc secs=$(elapsed "$t0" "$t1")"
}

# The host connects (through a forward) and sends; nc reads to the end of the stream, its stdin held
# (hold_stdin). "end" is printed the moment nc is done, before the md5, so that the host can time the
# transfer to the last byte.
sc_tcp_sink() {
	hold_stdin
	nc -l -p "$P_sink_port" <&3 >/tmp/sink.bin &
	pid=$!
	sleep 0.5 # nc listening before the host is told to connect
	echo "VHU-INFO tcp-sink port=$P_sink_port"
	t0=$(uptime_s)
	wait $pid
	rc=$?
	t1=$(uptime_s)
	echo "VHU-INFO tcp-sink end"
	release_stdin
	echo "VHU-RESULT tcp-sink md5=$(md5_of /tmp/sink.bin) bytes=$(wc -c </tmp/sink.bin) rc=$rc secs=$(elapsed "$t0" "$t1")"
	rm -f /tmp/sink.bin
}

# UDP request and response: busybox nc has no UDP, its tftp client does (one read request, one data block).
sc_udp() {
	tftp -g -r vhu-udp -l /tmp/udp.txt "$P_host" "$P_udp_port" 2>/dev/null
	rc=$?
	reply=$(head -n 1 /tmp/udp.txt 2>/dev/null | tr -c 'a-zA-Z0-9:.\n-' _)
	rm -f /tmp/udp.txt
	echo "VHU-RESULT udp reply=${reply:-none} rc=$rc"
}

sc_dns() {
	out=$(nslookup "$P_name" "$P_dns" 2>&1)
	rc=$?
	echo "$out" | sed 's/^/  /'
	# busybox prints the server's address first, then the answer's: the last Address line is the answer.
	addr=$(echo "$out" | sed -n "/$P_name/,\$ s/^Address[^:]*: *\([0-9.]*\).*/\1/p" | tail -n 1)
	echo "VHU-RESULT dns name=$P_name addr=${addr:-none} rc=$rc"
}

# Its stdin held (hold_stdin): with </dev/null nc could end before the host's line arrived.
sc_tcp_banner() {
	hold_stdin
	got=$(nc -w 5 "$P_host" "$P_banner_port" <&3 2>/dev/null | head -n 1 | tr -c 'a-zA-Z0-9:.\n-' _)
	release_stdin
	echo "VHU-RESULT tcp-banner got=${got:-none}"
}

# The program prints its own VHU-INFO and VHU-RESULT lines; the addon is the one built for this package.
sc_node() {
	[ -n "$P_node" ] || die "node: no vhu.node"
	VHOST_USER_ADDON=/pkg/build/Release/vhost_user.node node "$P_node"
	rc=$?
	[ "$rc" -eq 0 ] || echo "VHU-RESULT node rc=$rc"
}

for s in $(echo "$P_run" | tr ',' ' '); do
	case "$s" in
	link) sc_link ;;
	probe) sc_probe ;;
	ping) sc_ping ;;
	ping-loop) sc_ping_loop ;;
	tcp-tx) sc_tcp_tx ;;
	tcp-rx) sc_tcp_rx ;;
	dhcp) sc_dhcp ;;
	tcp-serve) sc_tcp_serve ;;
	tcp-sink) sc_tcp_sink ;;
	udp) sc_udp ;;
	dns) sc_dns ;;
	tcp-banner) sc_tcp_banner ;;
	node) sc_node ;;
	*) echo "VHU-RESULT $s error=unknown-scenario" ;;
	esac
done
stop
