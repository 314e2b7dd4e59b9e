#!/usr/bin/env bash
# Installs and caches everything Cove's tests and demo need outside the Go
# module cache: Debian packages (QEMU, busybox, cpio), Debian's 6.1
# kernel with its modules, Debian sid's OVMF.amdsev.fd, and a Vault server
# built from the Go module proxy. Safe to run again: each step is skipped
# when its result is already in the cache.
#
# Usage: test/infra/deps.sh            install all
#        test/infra/deps.sh vault      only build Vault
#        test/infra/deps.sh env        print the variables the tests read
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${COVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cove}
mkdir -p "$cache"

log() { printf 'deps: %s\n' "$*" >&2; }

apt_updated=
apt_update() {
	if [ -z "$apt_updated" ]; then
		apt-get update -qq >&2
		apt_updated=1
	fi
}

install_packages() {
	local missing=()
	command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
	[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx ip || missing+=(busybox-static)
	command -v cpio >/dev/null || missing+=(cpio)
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing ${missing[*]}"
		apt_update
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
	fi
}

# Debian 12's kernel: vmlinuz and the virtio and vsock modules the guest loads.
fetch_kernel() {
	local dir=$cache/kernel
	if [ -s "$dir/vmlinuz" ] && [ -d "$dir/modules" ]; then
		return
	fi
	log "fetching Debian's kernel"
	apt_update
	local pkg
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6/ {print $2; exit}')
	if [ -z "$pkg" ]; then
		echo "deps: cannot find the linux-image-6.1 package behind linux-image-amd64" >&2
		exit 1
	fi
	local tmp
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get -o APT::Sandbox::User=root download -qq "$pkg" >&2)
	dpkg -x "$tmp"/linux-image-*.deb "$tmp/root"
	rm -rf "$dir.new" && mkdir -p "$dir.new"
	cp "$tmp"/root/boot/vmlinuz-* "$dir.new/vmlinuz"
	local kver
	kver=$(ls "$tmp/root/lib/modules")
	mkdir -p "$dir.new/modules"
	# Only the modules the guest needs, flattened; init loads them in order.
	for m in virtio/virtio.ko virtio/virtio_ring.ko virtio/virtio_pci_modern_dev.ko \
		virtio/virtio_pci_legacy_dev.ko virtio/virtio_pci.ko char/virtio_console.ko \
		net/net_failover.ko net/virtio_net.ko; do
		local src
		src=$(find "$tmp/root/lib/modules/$kver" -path "*/$m" | head -1)
		if [ -z "$src" ]; then
			# Older kernels build some of these in; skip what is not a module.
			continue
		fi
		cp "$src" "$dir.new/modules/"
	done
	find "$tmp/root/lib/modules/$kver" -name failover.ko -exec cp {} "$dir.new/modules/" \;
	echo "$kver" >"$dir.new/version"
	rm -rf "$dir" && mv "$dir.new" "$dir"
	rm -rf "$tmp"
}

# Debian sid's AmdSev OVMF build, named as the job's firmware for the SNP
# launch digest.
fetch_ovmf() {
	local dir=$cache/ovmf
	if [ -s "$dir/OVMF.amdsev.fd" ]; then
		return
	fi
	log "fetching Debian sid's ovmf-amdsev"
	local tmp
	tmp=$(mktemp -d)
	mkdir -p "$tmp/lists/partial"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main" >"$tmp/sid.list"
	local opts=(-o "Dir::Etc::SourceList=$tmp/sid.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$tmp/lists"
		-o APT::Sandbox::User=root)
	apt-get "${opts[@]}" update -qq >&2
	(cd "$tmp" && apt-get "${opts[@]}" download -qq ovmf-amdsev >&2)
	dpkg -x "$tmp"/ovmf-amdsev_*.deb "$tmp/root"
	mkdir -p "$dir"
	cp "$tmp/root/usr/share/ovmf/OVMF.amdsev.fd" "$dir/OVMF.amdsev.fd.new"
	mv "$dir/OVMF.amdsev.fd.new" "$dir/OVMF.amdsev.fd"
	rm -rf "$tmp"
}

build_vault() {
	local bin=$cache/vault/vault
	if [ -x "$bin" ]; then
		return
	fi
	log "building Vault from the Go module proxy (10 to 15 minutes on 2 cores the first time)"
	mkdir -p "$cache/vault/src"
	cp "$here/vault/main.go" "$here/vault/go.mod" "$cache/vault/src/"
	[ -f "$here/vault/go.sum" ] && cp "$here/vault/go.sum" "$cache/vault/src/"
	(cd "$cache/vault/src" && go mod tidy >&2 && go build -o "$bin.new" . >&2)
	mv "$bin.new" "$bin"
}

print_env() {
	cat <<ENV
COVE_CACHE=$cache
COVE_VAULT=$cache/vault/vault
COVE_KERNEL=$cache/kernel/vmlinuz
COVE_KERNEL_MODULES=$cache/kernel/modules
COVE_OVMF=$cache/ovmf/OVMF.amdsev.fd
ENV
}

case ${1:-all} in
all)
	install_packages
	fetch_kernel
	fetch_ovmf
	build_vault
	print_env
	;;
vault) build_vault ;;
packages) install_packages ;;
kernel) fetch_kernel ;;
ovmf) fetch_ovmf ;;
env) print_env ;;
*)
	echo "usage: $0 [all|vault|packages|kernel|ovmf|env]" >&2
	exit 2
	;;
esac
