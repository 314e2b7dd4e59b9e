package sealcmd

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"cove.dev/cove/internal/sealed"
)

const (
	testToken   = "s3cr3t-admin-token"
	testWrapped = "vault:v1:bm90IGEgcmVhbCBjaXBoZXJ0ZXh0IGJ1dCB3ZWxsIGZvcm1lZA=="
)

// fakeBroker is a TLS server that replaces the broker's wrap endpoint in
// tests and checks every request against the admin API contract.
type fakeBroker struct {
	*httptest.Server
	t      testing.TB
	caFile string

	mu       sync.Mutex
	requests int
	dataKey  []byte

	// status and body, if status is not 0, replace the success response.
	status int
	body   string
}

func newFakeBroker(t testing.TB) *fakeBroker {
	b := &fakeBroker{t: t}
	b.Server = httptest.NewTLSServer(http.HandlerFunc(b.serveWrap))
	t.Cleanup(b.Close)

	b.caFile = filepath.Join(t.TempDir(), "ca.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.Certificate().Raw})
	if err := os.WriteFile(b.caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *fakeBroker) serveWrap(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests++

	fail := func(format string, args ...any) {
		b.t.Errorf("wrap request: "+format, args...)
		http.Error(w, "bad request", http.StatusBadRequest)
	}
	if r.Method != http.MethodPost {
		fail("method = %s, expected POST", r.Method)
		return
	}
	if r.URL.Path != "/admin/v0/keys/claims-2024/wrap" {
		fail("path = %q, expected /admin/v0/keys/claims-2024/wrap", r.URL.Path)
		return
	}
	if r.URL.RawQuery != "" {
		fail("query = %q, expected none", r.URL.RawQuery)
		return
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
		fail("Authorization = %q, expected the bearer token", got)
		return
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		fail("Content-Type = %q, expected application/json", got)
		return
	}

	body, err := io.ReadAll(r.Body)
	if err != nil {
		fail("reading body: %v", err)
		return
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		fail("body %q is not a JSON object: %v", body, err)
		return
	}
	if len(fields) != 1 {
		fail("body has %d fields, expected only data_key", len(fields))
		return
	}
	var encoded string
	if err := json.Unmarshal(fields["data_key"], &encoded); err != nil {
		fail("data_key is not a JSON string: %v", err)
		return
	}
	key, err := base64.StdEncoding.Strict().DecodeString(encoded)
	if err != nil {
		fail("data_key is not standard base64: %v", err)
		return
	}
	if len(key) != sealed.DataKeySize {
		fail("data_key is %d bytes, expected %d", len(key), sealed.DataKeySize)
		return
	}
	b.dataKey = key

	if b.status != 0 {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(b.status)
		io.WriteString(w, b.body)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"wrapped_key": testWrapped})
}

type sealRun struct {
	dir, in, out, tokenFile string
}

func newSealRun(t testing.TB, plaintext []byte) sealRun {
	t.Helper()
	dir := t.TempDir()
	run := sealRun{
		dir:       dir,
		in:        filepath.Join(dir, "claims.csv"),
		out:       filepath.Join(dir, "claims.cove"),
		tokenFile: filepath.Join(dir, "token"),
	}
	if err := os.WriteFile(run.in, plaintext, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(run.tokenFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return run
}

func (run sealRun) args(b *fakeBroker) []string {
	return []string{
		"--kbs", b.URL, "--key", "claims-2024", "--token-file", run.tokenFile,
		"--ca-file", b.caFile, "-o", run.out, run.in,
	}
}

func runSeal(args []string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = Seal(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func assertNoOutput(t *testing.T, out string) {
	t.Helper()
	for _, path := range []string{out, out + ".partial"} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a failed seal (stat error: %v)", filepath.Base(path), err)
		}
	}
}

func TestSealWritesDecryptableFile(t *testing.T) {
	broker := newFakeBroker(t)
	plaintext := bytes.Repeat([]byte("C00000001,Ada Byron,1961-04-12,E11.9,125.00\n"), 60000) // 2.6 MB
	run := newSealRun(t, plaintext)

	stdout, stderr, err := runSeal(run.args(broker))
	if err != nil {
		t.Fatalf("Seal: %v\nstderr: %s", err, stderr)
	}
	if broker.requests != 1 {
		t.Fatalf("broker got %d wrap requests, expected 1", broker.requests)
	}

	encodedKey := base64.StdEncoding.EncodeToString(broker.dataKey)
	if strings.Contains(stdout+stderr, encodedKey) {
		t.Error("Seal printed the data key")
	}

	f, err := os.Open(run.out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, r, err := sealed.ReadHeader(f)
	if err != nil {
		t.Fatal(err)
	}
	want := sealed.Header{
		Key:        "claims-2024",
		WrappedKey: testWrapped,
		Resource:   sealed.ResourcePath("claims-2024", testWrapped),
		KBS:        broker.URL,
		Stream:     sealed.StreamAES256GCMHKDF1MB,
	}
	if h != want {
		t.Errorf("header = %+v, expected %+v", h, want)
	}

	body, err := r.Decrypt(broker.dataKey)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, plaintext) {
		t.Errorf("decrypted %d bytes that differ from the %d-byte input", len(got), len(plaintext))
	}

	if _, err := os.Stat(run.out + ".partial"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("claims.cove.partial still exists (stat error: %v)", err)
	}
}

func TestSealAcceptsFlagsAfterInput(t *testing.T) {
	broker := newFakeBroker(t)
	run := newSealRun(t, []byte("x"))
	args := []string{
		run.in, "--kbs", broker.URL + "/", "--key", "claims-2024", "--token-file", run.tokenFile,
		"--ca-file", broker.caFile, "-o", run.out,
	}
	if _, stderr, err := runSeal(args); err != nil {
		t.Fatalf("Seal: %v\nstderr: %s", err, stderr)
	}
	if _, err := os.Stat(run.out); err != nil {
		t.Error(err)
	}
}

func TestSealBrokerErrorLeavesNoFile(t *testing.T) {
	tests := []struct {
		status int
		body   string
		errSub string
	}{
		{http.StatusForbidden, `{"type":"https://github.com/confidential-containers/kbs/errors/PolicyDeny",` +
			`"detail":"token has no admin scope"}`, "token has no admin scope"},
		{http.StatusNotFound, `{"detail":"no such key"}`, "create the Transit key first"},
		{http.StatusServiceUnavailable, `{"detail":"vault sealed"}`, "cannot reach Vault"},
		{http.StatusInternalServerError, "oops", "500 Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			broker := newFakeBroker(t)
			broker.status, broker.body = tt.status, tt.body
			run := newSealRun(t, []byte("x"))

			_, _, err := runSeal(run.args(broker))
			if err == nil {
				t.Fatal("Seal succeeded, expected an error")
			}
			if !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("error %q does not mention %q", err, tt.errSub)
			}
			assertNoOutput(t, run.out)
		})
	}
}

func TestSealRejectsInvalidWrapResponse(t *testing.T) {
	broker := newFakeBroker(t)
	broker.status, broker.body = http.StatusOK, `{"wrapped_key":"plaintext-key"}`
	run := newSealRun(t, []byte("x"))

	_, _, err := runSeal(run.args(broker))
	if err == nil || !strings.Contains(err.Error(), "wrapped_key") {
		t.Errorf("error = %v, expected one about wrapped_key", err)
	}
	assertNoOutput(t, run.out)
}

func TestSealRejectsUntrustedCertificate(t *testing.T) {
	broker := newFakeBroker(t)
	run := newSealRun(t, []byte("x"))
	args := []string{"--kbs", broker.URL, "--key", "claims-2024", "--token-file", run.tokenFile, "-o", run.out, run.in}

	_, _, err := runSeal(args)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("error = %v, expected a certificate error", err)
	}
	if broker.requests != 0 {
		t.Errorf("broker got %d requests over an untrusted connection", broker.requests)
	}
	assertNoOutput(t, run.out)
}

func TestSealRejectsRedirect(t *testing.T) {
	broker := newFakeBroker(t)
	redirector := httptest.NewTLSServer(http.RedirectHandler(broker.URL+"/admin/v0/keys/claims-2024/wrap",
		http.StatusTemporaryRedirect))
	defer redirector.Close()

	run := newSealRun(t, []byte("x"))
	caFile := filepath.Join(run.dir, "redirector.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: redirector.Certificate().Raw})
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--kbs", redirector.URL, "--key", "claims-2024", "--token-file", run.tokenFile,
		"--ca-file", caFile, "-o", run.out, run.in}

	_, _, err := runSeal(args)
	if err == nil || !strings.Contains(err.Error(), "redirected") {
		t.Errorf("error = %v, expected a redirect error", err)
	}
	if broker.requests != 0 {
		t.Errorf("redirect target got %d requests, expected none", broker.requests)
	}
	assertNoOutput(t, run.out)
}

func TestSealUsageErrors(t *testing.T) {
	broker := newFakeBroker(t)
	run := newSealRun(t, []byte("x"))
	base := func(drop string, extra ...string) []string {
		all := map[string]string{
			"--kbs": broker.URL, "--key": "claims-2024", "--token-file": run.tokenFile,
			"--ca-file": broker.caFile, "-o": run.out,
		}
		var args []string
		for _, name := range []string{"--kbs", "--key", "--token-file", "--ca-file", "-o"} {
			if name != drop {
				args = append(args, name, all[name])
			}
		}
		return append(args, extra...)
	}

	tests := []struct {
		name   string
		args   []string
		errSub string
	}{
		{"no input", base(""), "missing input file"},
		{"two inputs", base("", run.in, run.in), "expected one input file"},
		{"no kbs", base("--kbs", run.in), "missing --kbs"},
		{"no key", base("--key", run.in), "missing --key"},
		{"no output", base("-o", run.in), "missing -o"},
		{"bad key name", append(base(""), "--key", "Claims/2024", run.in), "invalid --key"},
		{"http broker", append(base(""), "--kbs", "http://127.0.0.1:1", run.in), "must start with https://"},
		{"missing input", base("", filepath.Join(run.dir, "absent.csv")), "opening input"},
		{"input is directory", base("", run.dir), "is a directory"},
		{"missing token file", append(base(""), "--token-file", filepath.Join(run.dir, "absent"), run.in),
			"--token-file"},
		{"empty CA file", append(base(""), "--ca-file", run.in, run.in), "contains no PEM certificate"},
		{"unknown flag", append(base(""), "--recipient", "x", run.in), "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runSeal(tt.args)
			if err == nil {
				t.Fatal("Seal succeeded, expected an error")
			}
			if !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("error %q does not mention %q", err, tt.errSub)
			}
			assertNoOutput(t, run.out)
		})
	}
	if broker.requests != 0 {
		t.Errorf("broker got %d requests from invalid invocations, expected none", broker.requests)
	}
}

func TestSealTokenFileRules(t *testing.T) {
	broker := newFakeBroker(t)
	run := newSealRun(t, []byte("x"))

	for name, content := range map[string]string{"empty": " \n", "two lines": "a\nb\n"} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(run.tokenFile, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := runSeal(run.args(broker))
			if err == nil || !strings.Contains(err.Error(), "--token-file") {
				t.Errorf("error = %v, expected one about --token-file", err)
			}
		})
	}
}

func TestSealHelp(t *testing.T) {
	_, stderr, err := runSeal([]string{"-h"})
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("error = %v, expected flag.ErrHelp", err)
	}
	for _, want := range []string{"Usage: cove seal", "-kbs URL", "-ca-file FILE", "OUT.partial"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("help text does not contain %q:\n%s", want, stderr)
		}
	}
}

func TestSealCanceledLeavesNoFile(t *testing.T) {
	broker := newFakeBroker(t)
	run := newSealRun(t, []byte("x"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	err := Seal(ctx, run.args(broker), io.Discard, io.Discard)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, expected context.Canceled", err)
	}
	assertNoOutput(t, run.out)
}
