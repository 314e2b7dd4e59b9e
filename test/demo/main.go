// Command demo runs Cove's main job end to end on this machine, with the
// same commands a data owner, a broker admin and a submitter would type:
//
//  1. start a Vault dev server on a free loopback port and give the broker
//     an AppRole login;
//  2. start cove-kbs over HTTPS, trusting the sim-snp device's TEST-ONLY
//     root (the insecure development setting);
//  3. covectl key create; generate synthetic claims; cove seal;
//  4. cove keygen for the submitter; write the built-in job spec;
//     cove digest and cove measure; covectl policy set and grant;
//  5. cove run, in a QEMU VM with the software SEV-SNP device;
//  6. cove unseal, and print the claim totals.
//
// make demo builds the binaries, the guest initramfs and the dependencies
// first. Everything the demo writes is under -dir (default: a new
// temporary folder, kept so the files can be inspected).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"cove.dev/cove/attest/simsnp"
	"cove.dev/cove/internal/cachedir"
	"cove.dev/cove/test/vaulttest"
)

// jobTemplate is the demo's built-in job: per-diagnosis claim totals in a
// sim-snp VM. The demo fills in the %s values.
const jobTemplate = `version: 1
name: claims-totals
guest:
  kernel: %s
  initrd: %s
  cmdline: console=ttyS0 panic=-1 loglevel=4
  firmware: %s
  vcpus: 1
  memory_mib: 512
tee: sim-snp
inputs:
  - name: claims
    path: claims.csv.cove
command: [/usr/bin/claims-totals, /run/cove/inputs/claims]
output:
  recipient: %s
kbs:
  url: %s
  ca_file: tls/ca.pem
`

func main() {
	bin := flag.String("bin", "bin", "`folder` of the built cove, cove-kbs, covectl and claims-gen binaries")
	dir := flag.String("dir", "", "work `folder`; default a new temporary folder")
	rows := flag.Int("rows", 100000, "number of synthetic claims")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *bin, *dir, *rows); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type demo struct {
	bin, dir string
	env      []string
}

func run(ctx context.Context, bin, dir string, rows int) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if dir == "" {
		dir, err = os.MkdirTemp("", "cove-demo-")
		if err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	d := &demo{bin: bin, dir: dir, env: append(os.Environ(), "COVE_SIM_SNP_DIR="+filepath.Join(dir, "sim-snp"))}
	cache := cachedir.Dir()
	fmt.Printf("demo: working in %s\n", dir)

	step("start Vault (dev mode) and create the broker's AppRole login")
	vaultBin := filepath.Join(cache, "vault", "vault")
	if err := os.MkdirAll(filepath.Join(dir, "vault"), 0o700); err != nil {
		return err
	}
	v, err := vaulttest.Launch(ctx, vaultBin, filepath.Join(dir, "vault"), vaulttest.ModeDev)
	if err != nil {
		return fmt.Errorf("start Vault (%s; run test/infra/deps.sh): %w", vaultBin, err)
	}
	defer v.Stop()
	role, err := vaulttest.Setup(ctx, v.Addr, v.RootToken)
	if err != nil {
		return err
	}
	roleID, secretID, err := role.WriteFiles(dir)
	if err != nil {
		return err
	}

	step("create the sim-snp device's TEST-ONLY key chain, which the broker is told to trust")
	if _, err := simsnp.LoadOrCreateChain(filepath.Join(dir, "sim-snp")); err != nil {
		return err
	}
	fmt.Printf("  wrote %s\n", filepath.Join(dir, "sim-snp"))

	step("start the key broker")
	if err := d.cove(ctx, "cove-kbs", "tls-init", filepath.Join(dir, "tls")); err != nil {
		return err
	}
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(randomToken()), 0o600); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	kbsURL := "https://" + addr
	broker := exec.CommandContext(ctx, filepath.Join(bin, "cove-kbs"),
		"-listen", addr,
		"-tls-cert", filepath.Join(dir, "tls", "kbs.pem"),
		"-tls-key", filepath.Join(dir, "tls", "kbs-key.pem"),
		"-vault-addr", v.Addr,
		"-vault-role-id-file", roleID,
		"-vault-secret-id-file", secretID,
		"-admin-token-file", tokenFile,
		"-state-dir", filepath.Join(dir, "kbs-state"),
		"-insecure-trust-test-only-root", filepath.Join(dir, "sim-snp"))
	brokerLog, err := os.Create(filepath.Join(dir, "kbs.log"))
	if err != nil {
		return err
	}
	defer brokerLog.Close()
	broker.Stdout, broker.Stderr = brokerLog, brokerLog
	broker.Env = d.env
	fmt.Printf("  $ cove-kbs -listen %s ... -insecure-trust-test-only-root %s  (log: %s)\n", addr, filepath.Join(dir, "sim-snp"), brokerLog.Name())
	if err := broker.Start(); err != nil {
		return err
	}
	defer func() {
		broker.Process.Signal(syscall.SIGTERM)
		broker.Wait()
	}()
	if err := waitForTCP(ctx, addr, 10*time.Second); err != nil {
		return fmt.Errorf("the broker did not start (see %s): %w", brokerLog.Name(), err)
	}
	admin := []string{"--kbs", kbsURL, "--token-file", tokenFile, "--ca-file", filepath.Join(dir, "tls", "ca.pem")}

	step("data owner: create a key, generate synthetic claims, seal them")
	if err := d.cove(ctx, "covectl", append(admin, "key", "create", "claims")...); err != nil {
		return err
	}
	if err := d.cove(ctx, "claims-gen", "-rows", fmt.Sprint(rows), "-o", filepath.Join(dir, "claims.csv")); err != nil {
		return err
	}
	if err := d.cove(ctx, "cove", append([]string{"seal"}, append(admin, "--key", "claims", "-o", filepath.Join(dir, "claims.csv.cove"), filepath.Join(dir, "claims.csv"))...)...); err != nil {
		return err
	}

	step("submitter: make a key for the result and write the job spec")
	recipient, err := d.output(ctx, "cove", "keygen", "-o", filepath.Join(dir, "key.txt"))
	if err != nil {
		return err
	}
	job := fmt.Sprintf(jobTemplate, filepath.Join(cache, "kernel", "vmlinuz"), filepath.Join(bin, "initrd.img"),
		filepath.Join(cache, "ovmf", "OVMF.amdsev.fd"), strings.TrimSpace(recipient), kbsURL)
	jobFile := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(jobFile, []byte(job), 0o644); err != nil {
		return err
	}
	fmt.Printf("  wrote %s\n", jobFile)

	step("broker admin: expect this job's measurement and grant it the key")
	digest, err := d.output(ctx, "cove", "digest", jobFile)
	if err != nil {
		return err
	}
	measurement, err := d.output(ctx, "cove", "measure", jobFile)
	if err != nil {
		return err
	}
	fmt.Printf("  job digest (HOST_DATA): %s\n  expected measurement:   %s\n", strings.TrimSpace(digest), strings.TrimSpace(measurement))
	policy := fmt.Sprintf("# Release policy of the demo job.\nmeasurements:\n  - %s\nallow_debug: false\n# The demo's software TEE; never in production.\ninsecure_allow_test_only_root: true\n", strings.TrimSpace(measurement))
	policyFile := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(policy), 0o644); err != nil {
		return err
	}
	if err := d.cove(ctx, "covectl", append(admin, "policy", "set", "claims-policy", policyFile)...); err != nil {
		return err
	}
	if err := d.cove(ctx, "covectl", append(admin, "grant", "claims", "--policy", "claims-policy", "--job-digest", strings.TrimSpace(digest))...); err != nil {
		return err
	}

	step("submitter: run the job in an attested VM")
	if err := d.cove(ctx, "cove", "run", "-v", jobFile); err != nil {
		return err
	}

	step("submitter: unseal the result")
	totals, err := d.output(ctx, "cove", "unseal", "--identity", filepath.Join(dir, "key.txt"), filepath.Join(dir, "claims-totals.result.cove"))
	if err != nil {
		return err
	}
	fmt.Print(totals)
	return nil
}

func step(s string) { fmt.Printf("\n== %s\n", s) }

// cove runs one of the built binaries, showing the command line.
func (d *demo) cove(ctx context.Context, name string, args ...string) error {
	fmt.Printf("  $ %s %s\n", name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, name), args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = d.env
	cmd.Dir = d.dir
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// output runs one of the built binaries and returns its standard output.
func (d *demo) output(ctx context.Context, name string, args ...string) (string, error) {
	fmt.Printf("  $ %s %s\n", name, strings.Join(args, " "))
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, name), args...)
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	cmd.Env = d.env
	cmd.Dir = d.dir
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return out.String(), nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitForTCP(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
