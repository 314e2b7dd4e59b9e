package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	agent "cove.dev/cove/guest-agent"
	"cove.dev/cove/internal/initramfs"
)

type addFlags []string

func (a *addFlags) String() string     { return strings.Join(*a, ",") }
func (a *addFlags) Set(v string) error { *a = append(*a, v); return nil }

// buildInitrdCommand builds the guest initramfs: cove-agent as /init,
// busybox for the network set-up, the virtio modules, and the workload.
func buildInitrdCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("build-initrd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "output `file` (gzip-compressed cpio)")
	agentPath := fs.String("agent", "", "the static cove-agent `binary`")
	busybox := fs.String("busybox", "/bin/busybox", "a static busybox `binary` (Debian's busybox-static)")
	modules := fs.String("modules", "", "`folder` with the guest kernel's virtio modules (.ko)")
	var adds addFlags
	fs.Var(&adds, "add", "add a file as `GUEST_PATH=HOST_PATH`, such as /usr/bin/totals=bin/totals; repeatable")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cove build-initrd -o initrd.img -agent cove-agent -modules DIR [-add GUEST=HOST]...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *agentPath == "" || *modules == "" {
		fs.Usage()
		return fmt.Errorf("-o, -agent and -modules are required")
	}
	spec := initramfs.Spec{
		Files: []initramfs.File{
			{Path: "/init", Source: *agentPath, Mode: 0o755},
			{Path: "/bin/busybox", Source: *busybox, Mode: 0o755},
		},
		Dirs:     []string{"/dev", "/proc", "/sys", "/run", "/tmp", "/lib/modules"},
		Symlinks: map[string]string{"/bin/sh": "busybox"},
	}
	found := 0
	for _, name := range agent.ModuleOrder {
		src := filepath.Join(*modules, name)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		spec.Files = append(spec.Files, initramfs.File{Path: "/lib/modules/" + name, Source: src, Mode: 0o644})
		found++
	}
	if found == 0 {
		return fmt.Errorf("no virtio modules in %s; run test/infra/deps.sh kernel", *modules)
	}
	for _, a := range adds {
		guest, host, ok := strings.Cut(a, "=")
		if !ok || !strings.HasPrefix(guest, "/") {
			return fmt.Errorf("-add %q: want GUEST_PATH=HOST_PATH with an absolute guest path", a)
		}
		spec.Files = append(spec.Files, initramfs.File{Path: guest, Source: host, Mode: 0o755})
	}
	return initramfs.WriteFile(*out, spec)
}
