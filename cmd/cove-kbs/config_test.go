package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const configYAML = `listen: 127.0.0.1:9443
tls_cert_file: /etc/cove/kbs.pem
tls_key_file: /etc/cove/kbs-key.pem
vault:
  address: http://127.0.0.1:8200
  role_id_file: /etc/cove/role_id
  secret_id_file: /etc/cove/secret_id
  timeout: 2s
admin_token_file: /etc/cove/admin-token
state_dir: /var/lib/cove-kbs
session_ttl: 2m
insecure_trust_test_only_root: /tmp/simsnp
`

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kbs.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigFileWithFlagOverrides(t *testing.T) {
	path := writeConfig(t, configYAML)

	cfg, err := parseArgs([]string{"-config", path, "-vault-addr", "http://127.0.0.1:8300"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9443" {
		t.Errorf("listen = %q, want the file's 127.0.0.1:9443", cfg.Listen)
	}
	if cfg.Vault.Address != "http://127.0.0.1:8300" {
		t.Errorf("vault address = %q, want the flag's value", cfg.Vault.Address)
	}
	if cfg.Vault.Timeout != 2*time.Second {
		t.Errorf("vault timeout = %v, want 2s", cfg.Vault.Timeout)
	}
	if cfg.SessionTTL != 2*time.Minute {
		t.Errorf("session TTL = %v, want 2m", cfg.SessionTTL)
	}
	if cfg.Vault.TransitMount != "transit" {
		t.Errorf("transit mount = %q, want the default transit", cfg.Vault.TransitMount)
	}
	if cfg.InsecureTrustTestOnlyRoot != "/tmp/simsnp" {
		t.Errorf("insecure_trust_test_only_root = %q", cfg.InsecureTrustTestOnlyRoot)
	}
}

func TestConfigRejectsUnknownKey(t *testing.T) {
	path := writeConfig(t, configYAML+"vault_address: x\n")
	_, err := parseArgs([]string{"-config", path})
	if err == nil || !strings.Contains(err.Error(), "vault_address") {
		t.Errorf("error = %v, want one naming the unknown key vault_address", err)
	}
}

func TestConfigNamesMissingSettings(t *testing.T) {
	_, err := parseArgs([]string{"-listen", "127.0.0.1:8443"})
	if err == nil {
		t.Fatal("parseArgs accepted a configuration without TLS, Vault and state settings")
	}
	for _, want := range []string{"-tls-cert (tls_cert_file)", "-vault-addr (vault.address)", "-state-dir (state_dir)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
