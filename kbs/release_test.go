package kbs

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"cove.dev/cove/attest/simsnp"
)

func TestReleaseWithSimSNPReport(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	c := b.attested(device(t, simsnp.LaunchParams{}))

	got, err := c.Resource(context.Background(), b.resource)
	if err != nil {
		t.Fatalf("Resource: %v", err)
	}
	if !bytes.Equal(got, testDataKey) {
		t.Errorf("data key = %x, want %x", got, testDataKey)
	}

	releases := b.logEvents("release")
	if len(releases) != 1 {
		t.Fatalf("got %d release log events, want 1: %s", len(releases), b.logs)
	}
	ev := releases[0]
	if ev["verdict"] != "allow" {
		t.Errorf("release verdict = %v, want allow", ev["verdict"])
	}
	if ev["job"] != "c07e000000000000000000000000000000000000000000000000000000000001" {
		t.Errorf("release job = %v, want the test job digest", ev["job"])
	}
	if ev["insecure_test_only_root"] != true {
		t.Errorf("release event lacks insecure_test_only_root=true: %v", ev)
	}
	for _, secret := range []string{c.Token(), "WlpaWlpa", strings.Split(b.resource, "/")[2]} {
		if strings.Contains(b.logs.String(), secret) {
			t.Errorf("broker log contains a secret %.20q...", secret)
		}
	}
}

func TestReleaseWithSessionCookie(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	p := newProtocol(t, b)
	nonce := p.auth()
	teeKey := p.newTEEKey()
	status, _ := p.attest(nonce, teeKey, device(t, simsnp.LaunchParams{}), nil)
	if status != http.StatusOK {
		t.Fatalf("attest status %d, want 200", status)
	}

	status, body := p.get("/kbs/v0/resource/" + b.resource)
	if status != http.StatusOK {
		t.Fatalf("resource with cookie: status %d, want 200: %s", status, body)
	}
	got, err := decryptWith(body, teeKey)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, testDataKey) {
		t.Errorf("data key = %x, want %x", got, testDataKey)
	}
}

func TestReleaseRefusedWhenMeasurementDiffers(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	c := b.attested(device(t, simsnp.LaunchParams{Measurement: [48]byte{0xba, 0xd0}}))

	_, err := c.Resource(context.Background(), b.resource)
	re := refusal(t, err)
	if re.StatusCode != http.StatusForbidden {
		t.Errorf("status = %d, want 403", re.StatusCode)
	}
	if re.Kind != KindPolicyDeny {
		t.Errorf("kind = %q, want %q", re.Kind, KindPolicyDeny)
	}
	if !strings.Contains(re.Detail, "measurement:") {
		t.Errorf("detail %q does not name the measurement rule", re.Detail)
	}
	if n := b.server.vault.unwraps.Load(); n != 0 {
		t.Errorf("Vault unwrap was called %d times for a denied release, want 0", n)
	}
	releases := b.logEvents("release")
	if len(releases) != 1 || releases[0]["verdict"] != "deny" {
		t.Fatalf("want one deny release event, got %v", releases)
	}
	if rules, _ := releases[0]["failed_rules"].([]any); len(rules) != 1 || rules[0] != "measurement" {
		t.Errorf("failed_rules = %v, want [measurement]", releases[0]["failed_rules"])
	}
}

func TestReleaseRefusedWhenDebugAllowed(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	c := b.attested(device(t, simsnp.LaunchParams{Policy: simsnp.DefaultPolicy | simsnp.PolicyDebug}))

	_, err := c.Resource(context.Background(), b.resource)
	re := refusal(t, err)
	if re.StatusCode != http.StatusForbidden {
		t.Errorf("status = %d, want 403", re.StatusCode)
	}
	if !strings.Contains(re.Detail, "debug:") {
		t.Errorf("detail %q does not name the debug rule", re.Detail)
	}
}

func TestReleaseRefusedWhenHostDataDiffers(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	c := b.attested(device(t, simsnp.LaunchParams{HostData: [32]byte{0x0e, 0x1e}}))

	_, err := c.Resource(context.Background(), b.resource)
	re := refusal(t, err)
	if re.StatusCode != http.StatusForbidden {
		t.Errorf("status = %d, want 403", re.StatusCode)
	}
	if !strings.Contains(re.Detail, "host_data: HOST_DATA 0e1e") {
		t.Errorf("detail %q does not name the host_data rule and the reported HOST_DATA", re.Detail)
	}
	if n := b.server.vault.unwraps.Load(); n != 0 {
		t.Errorf("Vault unwrap was called %d times for a denied release, want 0", n)
	}
}

func TestReleaseRefusedForOtherJobsKey(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	other := b.provision("other", testPolicyYAML(), [32]byte{0x07})
	c := b.attested(device(t, simsnp.LaunchParams{}))

	_, err := c.Resource(context.Background(), other)
	re := refusal(t, err)
	if re.StatusCode != http.StatusForbidden {
		t.Errorf("status = %d, want 403", re.StatusCode)
	}
	if !strings.Contains(re.Detail, "host_data") {
		t.Errorf("detail %q does not name the host_data rule", re.Detail)
	}
}

func TestResourceRequiresAttestation(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	p := newProtocol(t, b)

	status, body := p.get("/kbs/v0/resource/" + b.resource)
	if status != http.StatusUnauthorized {
		t.Errorf("resource without session: status %d, want 401: %s", status, body)
	}
	p.auth()
	status, body = p.get("/kbs/v0/resource/" + b.resource)
	if status != http.StatusUnauthorized {
		t.Errorf("resource before attest: status %d, want 401: %s", status, body)
	}
	if !strings.Contains(string(body), "TokenNotFound") {
		t.Errorf("problem %s is not TokenNotFound", body)
	}
}

func TestResourceNotFound(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	c := b.attested(device(t, simsnp.LaunchParams{}))
	tag := strings.Split(b.resource, "/")[2]

	cases := []struct {
		name, path string
		status     int
	}{
		{"unknown key", "cove/nokey/" + tag, http.StatusNotFound},
		{"other repository", "other/demo/" + tag, http.StatusNotFound},
		{"tag not a ciphertext", "cove/demo/bm90LWEta2V5", http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Resource(context.Background(), tc.path)
			re := refusal(t, err)
			if re.StatusCode != tc.status {
				t.Errorf("status = %d, want %d (%s)", re.StatusCode, tc.status, re.Detail)
			}
			if re.Resource != tc.path {
				t.Errorf("error names resource %q, want %q", re.Resource, tc.path)
			}
		})
	}
}

func TestReleaseWaitsOutPausedVault(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	c := b.attested(device(t, simsnp.LaunchParams{}))

	if err := b.vault.Pause(); err != nil {
		t.Fatal(err)
	}
	_, err := c.Resource(context.Background(), b.resource)
	if err := b.vault.Resume(); err != nil {
		t.Fatal(err)
	}
	re := refusal(t, err)
	if re.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status while Vault is paused = %d, want 503 (%s)", re.StatusCode, re.Detail)
	}
	if re.Kind != KindVaultUnavailable {
		t.Errorf("kind = %q, want %q", re.Kind, KindVaultUnavailable)
	}

	got, err := c.Resource(context.Background(), b.resource)
	if err != nil {
		t.Fatalf("Resource after Vault resumed: %v", err)
	}
	if !bytes.Equal(got, testDataKey) {
		t.Errorf("data key = %x, want %x", got, testDataKey)
	}
}

func TestReleaseAfterVaultRestart(t *testing.T) {
	b := startBroker(t, brokerOptions{persistentVault: true})
	c := b.attested(device(t, simsnp.LaunchParams{}))
	if _, err := c.Resource(context.Background(), b.resource); err != nil {
		t.Fatalf("Resource before the restart: %v", err)
	}

	if err := b.vault.Stop(); err != nil {
		t.Fatal(err)
	}
	_, err := c.Resource(context.Background(), b.resource)
	re := refusal(t, err)
	if re.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status while Vault is stopped = %d, want 503 (%s)", re.StatusCode, re.Detail)
	}

	if err := b.vault.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := c.Resource(context.Background(), b.resource)
	if err != nil {
		t.Fatalf("Resource after Vault restarted: %v", err)
	}
	if !bytes.Equal(got, testDataKey) {
		t.Errorf("data key = %x, want %x", got, testDataKey)
	}
}

func TestResourceRejectsHEAD(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	p := newProtocol(t, b)
	nonce := p.auth()
	if status, body := p.attest(nonce, p.newTEEKey(), device(t, simsnp.LaunchParams{}), nil); status != http.StatusOK {
		t.Fatalf("attest: status %d: %s", status, body)
	}

	unwrapsBefore := b.server.vault.unwraps.Load()
	status, _ := p.do(http.MethodHead, "/kbs/v0/resource/"+b.resource, nil)
	if status != http.StatusMethodNotAllowed {
		t.Errorf("HEAD status = %d, want 405", status)
	}
	if n := b.server.vault.unwraps.Load() - unwrapsBefore; n != 0 {
		t.Errorf("HEAD made %d Vault unwrap calls, want 0", n)
	}
	for _, ev := range b.logEvents("release") {
		if ev["verdict"] == "allow" {
			t.Errorf("HEAD logged an allowed release: %v", ev)
		}
	}
}

// TestReleaseRejectsOtherTransitPlaintext wraps a plaintext that is not a
// 32-byte data key with the granted Transit key, as another application
// sharing the key could, and asks for it as a resource.
func TestReleaseRejectsOtherTransitPlaintext(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	c := b.attested(device(t, simsnp.LaunchParams{}))

	for _, size := range []int{16, 33} {
		secret := bytes.Repeat([]byte{0x42}, size)
		wrapped, err := b.server.vault.Wrap(context.Background(), "demo", secret)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Resource(context.Background(), ResourcePath("demo", wrapped))
		if err == nil {
			t.Errorf("%d-byte plaintext released: %x", size, got)
			continue
		}
		re := refusal(t, err)
		if re.StatusCode != http.StatusNotFound {
			t.Errorf("%d-byte plaintext: status = %d, want 404", size, re.StatusCode)
		}
	}
}
