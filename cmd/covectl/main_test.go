package main

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cove.dev/cove/kbs"
)

var policyYAML = "measurements:\n  - \"" + strings.Repeat("ab", 48) + "\"\n"

// startBroker starts a broker on loopback HTTPS. Its Vault address accepts
// no connections: policies and grants do not need Vault.
func startBroker(t *testing.T) (url, tokenFile, caFile string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tokenFile = write("admin-token", "covectl-test-admin-token-0123456789\n")
	server, err := kbs.New(kbs.Config{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Vault: kbs.VaultConfig{
			Address:      "http://127.0.0.1:1",
			RoleIDFile:   write("role_id", "r"),
			SecretIDFile: write("secret_id", "s"),
		},
		AdminTokenFile: tokenFile,
		StateDir:       filepath.Join(dir, "state"),
	})
	if err != nil {
		t.Fatal(err)
	}
	files, err := kbs.WriteTestTLS(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(server)
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts.URL, tokenFile, files.CAFile
}

func covectl(t *testing.T, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	status = run(args, &out, &errOut)
	return status, out.String(), errOut.String()
}

func TestPolicyAndGrantCommands(t *testing.T) {
	url, tokenFile, caFile := startBroker(t)
	global := []string{"--kbs", url, "--token-file", tokenFile, "--ca-file", caFile}
	policyFile := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(policyFile, []byte(policyYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	digest := strings.Repeat("1f", 32)

	if status, _, stderr := covectl(t, append(global, "policy", "set", "prod", policyFile)...); status != 0 {
		t.Fatalf("policy set: status %d: %s", status, stderr)
	}
	status, stdout, stderr := covectl(t, append(global, "policy", "show", "prod")...)
	if status != 0 {
		t.Fatalf("policy show: status %d: %s", status, stderr)
	}
	if stdout != policyYAML {
		t.Errorf("policy show printed %q, want %q", stdout, policyYAML)
	}

	status, _, stderr = covectl(t, append(global, "grant", "data", "--policy", "prod", "--job-digest", digest)...)
	if status != 0 {
		t.Fatalf("grant: status %d: %s", status, stderr)
	}
	status, stdout, _ = covectl(t, append(global, "grant", "show", "data")...)
	if status != 0 {
		t.Fatalf("grant show: status %d", status)
	}
	if !strings.Contains(stdout, `"policy":"prod"`) || !strings.Contains(stdout, digest) {
		t.Errorf("grant show printed %s, want policy prod and digest %s", stdout, digest)
	}
}

func TestGrantRejectedMessages(t *testing.T) {
	url, tokenFile, caFile := startBroker(t)
	global := []string{"--kbs", url, "--token-file", tokenFile, "--ca-file", caFile}

	cases := []struct {
		name       string
		args       []string
		wantStatus int
		wantErr    string
	}{
		{"missing policy flag", []string{"grant", "k", "--job-digest", strings.Repeat("1f", 32)}, 2, "--policy is missing"},
		{"missing digest", []string{"grant", "k", "--policy", "p"}, 2, "--job-digest is missing"},
		{"unknown policy", []string{"grant", "k", "--policy", "nope", "--job-digest", strings.Repeat("1f", 32)}, 1, `policy "nope" does not exist`},
		{"all-zero digest", []string{"grant", "k", "--policy", "nope", "--job-digest", strings.Repeat("0", 64)}, 1, "all zero"},
		{"unknown command", []string{"key", "delete", "k"}, 2, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, _, stderr := covectl(t, append(global, tc.args...)...)
			if status != tc.wantStatus {
				t.Errorf("status = %d, want %d", status, tc.wantStatus)
			}
			if !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.wantErr)
			}
		})
	}
}

func TestMissingTokenFile(t *testing.T) {
	t.Setenv("COVE_KBS_TOKEN_FILE", "")
	status, _, stderr := covectl(t, "policy", "show", "x")
	if status != 2 {
		t.Errorf("status = %d, want 2", status)
	}
	if !strings.Contains(stderr, "--token-file") {
		t.Errorf("stderr %q does not say how to pass the token", stderr)
	}
}
