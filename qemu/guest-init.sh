#!/bin/sh
# PID 1 of a test guest. The root is the host's / over 9p, read-only. Mount
# scratch space, run the command the host left in the output share, record its
# exit code there and power off. /tmp may hide the repository (a CI clone can
# live there), so the repository is mounted back at its own path.
# The root is mounted without 9p caching: a cached dentry that the host changes
# (its /proc, /tmp) is revalidated away, and that detaches what is mounted on it.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
p9="trans=virtio,version=9p2000.L,msize=512000"
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /var/tmp
mkdir -p /run/iro-out /run/netns /run/home
mount -t 9p -o "$p9" iroout /run/iro-out
. /run/iro-out/env.sh
mkdir -p "$IRO_REPO"
mount -t 9p -o "$p9,ro,cache=loose" irorepo "$IRO_REPO"
for share in $IRO_CACHED; do  # tag=path: trees that never change during a run
  mount -t 9p -o "$p9,ro,cache=loose" "${share%%=*}" "${share#*=}"
done
hostname iro-guest
ip link set lo up
echo "iro-guest: running command" > /dev/kmsg
(cd "$IRO_REPO" && exec /bin/sh /run/iro-out/cmd.sh) > /dev/ttyS1 2>&1 < /dev/null
echo $? > /run/iro-out/exit-code.tmp
mv /run/iro-out/exit-code.tmp /run/iro-out/exit-code
sync
# Power off from a child that calls reboot(2) itself: the kernel powers off
# inside that call while PID 1 sleeps in wait(). An asynchronous sysrq-o let
# PID 1 run on while virtio-9p shut down, fault on its 9p-backed text (SIGBUS)
# and panic the kernel. sysrq-b (QEMU runs with -no-reboot) is the fallback.
/usr/bin/python3 -c 'import ctypes; ctypes.CDLL(None, use_errno=True).reboot(0x4321FEDC)'
echo b > /proc/sysrq-trigger
while :; do /usr/bin/sleep 60; done
