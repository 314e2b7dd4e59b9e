# Cove's build, test and demo entry points. Downloads and builds of
# dependencies are cached outside the checkout (see test/infra/deps.sh).

GO ?= go
BIN ?= $(CURDIR)/bin
export CGO_ENABLED ?= 0

.PHONY: all build initrd deps test test-unit demo bench lint clean

all: build

# -trimpath and no symbol tables make the guest binaries, and so the
# initramfs and its SEV-SNP measurement, the same on every machine.
GOBUILD = $(GO) build -trimpath -ldflags='-s -w'

build:
	mkdir -p $(BIN)
	$(GOBUILD) -o $(BIN)/ ./cmd/cove ./cmd/cove-kbs ./cmd/covectl ./cmd/cove-agent
	$(GOBUILD) -o $(BIN)/claims-gen ./examples/claims/gen
	$(GOBUILD) -o $(BIN)/claims-totals ./examples/claims/totals

# The guest initramfs: cove-agent as /init, busybox, the virtio modules of
# Debian's kernel and the claims workload.
initrd: build
	$(BIN)/cove build-initrd -o $(BIN)/initrd.img -agent $(BIN)/cove-agent \
		-modules "$$(test/infra/deps.sh env | sed -n 's/^COVE_KERNEL_MODULES=//p')" \
		-add /usr/bin/claims-totals=$(BIN)/claims-totals

# Install QEMU, busybox, cpio, Debian's kernel, OVMF.amdsev.fd and a Vault
# build, once; later runs reuse the cache.
deps:
	test/infra/deps.sh all

# The whole test suite, end-to-end tests in real VMs against a real Vault
# included. Tests whose dependency is missing fail under CI=true.
test: deps
	eval "$$(test/infra/deps.sh env | sed 's/^/export /')" && \
		$(GO) test -count=1 -timeout 60m ./...

# The suite under -short: tests that boot a VM or start Vault skip.
test-unit:
	$(GO) test -count=1 -short ./...

# Seal synthetic claims, run the totals job in an attested VM and print
# the unsealed result.
demo: deps initrd
	$(GO) run ./test/demo -bin $(BIN)

bench: deps
	eval "$$(test/infra/deps.sh env | sed 's/^/export /')" && \
		$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 60m ./...

lint:
	$(GO) vet ./...
	test -z "$$(gofmt -l .)"

clean:
	rm -rf $(BIN)
