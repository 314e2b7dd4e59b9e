package main

import (
	"context"
	"flag"
	"fmt"
	"io"
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
	var extra []initramfs.File
	for _, a := range adds {
		guest, host, ok := strings.Cut(a, "=")
		if !ok || !strings.HasPrefix(guest, "/") {
			return fmt.Errorf("-add %q: want GUEST_PATH=HOST_PATH with an absolute guest path", a)
		}
		extra = append(extra, initramfs.File{Path: guest, Source: host, Mode: 0o755})
	}
	spec, err := agent.InitramfsSpec(*agentPath, *busybox, *modules, extra...)
	if err != nil {
		return err
	}
	return initramfs.WriteFile(*out, spec)
}
