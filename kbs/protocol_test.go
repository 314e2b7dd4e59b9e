package kbs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"cove.dev/cove/attest"
	"cove.dev/cove/attest/simsnp"
	"cove.dev/cove/kbs/client"
)

// protocol drives the KBS protocol by hand, one session at a time.
type protocol struct {
	t      *testing.T
	b      *broker
	http   *http.Client
	cookie *http.Cookie
}

func newProtocol(t *testing.T, b *broker) *protocol {
	return &protocol{t: t, b: b, http: b.httpClient()}
}

func (p *protocol) do(method, path string, body []byte) (int, []byte) {
	p.t.Helper()
	req, err := http.NewRequest(method, p.b.https.URL+path, bytes.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	if p.cookie != nil {
		req.AddCookie(&http.Cookie{Name: p.cookie.Name, Value: p.cookie.Value})
	}
	resp, err := p.http.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			p.cookie = c
		}
	}
	return resp.StatusCode, out
}

func (p *protocol) get(path string) (int, []byte) {
	p.t.Helper()
	return p.do(http.MethodGet, path, nil)
}

// auth starts a session and returns its nonce.
func (p *protocol) auth() string {
	p.t.Helper()
	status, body := p.do(http.MethodPost, "/kbs/v0/auth", []byte(`{"version":"0.4.0","tee":"snp","extra-params":{}}`))
	if status != http.StatusOK {
		p.t.Fatalf("auth: status %d: %s", status, body)
	}
	var challenge struct {
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal(body, &challenge); err != nil {
		p.t.Fatal(err)
	}
	return challenge.Nonce
}

func (p *protocol) newTEEKey() *ecdsa.PrivateKey {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	return key
}

// attest sends runtime-data {nonce, tee-pubkey of key} with a report from
// d. bind computes REPORT_DATA from the runtime-data JSON; nil binds it as
// the protocol requires.
func (p *protocol) attest(nonce string, key any, d *simsnp.Device, bind func(runtimeData []byte) [64]byte) (int, []byte) {
	p.t.Helper()
	var pub any
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	default:
		pub = key
	}
	algorithm := string(jose.ECDH_ES_A256KW)
	if _, ok := pub.(*ecdsa.PublicKey); !ok {
		algorithm = string(jose.RSA_OAEP_256)
	}
	runtimeData, err := json.Marshal(map[string]any{
		"nonce":      nonce,
		"tee-pubkey": jose.JSONWebKey{Key: pub, Algorithm: algorithm},
	})
	if err != nil {
		p.t.Fatal(err)
	}
	return p.attestRaw(runtimeData, d, bind)
}

func (p *protocol) attestRaw(runtimeData []byte, d *simsnp.Device, bind func([]byte) [64]byte) (int, []byte) {
	p.t.Helper()
	var reportData [64]byte
	if bind != nil {
		reportData = bind(runtimeData)
	} else {
		var err error
		reportData, err = attest.ReportData(json.RawMessage(runtimeData))
		if err != nil {
			p.t.Fatal(err)
		}
	}
	ev, err := d.Report(reportData)
	if err != nil {
		p.t.Fatal(err)
	}
	evidence, _ := json.Marshal(ev)
	body, _ := json.Marshal(map[string]any{
		"runtime-data": json.RawMessage(runtimeData),
		"tee-evidence": map[string]any{"primary_evidence": json.RawMessage(evidence), "additional_evidence": ""},
	})
	return p.do(http.MethodPost, "/kbs/v0/attest", body)
}

func decryptWith(body []byte, key any) ([]byte, error) {
	return client.DecryptResponse(body, key)
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func problemOf(t *testing.T, body []byte) Problem {
	t.Helper()
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("body %s is not problem details: %v", body, err)
	}
	return p
}

func TestAuthProtocolVersion(t *testing.T) {
	b := startBroker(t, brokerOptions{})

	t.Run("0.1.1 rejected", func(t *testing.T) {
		p := newProtocol(t, b)
		status, body := p.do(http.MethodPost, "/kbs/v0/auth", readTestdata(t, "B20-kbs-auth-request-old-protocol-0.1.1.json"))
		if status != http.StatusUnauthorized {
			t.Errorf("status = %d, want 401", status)
		}
		problem := problemOf(t, body)
		if problem.Type != problemTypeBase+KindProtocolVersion {
			t.Errorf("type = %q, want %q", problem.Type, problemTypeBase+KindProtocolVersion)
		}
		if !strings.Contains(problem.Detail, "0.4.0") {
			t.Errorf("detail %q does not name the supported version 0.4.0", problem.Detail)
		}
		if p.cookie != nil {
			t.Error("a rejected auth set a session cookie")
		}
	})

	t.Run("0.4.0 challenged", func(t *testing.T) {
		p := newProtocol(t, b)
		status, body := p.do(http.MethodPost, "/kbs/v0/auth", readTestdata(t, "B20-kbs-auth-request-protocol-0.4.0.json"))
		if status != http.StatusOK {
			t.Fatalf("status = %d, want 200: %s", status, body)
		}
		var challenge struct {
			Nonce       string         `json:"nonce"`
			ExtraParams map[string]any `json:"extra-params"`
		}
		if err := json.Unmarshal(body, &challenge); err != nil {
			t.Fatal(err)
		}
		nonce, err := base64.StdEncoding.DecodeString(challenge.Nonce)
		if err != nil || len(nonce) != 32 {
			t.Errorf("nonce %q is not 32 bytes of standard base64", challenge.Nonce)
		}
		if challenge.ExtraParams == nil {
			t.Error("challenge has no extra-params object")
		}
		if p.cookie == nil || p.cookie.Value == "" {
			t.Error("no kbs-session-id cookie")
		}
	})
}

func TestAttestRefusesReusedNonce(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	d := device(t, simsnp.LaunchParams{})
	p := newProtocol(t, b)
	nonce := p.auth()

	if status, body := p.attest(nonce, p.newTEEKey(), d, nil); status != http.StatusOK {
		t.Fatalf("first attest: status %d: %s", status, body)
	}
	status, body := p.attest(nonce, p.newTEEKey(), d, nil)
	if status != http.StatusUnauthorized {
		t.Errorf("second attest with the same nonce: status %d, want 401", status)
	}
	if !strings.Contains(problemOf(t, body).Detail, "already used") {
		t.Errorf("detail %q does not say the nonce was already used", problemOf(t, body).Detail)
	}
}

func TestAttestRefusesOldNonce(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	d := device(t, simsnp.LaunchParams{})
	first := newProtocol(t, b)
	oldNonce := first.auth()
	if status, body := first.attest(oldNonce, first.newTEEKey(), d, nil); status != http.StatusOK {
		t.Fatalf("first attest: status %d: %s", status, body)
	}

	second := newProtocol(t, b)
	second.auth()
	status, body := second.attest(oldNonce, second.newTEEKey(), d, nil)
	if status != http.StatusUnauthorized {
		t.Errorf("attest with another session's nonce: status %d, want 401", status)
	}
	if problemOf(t, body).Type != problemTypeBase+KindAttestationError {
		t.Errorf("problem %s is not an AttestationError", body)
	}
}

func TestAttestConsumesNonceOnFailure(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	d := device(t, simsnp.LaunchParams{})
	p := newProtocol(t, b)
	nonce := p.auth()
	key := p.newTEEKey()

	wrongBinding := func([]byte) [64]byte { return [64]byte{1} }
	if status, _ := p.attest(nonce, key, d, wrongBinding); status != http.StatusUnauthorized {
		t.Fatalf("attest with a wrong binding: status %d, want 401", status)
	}
	if status, _ := p.attest(nonce, key, d, nil); status != http.StatusUnauthorized {
		t.Errorf("retry on the same session: status %d, want 401", status)
	}
}

func TestAttestRefusesUntrustedTestRoot(t *testing.T) {
	b := startBroker(t, brokerOptions{untrustedRoot: true})
	c := b.client()

	err := c.Attest(t.Context(), evidenceFrom(device(t, simsnp.LaunchParams{})))
	re := refusal(t, err)
	if re.StatusCode != http.StatusUnauthorized {
		t.Errorf("status = %d, want 401", re.StatusCode)
	}
	if !strings.Contains(re.Detail, "test-only root") {
		t.Errorf("detail %q does not say the test-only root is not trusted", re.Detail)
	}
	if len(b.logEvents("attestation")) != 1 {
		t.Errorf("want one attestation log event: %s", b.logs)
	}
}

func TestSessionExpires(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	now := time.Now()
	b.server.now = func() time.Time { return now }
	b.server.sessions.now = b.server.now
	b.server.attestations.now = b.server.now

	p := newProtocol(t, b)
	nonce := p.auth()
	now = now.Add(DefaultSessionTTL + time.Second)
	status, body := p.attest(nonce, p.newTEEKey(), device(t, simsnp.LaunchParams{}), nil)
	if status != http.StatusUnauthorized {
		t.Errorf("attest after the session expired: status %d, want 401", status)
	}
	if !strings.Contains(problemOf(t, body).Detail, "expired") {
		t.Errorf("detail %q does not say the session expired", problemOf(t, body).Detail)
	}
}

// TestAttestRefusesWrongBindings sends reports whose REPORT_DATA follows
// the wrong bindings of other brokers and older protocol versions, for a
// runtime-data object with B22's RSA tee-pubkey.
func TestAttestRefusesWrongBindings(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	d := device(t, simsnp.LaunchParams{})
	var fixture struct {
		RuntimeData struct {
			TEEPubKey json.RawMessage `json:"tee-pubkey"`
		} `json:"runtime-data"`
	}
	if err := json.Unmarshal(readTestdata(t, "B22-runtime-data-binding.json"), &fixture); err != nil {
		t.Fatal(err)
	}
	var jwk struct{ N, E string }
	_ = json.Unmarshal(fixture.RuntimeData.TEEPubKey, &jwk)

	pad := func(sum []byte) (out [64]byte) { copy(out[:], sum); return out }
	variants := map[string]func(nonce string, runtimeData []byte) [64]byte{
		"sha256 in the first 32 bytes": func(_ string, rd []byte) [64]byte {
			canonical, _ := canonical(rd)
			sum := sha256.Sum256(canonical)
			return pad(sum[:])
		},
		"sha384 of the bytes as sent, keys unsorted": func(_ string, rd []byte) [64]byte {
			sum := sha512.Sum384(rd)
			return pad(sum[:])
		},
		"pre-0.2 sha384(nonce || n || e)": func(nonce string, _ []byte) [64]byte {
			sum := sha512.Sum384([]byte(nonce + jwk.N + jwk.E))
			return pad(sum[:])
		},
		"nonce base64-decoded before hashing": func(nonce string, rd []byte) [64]byte {
			raw, _ := base64.StdEncoding.DecodeString(nonce)
			var obj map[string]any
			_ = json.Unmarshal(rd, &obj)
			obj["nonce"] = string(raw)
			rd2, _ := json.Marshal(obj)
			canonical, _ := canonical(rd2)
			sum := sha512.Sum384(canonical)
			return pad(sum[:])
		},
	}
	for name, bind := range variants {
		t.Run(name, func(t *testing.T) {
			p := newProtocol(t, b)
			nonce := p.auth()
			// Keys in insertion order (tee-pubkey first), as some clients send them.
			runtimeData := []byte(`{"tee-pubkey":` + string(fixture.RuntimeData.TEEPubKey) + `,"nonce":"` + nonce + `"}`)
			compact := new(bytes.Buffer)
			if err := json.Compact(compact, runtimeData); err != nil {
				t.Fatal(err)
			}
			status, body := p.attestRaw(compact.Bytes(), d, func(rd []byte) [64]byte { return bind(nonce, rd) })
			if status != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401: %s", status, body)
			}
			if !strings.Contains(problemOf(t, body).Detail, "REPORT_DATA does not bind") {
				t.Errorf("detail %q does not name the runtime-data mismatch", problemOf(t, body).Detail)
			}
		})
	}

	t.Run("correct binding accepted", func(t *testing.T) {
		p := newProtocol(t, b)
		nonce := p.auth()
		runtimeData := []byte(`{"tee-pubkey":` + string(fixture.RuntimeData.TEEPubKey) + `,"nonce":"` + nonce + `"}`)
		compact := new(bytes.Buffer)
		_ = json.Compact(compact, runtimeData)
		if status, body := p.attestRaw(compact.Bytes(), d, nil); status != http.StatusOK {
			t.Fatalf("status = %d, want 200: %s", status, body)
		}
	})
}

func canonical(runtimeData []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(runtimeData, &v); err != nil {
		return nil, err
	}
	// encoding/json sorts map keys, which for these ASCII keys is the
	// canonical order.
	return json.Marshal(v)
}

func TestReportDataVectorB22(t *testing.T) {
	var fixture map[string]json.RawMessage
	if err := json.Unmarshal(readTestdata(t, "B22-runtime-data-binding.json"), &fixture); err != nil {
		t.Fatal(err)
	}
	var want string
	_ = json.Unmarshal(fixture["expected_report_data_hex(SHA-384 of canonical JSON, zero-padded to 64)"], &want)
	got, err := attest.ReportData(fixture["runtime-data"])
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got[:]) != want {
		t.Errorf("REPORT_DATA = %x, want %s", got, want)
	}
}

func TestResourceResponseIsRFC7516(t *testing.T) {
	teeKey, alg, err := parseTEEKey(readTestdata(t, "B20-tee-pubkey-jwk.json"))
	if err != nil {
		t.Fatal(err)
	}
	if alg != jose.RSA_OAEP_256 {
		t.Errorf("key algorithm for the B20 RSA key = %s, want RSA-OAEP-256", alg)
	}
	plaintext := readTestdata(t, "B20-plaintext.txt")
	body, err := encryptResource(teeKey, alg, plaintext)
	if err != nil {
		t.Fatal(err)
	}

	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"protected", "encrypted_key", "iv", "ciphertext", "tag"} {
		if _, ok := members[m]; !ok {
			t.Errorf("flattened JWE lacks member %q", m)
		}
	}
	if _, ok := members["recipients"]; ok {
		t.Error("JWE has a recipients member; want the flattened serialization")
	}
	var tag string
	_ = json.Unmarshal(members["tag"], &tag)
	if raw, _ := base64.RawURLEncoding.DecodeString(tag); len(raw) != 16 {
		t.Errorf("tag is %d bytes, want 16", len(raw))
	}

	block, _ := pem.Decode(readTestdata(t, "B20-TEST-ONLY-tee-rsa-private-key.pem"))
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.DecryptResponse(body, key)
	if err != nil {
		t.Fatalf("decrypting with the TEST-ONLY key: %v", err)
	}
	if !bytes.Equal(got, plaintext) {
		t.Errorf("plaintext = %q, want %q", got, plaintext)
	}
}

func TestFixtureResponseDecryptsB20(t *testing.T) {
	block, _ := pem.Decode(readTestdata(t, "B20-TEST-ONLY-tee-rsa-private-key.pem"))
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.DecryptResponse(readTestdata(t, "B20-kbs-resource-response-rfc7516-flattened.json"), key)
	if err != nil {
		t.Fatal(err)
	}
	if want := readTestdata(t, "B20-plaintext.txt"); !bytes.Equal(got, want) {
		t.Errorf("plaintext = %q, want %q", got, want)
	}
}

func TestParseTEEKeyRejects(t *testing.T) {
	private, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	jwkOf := func(key any, alg string) []byte {
		b, err := json.Marshal(jose.JSONWebKey{Key: key, Algorithm: alg})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := map[string][]byte{
		"private key":       jwkOf(private, "ECDH-ES+A256KW"),
		"P-384":             jwkOf(&p384.PublicKey, "ECDH-ES+A256KW"),
		"EC with RSA alg":   jwkOf(&private.PublicKey, "RSA-OAEP-256"),
		"not a JWK":         []byte(`{"kty":"oct","k":"AAAA"}`),
		"missing":           nil,
		"deprecated RSA1_5": []byte(strings.Replace(string(readTestdata(t, "B20-tee-pubkey-jwk.json")), "RSA-OAEP-256", "RSA1_5", 1)),
	}
	for name, raw := range cases {
		if _, _, err := parseTEEKey(raw); err == nil {
			t.Errorf("%s: parseTEEKey accepted it", name)
		}
	}
}

// TestAttestRejectsAmbiguousRuntimeData sends runtime-data objects whose
// REPORT_DATA binding is correct but whose members encoding/json would
// match to the nonce or the key case-insensitively or last-wins, so that a
// case-sensitive or first-wins reader of the same bound bytes would see
// another tee-pubkey than the one the broker encrypts to.
func TestAttestRejectsAmbiguousRuntimeData(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	d := device(t, simsnp.LaunchParams{})
	jwkOf := func(key *ecdsa.PrivateKey) string {
		out, err := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.ECDH_ES_A256KW)})
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	cases := map[string]func(nonce, jwk, otherJWK string) string{
		"tee-pubkey in two cases": func(nonce, jwk, other string) string {
			return `{"nonce":"` + nonce + `","tee-pubkey":` + jwk + `,"TEE-PUBKEY":` + other + `}`
		},
		"tee-pubkey twice": func(nonce, jwk, other string) string {
			return `{"nonce":"` + nonce + `","tee-pubkey":` + other + `,"tee-pubkey":` + jwk + `}`
		},
		"Nonce capitalized": func(nonce, jwk, _ string) string {
			return `{"Nonce":"` + nonce + `","tee-pubkey":` + jwk + `}`
		},
		"JWK member in two cases": func(nonce, jwk, _ string) string {
			return `{"nonce":"` + nonce + `","tee-pubkey":` + strings.Replace(jwk, `"kty":`, `"Kty":"oct","kty":`, 1) + `}`
		},
		"JWK member with Kelvin sign": func(nonce, jwk, _ string) string {
			return `{"nonce":"` + nonce + `","tee-pubkey":` + strings.Replace(jwk, `"kty":`, `"\u212aty":"oct","kty":`, 1) + `}`
		},
	}
	for name, build := range cases {
		t.Run(name, func(t *testing.T) {
			p := newProtocol(t, b)
			nonce := p.auth()
			runtimeData := build(nonce, jwkOf(p.newTEEKey()), jwkOf(p.newTEEKey()))
			status, body := p.attestRaw([]byte(runtimeData), d, nil)
			if status != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400: %.300s", status, body)
			}
			if kind := problemOf(t, body).Type; kind != problemTypeBase+KindInvalidRequest {
				t.Errorf("problem type = %q, want %q", kind, problemTypeBase+KindInvalidRequest)
			}
		})
	}
}
