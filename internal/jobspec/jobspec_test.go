package jobspec

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validSpec = `
version: 1
name: claims-totals
guest:
  kernel: vmlinuz
  initrd: initrd.img
  cmdline: console=ttyS0
  firmware: OVMF.amdsev.fd
  vcpus: 1
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
  ca_file: ca.pem
`

func TestParseValidSpec(t *testing.T) {
	s, err := Parse([]byte(validSpec))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "claims-totals" || s.Guest.VCPUs != 1 || s.TEE != TEESimSNP {
		t.Errorf("parsed %+v", s)
	}
	if len(s.Inputs) != 1 || s.Inputs[0].Path != "claims.csv.cove" {
		t.Errorf("inputs = %+v", s.Inputs)
	}
}

func TestParseNamesInvalidField(t *testing.T) {
	tests := []struct {
		old, new, field string
	}{
		{"version: 1", "version: 2", "version"},
		{"name: claims-totals", "name: Claims Totals", "name"},
		{"vcpus: 1", "vcpus: 0", "guest.vcpus"},
		{"vcpus: 1", "vcpus: 256", "guest.vcpus"},
		{"memory_mib: 512", "memory_mib: 64", "guest.memory_mib"},
		{"kernel: vmlinuz", "kernel: ''", "guest.kernel"},
		{"firmware: OVMF.amdsev.fd", "firmware: ''", "guest.firmware"},
		{"tee: sim-snp", "tee: sgx", "tee"},
		{"    path: claims.csv.cove", "    path: ''", "inputs[0].path"},
		{"  - name: claims", "  - name: ../etc", "inputs[0].name"},
		{"command: [/usr/bin/claims-totals, /run/cove/inputs/claims]", "command: [claims-totals]", "command[0]"},
		{"command: [/usr/bin/claims-totals, /run/cove/inputs/claims]", "command: []", "command"},
		{"recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p", "recipient: age1nope", "output.recipient"},
		{"url: https://127.0.0.1:8443", "url: http://127.0.0.1:8443", "kbs.url"},
		{"vcpus: 1", "vcpus: 1.5", "guest.vcpus"},
		{"vcpus: 1", "vcpus: 0x1", "guest.vcpus"},
		{"vcpus: 1", "vcpus: one", "guest.vcpus"},
		{"memory_mib: 512", "memory_mib: 512.9", "guest.memory_mib"},
		{"version: 1", "version: 1.9", "version"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			if !strings.Contains(validSpec, tt.old) {
				t.Fatalf("test spec lacks %q", tt.old)
			}
			_, err := Parse([]byte(strings.Replace(validSpec, tt.old, tt.new, 1)))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse error = %v, want a FieldError", err)
			}
			if fe.Field != tt.field {
				t.Errorf("error names field %q, want %q (%v)", fe.Field, tt.field, err)
			}
		})
	}
}

func TestParseRejectsSecondDocument(t *testing.T) {
	_, err := Parse([]byte(validSpec + "---\nname: other\n"))
	if err == nil || !strings.Contains(err.Error(), "more than one YAML document") {
		t.Fatalf("Parse error = %v, want one about a second document", err)
	}
}

func TestParseRejectsUnknownField(t *testing.T) {
	_, err := Parse([]byte(strings.Replace(validSpec, "vcpus: 1", "vcpu: 1", 1)))
	if err == nil || !strings.Contains(err.Error(), "vcpu") {
		t.Fatalf("Parse error = %v, want one naming the unknown field vcpu", err)
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func writeArtifacts(t *testing.T) *Spec {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{"vmlinuz": "kernel", "initrd.img": "initrd", "OVMF.amdsev.fd": "firmware", "ca.pem": "ca"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(path, []byte(validSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCanonicalNamesArtifactsByDigest(t *testing.T) {
	s := writeArtifacts(t)
	c, err := s.Canonical([]string{"cove/claims/abc"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"command":["/usr/bin/claims-totals","/run/cove/inputs/claims"],"cove_job":1,` +
		`"guest":{"cmdline":"console=ttyS0","firmware_sha256":"` + sha("firmware") + `","initrd_sha256":"` + sha("initrd") +
		`","kernel_sha256":"` + sha("kernel") + `","memory_mib":512,"vcpus":1},` +
		`"inputs":[{"name":"claims","resource":"cove/claims/abc"}],"kbs_ca_sha256":"` + sha("ca") + `","kbs_url":"https://127.0.0.1:8443",` +
		`"name":"claims-totals","output":{"recipient":"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"},"tee":"sim-snp"}`
	if string(b) != want {
		t.Errorf("canonical =\n%s\nwant\n%s", b, want)
	}
	back, err := ParseCanonical(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Inputs[0].Resource != "cove/claims/abc" || back.Command[0] != "/usr/bin/claims-totals" {
		t.Errorf("ParseCanonical = %+v", back)
	}
}

func TestDigestChangesWithCommand(t *testing.T) {
	s := writeArtifacts(t)
	c1, _ := s.Canonical([]string{"cove/claims/abc"})
	b1, _ := c1.Bytes()
	s.Command = []string{"/bin/sh", "-c", "cat /run/cove/inputs/claims"}
	c2, _ := s.Canonical([]string{"cove/claims/abc"})
	b2, _ := c2.Bytes()
	if DigestHex(b1) == DigestHex(b2) {
		t.Fatal("a different command gave the same job digest")
	}
	if len(DigestHex(b1)) != 64 {
		t.Errorf("DigestHex length = %d, want 64", len(DigestHex(b1)))
	}
}

func TestDigestChangesWithBrokerCA(t *testing.T) {
	s := writeArtifacts(t)
	c1, _ := s.Canonical([]string{"cove/claims/abc"})
	b1, _ := c1.Bytes()
	if err := os.WriteFile(filepath.Join(s.Dir, "ca.pem"), []byte("another ca"), 0o644); err != nil {
		t.Fatal(err)
	}
	c2, _ := s.Canonical([]string{"cove/claims/abc"})
	b2, _ := c2.Bytes()
	if DigestHex(b1) == DigestHex(b2) {
		t.Fatal("a different broker CA gave the same job digest")
	}
}

func TestPathExpandsCoveCacheDefault(t *testing.T) {
	t.Setenv("COVE_CACHE", "")
	os.Unsetenv("COVE_CACHE")
	t.Setenv("XDG_CACHE_HOME", "/var/cache/test")
	s := &Spec{Dir: "/jobs"}
	if got := s.Path("${COVE_CACHE}/kernel/vmlinuz"); got != "/var/cache/test/cove/kernel/vmlinuz" {
		t.Errorf("Path = %q, want the default cache folder", got)
	}
	if got := s.Path("initrd.img"); got != "/jobs/initrd.img" {
		t.Errorf("Path = %q, want it relative to the spec's folder", got)
	}
}
