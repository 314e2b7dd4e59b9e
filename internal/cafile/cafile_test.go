package cafile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTLSConfigWithoutFileUsesSystemRoots(t *testing.T) {
	cfg, err := TLSConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs != nil {
		t.Error("RootCAs is set without a CA file")
	}
}

func TestTLSConfigRejectsFileWithoutCertificate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(path, []byte("not a certificate\n"), 0o644)
	_, err := TLSConfig(path)
	if err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("TLSConfig error = %v, want one saying the file has no certificate", err)
	}
	if _, err := TLSConfig(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Fatal("TLSConfig accepted a missing file")
	}
}
