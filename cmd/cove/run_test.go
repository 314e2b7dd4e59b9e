package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cove.dev/cove/hypervisor/chdouble"
	"cove.dev/cove/internal/jobspec"
	"cove.dev/cove/internal/sealed"
)

// writeDryRunJob writes a job whose artifacts are small stand-ins: dry
// runs hash them and compute the measurement, but boot nothing. The
// firmware is a 4 KiB AmdSev OVMF suffix with real SEV metadata.
func writeDryRunJob(t *testing.T, edit func(string) string) string {
	t.Helper()
	dir := t.TempDir()
	firmware, err := os.ReadFile("../../measurements/testdata/ovmf_AmdSev_suffix.bin")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"vmlinuz": []byte("kernel"), "initrd.img": []byte("initrd"), "ovmf.fd": firmware}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key := make([]byte, sealed.DataKeySize)
	rand.Read(key)
	f, err := os.Create(filepath.Join(dir, "claims.csv.cove"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := sealed.NewWriter(f, key, sealed.Header{Key: "claims", WrappedKey: "vault:v1:AAAA", KBS: "https://127.0.0.1:8443"})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("claim_id\n"))
	w.Close()
	f.Close()
	spec := `version: 1
name: claims-totals
guest:
  kernel: vmlinuz
  initrd: initrd.img
  cmdline: console=ttyS0
  firmware: ovmf.fd
  vcpus: 2
  memory_mib: 512
tee: sim-snp
inputs:
  - name: claims
    path: claims.csv.cove
command: [/usr/bin/claims-totals, /run/cove/inputs/claims]
output:
  recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
kbs:
  url: https://127.0.0.1:8443
`
	if edit != nil {
		spec = edit(spec)
	}
	path := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDryRunPrintsCloudHypervisorBody(t *testing.T) {
	job := writeDryRunJob(t, func(s string) string { return strings.Replace(s, "tee: sim-snp", "tee: snp", 1) })
	var stdout, stderr bytes.Buffer
	err := runCommand(context.Background(), []string{"--dry-run", "--hypervisor", "cloud-hypervisor", job}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("cove run --dry-run: %v: %s", err, stderr.String())
	}
	if err := chdouble.ValidateVMConfig(stdout.Bytes()); err != nil {
		t.Errorf("the body does not validate against the Cloud Hypervisor API: %v\n%s", err, stdout.String())
	}
	var body struct {
		Payload struct {
			HostData string `json:"host_data"`
			Cmdline  string `json:"cmdline"`
		} `json:"payload"`
		Platform struct {
			SevSnp bool `json:"sev_snp"`
		} `json:"platform"`
		Cpus struct {
			BootVcpus int `json:"boot_vcpus"`
		} `json:"cpus"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	spec, err := jobspec.Load(job)
	if err != nil {
		t.Fatal(err)
	}
	var digest bytes.Buffer
	if err := digestCommand(context.Background(), []string{job}, &digest, &stderr); err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(digest.String()); body.Payload.HostData != want {
		t.Errorf("host_data = %q, want the job digest %q", body.Payload.HostData, want)
	}
	if !body.Platform.SevSnp {
		t.Error("platform.sev_snp is not set for an snp job")
	}
	if body.Cpus.BootVcpus != spec.Guest.VCPUs {
		t.Errorf("boot_vcpus = %d, want %d", body.Cpus.BootVcpus, spec.Guest.VCPUs)
	}
	if body.Payload.Cmdline != "console=ttyS0" {
		t.Errorf("cmdline = %q", body.Payload.Cmdline)
	}
}

func TestDryRunSimSNPKeepsHostDataOnHost(t *testing.T) {
	job := writeDryRunJob(t, nil)
	var stdout, stderr bytes.Buffer
	err := runCommand(context.Background(), []string{"--dry-run", "--hypervisor", "cloud-hypervisor", job}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("cove run --dry-run: %v: %s", err, stderr.String())
	}
	if err := chdouble.ValidateVMConfig(stdout.Bytes()); err != nil {
		t.Errorf("the body does not validate against the Cloud Hypervisor API: %v", err)
	}
	// The software TEE signs HOST_DATA on the host side, so the VM itself
	// is an ordinary one.
	if strings.Contains(stdout.String(), "host_data") || strings.Contains(stdout.String(), "sev_snp") {
		t.Errorf("a sim-snp body asks Cloud Hypervisor for SEV-SNP: %s", stdout.String())
	}
}

func TestRunRejectsInvalidSpecNamingField(t *testing.T) {
	tests := []struct{ old, new, field string }{
		{"vcpus: 2", "vcpus: 0", "guest.vcpus"},
		{"tee: sim-snp", "tee: nitro", "tee"},
		{"recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p", "recipient: someone", "output.recipient"},
		{"path: claims.csv.cove", "path: missing.cove", "inputs[0].path"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			job := writeDryRunJob(t, func(s string) string { return strings.Replace(s, tt.old, tt.new, 1) })
			var stdout, stderr bytes.Buffer
			err := runCommand(context.Background(), []string{"--dry-run", "--hypervisor", "cloud-hypervisor", job}, &stdout, &stderr)
			if err == nil {
				t.Fatalf("cove run accepted an invalid spec and printed %s", stdout.String())
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name the field %s", err, tt.field)
			}
			if stdout.Len() != 0 {
				t.Errorf("printed a body for an invalid spec: %s", stdout.String())
			}
		})
	}
}

func TestDigestIndependentOfFolder(t *testing.T) {
	a := writeDryRunJob(t, nil)
	b := writeDryRunJob(t, nil)
	var da, db, stderr bytes.Buffer
	if err := digestCommand(context.Background(), []string{a}, &da, &stderr); err != nil {
		t.Fatal(err)
	}
	if err := digestCommand(context.Background(), []string{b}, &db, &stderr); err != nil {
		t.Fatal(err)
	}
	// Same spec and artifacts, same resource: the same digest on two
	// folders, since paths are not part of it.
	if da.String() != db.String() {
		t.Errorf("digests differ for the same job in two folders: %s vs %s", da.String(), db.String())
	}
	if _, err := hex.DecodeString(strings.TrimSpace(da.String())); err != nil || len(strings.TrimSpace(da.String())) != 64 {
		t.Errorf("digest %q is not 64 hex characters", da.String())
	}
}
