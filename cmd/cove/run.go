package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"cove.dev/cove/hypervisor"
	"cove.dev/cove/internal/cachedir"
	"cove.dev/cove/internal/jobspec"
	"cove.dev/cove/internal/launcher"
)

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dryRun := fs.Bool("dry-run", false, "print the request that would create the VM, then exit")
	hv := fs.String("hypervisor", "qemu", "`name` of the hypervisor: qemu or cloud-hypervisor")
	output := fs.String("o", "", "sealed output `file`; default NAME.result.cove next to the job spec")
	transcript := fs.String("transcript", "", "transcript `file`; default NAME.transcript.json next to the job spec")
	simDir := fs.String("sim-snp-dir", "", "`folder` of the sim-snp device's TEST-ONLY key chain; default $COVE_SIM_SNP_DIR or the Cove cache")
	console := fs.String("console", "", "`file` for the guest's serial console; default NAME.console.log next to the job spec")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this `duration`")
	verbose := fs.Bool("v", false, "log each stage of the run")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cove run [flags] job.yaml")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return flag.ErrHelp
	}
	spec, err := jobspec.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	plan, err := launcher.Prepare(spec)
	if err != nil {
		return err
	}

	if *dryRun {
		switch *hv {
		case "cloud-hypervisor":
			body, err := hypervisor.CloudHypervisorCreateBody(plan.VM)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, string(body))
			return nil
		case "qemu":
			argv, err := hypervisor.QEMUArgs(plan.VM, hypervisor.AccelTCG)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, strings.Join(argv, " "))
			return nil
		default:
			return fmt.Errorf("--hypervisor %q: use qemu or cloud-hypervisor", *hv)
		}
	}
	if *hv != "qemu" {
		return fmt.Errorf("--hypervisor %q: only qemu can run jobs on this build; cloud-hypervisor supports --dry-run", *hv)
	}

	base := filepath.Join(spec.Dir, spec.Name)
	opts := launcher.Options{
		Driver:         &hypervisor.QEMU{},
		OutputPath:     orDefault(*output, base+".result.cove"),
		TranscriptPath: orDefault(*transcript, base+".transcript.json"),
		ConsoleLog:     orDefault(*console, base+".console.log"),
		Timeout:        *timeout,
	}
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	if spec.KBS.CAFile != "" {
		opts.KBSCACert, err = os.ReadFile(spec.Path(spec.KBS.CAFile))
		if err != nil {
			return fmt.Errorf("kbs.ca_file: %w", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	addr, err := launcher.KBSHostAddr(spec.KBS.URL)
	if err != nil {
		return err
	}
	opts.ForwardCommand = []string{self, "forward", addr}

	switch spec.TEE {
	case jobspec.TEESimSNP:
		dir := *simDir
		if dir == "" {
			dir = os.Getenv("COVE_SIM_SNP_DIR")
		}
		if dir == "" {
			dir = filepath.Join(cachedir.Dir(), "sim-snp")
		}
		opts.Device, err = launcher.NewSimSNPDevice(dir, plan)
		if err != nil {
			return err
		}
		fmt.Fprintln(stderr, "cove run: WARNING: tee sim-snp uses a software TEE with a TEST-ONLY key chain; it protects nothing")
	default:
		return fmt.Errorf("tee %q needs SEV-SNP or TDX hardware, which this host does not have; use sim-snp for development", spec.TEE)
	}

	res, err := launcher.Run(ctx, plan, opts)
	if res != nil && *verbose {
		fmt.Fprintf(stderr, "cove run: boot %v, attestation and release %v, total %v\n",
			res.Timings.Boot.Round(time.Millisecond), res.Timings.Release.Round(time.Millisecond), res.Timings.Total.Round(time.Millisecond))
	}
	if err != nil {
		if errors.Is(err, launcher.ErrJobFailed) {
			return fmt.Errorf("%w (transcript: %s)", err, opts.TranscriptPath)
		}
		return err
	}
	fmt.Fprintf(stdout, "%s\n", opts.OutputPath)
	return nil
}

func orDefault(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
