package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"cove.dev/cove/attest/simsnp"
	"cove.dev/cove/kbs"
	"cove.dev/cove/kbs/client"
	"cove.dev/cove/test/vaulttest"
)

// TestBrokerServesRelease runs the broker as main runs it, from a
// configuration file, with a real Vault and a sim-snp chain stored in a
// folder, and releases a key to a sim-snp guest.
func TestBrokerServesRelease(t *testing.T) {
	v := vaulttest.Dev(t)
	role := v.SetupBroker(t)
	dir := t.TempDir()
	roleIDFile, secretIDFile, err := role.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	tlsFiles, err := kbs.WriteTestTLS(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	adminToken := "main-test-admin-token-0123456789"
	adminFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(adminFile, []byte(adminToken), 0o600); err != nil {
		t.Fatal(err)
	}
	chainDir := filepath.Join(dir, "simsnp")
	chain, err := simsnp.LoadOrCreateChain(chainDir)
	if err != nil {
		t.Fatal(err)
	}

	config := "listen: 127.0.0.1:0\n" +
		"tls_cert_file: " + tlsFiles.CertFile + "\n" +
		"tls_key_file: " + tlsFiles.KeyFile + "\n" +
		"vault:\n  address: " + v.Addr + "\n  role_id_file: " + roleIDFile + "\n  secret_id_file: " + secretIDFile + "\n" +
		"admin_token_file: " + adminFile + "\n" +
		"state_dir: " + filepath.Join(dir, "state") + "\n" +
		"insecure_trust_test_only_root: " + chainDir + "\n"
	cfg, err := parseArgs([]string{"-config", writeConfig(t, config)})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("broker exited: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("broker shutdown: %v", err)
		}
	}()

	caPEM, _ := os.ReadFile(tlsFiles.CAFile)
	guest, err := client.New("https://"+addr, client.Options{CACertPEM: caPEM})
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	admin := func(method, path string, body []byte) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+addr+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		httpClient := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		httpClient.Transport.(*http.Transport).TLSClientConfig = tlsClientConfig(t, caPEM)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: status %d: %s", method, path, resp.StatusCode, out)
		}
		return out
	}

	measurement := [48]byte{1, 2, 3}
	jobDigest := [32]byte{9, 8, 7}
	dataKey := make([]byte, 32)
	_, _ = rand.Read(dataKey)
	policy := "measurements: [\"" + hex.EncodeToString(measurement[:]) + "\"]\ninsecure_allow_test_only_root: true\n"
	admin(http.MethodPost, "/admin/v0/keys/job", nil)
	admin(http.MethodPut, "/admin/v0/policies/dev", []byte(policy))
	admin(http.MethodPut, "/admin/v0/grants/job", []byte(`{"policy":"dev","job_digests":["`+hex.EncodeToString(jobDigest[:])+`"]}`))
	var wrapped kbs.WrapResponse
	_ = json.Unmarshal(admin(http.MethodPost, "/admin/v0/keys/job/wrap",
		[]byte(`{"data_key":"`+base64.StdEncoding.EncodeToString(dataKey)+`"}`)), &wrapped)

	device, err := simsnp.NewDevice(chain, simsnp.LaunchParams{Measurement: measurement, HostData: jobDigest})
	if err != nil {
		t.Fatal(err)
	}
	err = guest.Attest(ctx, func(reportData [64]byte) (json.RawMessage, error) {
		ev, err := device.Report(reportData)
		if err != nil {
			return nil, err
		}
		return json.Marshal(ev)
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := guest.Resource(ctx, wrapped.Resource)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, dataKey) {
		t.Errorf("released key = %x, want %x", got, dataKey)
	}
}

func tlsClientConfig(t *testing.T, caPEM []byte) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA file contains no certificate")
	}
	return &tls.Config{RootCAs: pool}
}
