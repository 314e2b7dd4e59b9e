// Command cove is Cove's tool for data owners, job submitters and
// auditors: it seals data to a key held by the broker, runs jobs in
// attested VMs, and unseals their results.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"cove.dev/cove/internal/sealcmd"
)

const usage = `usage: cove COMMAND [flags] [args]

Commands:
  seal          encrypt a file to a broker-held key:   cove seal --kbs URL --key NAME -o OUT.cove IN
  run           run a job in an attested VM:          cove run [--dry-run] [--hypervisor qemu|cloud-hypervisor] job.yaml
  unseal        decrypt a job's result:                cove unseal --identity key.txt result.cove
  keygen        make an age identity for results:      cove keygen -o key.txt
  digest        print a job's digest (for grants):     cove digest job.yaml
  measure       print a job's expected SEV-SNP measurement (for policies)
  build-initrd  build the guest initramfs from cove-agent and a workload
  forward       join standard input and output to a TCP address (QEMU starts it)

Run 'cove COMMAND -h' for a command's flags.
`

type command func(ctx context.Context, args []string, stdout, stderr io.Writer) error

var commands = map[string]command{
	"seal":         sealcmd.Seal,
	"unseal":       sealcmd.Unseal,
	"keygen":       sealcmd.Keygen,
	"run":          runCommand,
	"digest":       digestCommand,
	"measure":      measureCommand,
	"build-initrd": buildInitrdCommand,
	"forward":      forwardCommand,
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "cove: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cmd(ctx, os.Args[2:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "cove %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
