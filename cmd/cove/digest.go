package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"cove.dev/cove/internal/jobspec"
	"cove.dev/cove/internal/launcher"
)

func loadPlan(name string, args []string, stderr io.Writer) (*launcher.Plan, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, "usage: cove %s job.yaml\n", name) }
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return nil, flag.ErrHelp
	}
	spec, err := jobspec.Load(fs.Arg(0))
	if err != nil {
		return nil, err
	}
	return launcher.Prepare(spec)
}

// digestCommand prints the job digest, the value a broker admin grants a
// key to and the launcher binds as HOST_DATA.
func digestCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	p, err := loadPlan("digest", args, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, p.DigestHex())
	return nil
}

// measureCommand prints the SEV-SNP launch measurement a guest of this job
// reports, the value a release policy expects.
func measureCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	p, err := loadPlan("measure", args, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, p.MeasurementHex())
	return nil
}
