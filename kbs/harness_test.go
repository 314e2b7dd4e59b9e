package kbs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cove.dev/cove/attest/simsnp"
	"cove.dev/cove/kbs/client"
	"cove.dev/cove/test/vaulttest"
)

// Values that the test policy expects and the test device reports.
var (
	testMeasurement = [48]byte{0x6d, 0x28, 0x78, 0x13, 47: 0xfa}
	testJobDigest   = [32]byte{0xc0, 0x7e, 31: 0x01}
	testDataKey     = bytes.Repeat([]byte{0x5a}, 32)
)

const testAdminToken = "test-admin-token-0123456789abcdef"

var (
	chainOnce sync.Once
	testChain *simsnp.Chain
	chainErr  error
)

// simChain returns one sim-snp chain for the whole test binary, because
// creating one generates two RSA-4096 keys.
func simChain(t testing.TB) *simsnp.Chain {
	t.Helper()
	chainOnce.Do(func() { testChain, chainErr = simsnp.NewChain() })
	if chainErr != nil {
		t.Fatal(chainErr)
	}
	return testChain
}

func testPolicyYAML() string {
	return "measurements:\n  - " + hex.EncodeToString(testMeasurement[:]) + "\n" +
		"allow_debug: false\n" +
		"min_tcb:\n  boot_loader: 3\n  snp: 8\n  microcode: 115\n" +
		"insecure_allow_test_only_root: true\n"
}

// broker is a broker under test on loopback HTTPS with a real Vault.
type broker struct {
	t        testing.TB
	vault    *vaulttest.Server
	server   *Server
	https    *httptest.Server
	dir      string
	caPEM    []byte
	logs     *syncBuffer
	resource string
}

type brokerOptions struct {
	persistentVault bool
	untrustedRoot   bool
}

func startBroker(t testing.TB, opts brokerOptions) *broker {
	t.Helper()
	var v *vaulttest.Server
	if opts.persistentVault {
		v = vaulttest.Persistent(t)
	} else {
		v = vaulttest.Dev(t)
	}
	role := v.SetupBroker(t)

	dir := t.TempDir()
	roleIDFile, secretIDFile, err := role.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	adminFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(adminFile, []byte(testAdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsFiles, err := WriteTestTLS(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(tlsFiles.CAFile)
	if err != nil {
		t.Fatal(err)
	}

	b := &broker{t: t, vault: v, dir: dir, caPEM: caPEM, logs: &syncBuffer{}}
	cfg := Config{
		Vault: VaultConfig{
			Address:      v.Addr,
			RoleIDFile:   roleIDFile,
			SecretIDFile: secretIDFile,
			Timeout:      time.Second,
		},
		AdminTokenFile: adminFile,
		StateDir:       filepath.Join(dir, "state"),
		Logger:         slog.New(slog.NewJSONHandler(b.logs, nil)),
	}
	if !opts.untrustedRoot {
		cfg.InsecureTestOnlyRoots = simChain(t).Roots()
	}
	b.server, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}

	cert, err := tls.LoadX509KeyPair(tlsFiles.CertFile, tlsFiles.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	b.https = httptest.NewUnstartedServer(b.server)
	b.https.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	b.https.StartTLS()
	t.Cleanup(b.https.Close)

	b.resource = b.provision("demo", testPolicyYAML(), testJobDigest)
	return b
}

// provision creates Transit key name, sets policy and grant through the
// admin API, wraps testDataKey and returns its resource path.
func (b *broker) provision(name, policy string, digests ...[32]byte) string {
	b.t.Helper()
	b.admin(http.MethodPost, "/admin/v0/keys/"+name, nil, http.StatusCreated)
	b.admin(http.MethodPut, "/admin/v0/policies/"+name, []byte(policy), http.StatusOK)
	var hexDigests []string
	for _, d := range digests {
		hexDigests = append(hexDigests, hex.EncodeToString(d[:]))
	}
	grant, _ := json.Marshal(Grant{Policy: name, JobDigests: hexDigests})
	b.admin(http.MethodPut, "/admin/v0/grants/"+name, grant, http.StatusOK)
	wrapReq, _ := json.Marshal(WrapRequest{DataKey: base64.StdEncoding.EncodeToString(testDataKey)})
	var wrapped WrapResponse
	if err := json.Unmarshal(b.admin(http.MethodPost, "/admin/v0/keys/"+name+"/wrap", wrapReq, http.StatusOK), &wrapped); err != nil {
		b.t.Fatal(err)
	}
	if !strings.HasPrefix(wrapped.WrappedKey, "vault:v1:") {
		b.t.Fatalf("wrapped key %q does not start with vault:v1:", wrapped.WrappedKey)
	}
	return wrapped.Resource
}

func (b *broker) admin(method, path string, body []byte, wantStatus int) []byte {
	b.t.Helper()
	req, err := http.NewRequest(method, b.https.URL+path, bytes.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := b.httpClient().Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		b.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, wantStatus, out)
	}
	return out
}

// httpClient trusts only the test CA.
func (b *broker) httpClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b.caPEM)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func (b *broker) client() *client.Client {
	b.t.Helper()
	c, err := client.New(b.https.URL, client.Options{CACertPEM: b.caPEM})
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(c.Close)
	return c
}

// device returns a sim-snp device launched with p; zero fields of p take
// the values the test policy and grant expect.
func device(t testing.TB, p simsnp.LaunchParams) *simsnp.Device {
	t.Helper()
	if p.Measurement == ([48]byte{}) {
		p.Measurement = testMeasurement
	}
	if p.HostData == ([32]byte{}) {
		p.HostData = testJobDigest
	}
	d, err := simsnp.NewDevice(simChain(t), p)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func evidenceFrom(d *simsnp.Device) client.EvidenceFunc {
	return func(reportData [64]byte) (json.RawMessage, error) {
		ev, err := d.Report(reportData)
		if err != nil {
			return nil, err
		}
		return json.Marshal(ev)
	}
}

// attested returns a client that attested with evidence from d.
func (b *broker) attested(d *simsnp.Device) *client.Client {
	b.t.Helper()
	c := b.client()
	if err := c.Attest(context.Background(), evidenceFrom(d)); err != nil {
		b.t.Fatalf("Attest: %v", err)
	}
	return c
}

// refusal returns the broker's refusal in err, failing the test when err
// is nil or not a refusal.
func refusal(t testing.TB, err error) *client.ResourceError {
	t.Helper()
	if err == nil {
		t.Fatal("request succeeded, want a refusal")
	}
	re, ok := err.(*client.ResourceError)
	if !ok {
		t.Fatalf("error %v (%T) is not a *client.ResourceError", err, err)
	}
	return re
}

// logEvents returns the broker's log events with the given message.
func (b *broker) logEvents(msg string) []map[string]any {
	var events []map[string]any
	for _, line := range strings.Split(b.logs.String(), "\n") {
		if line == "" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			b.t.Fatalf("log line is not JSON: %s", line)
		}
		if ev["msg"] == msg {
			events = append(events, ev)
		}
	}
	return events
}

// syncBuffer is a bytes.Buffer safe for the broker's concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
