package client

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func testOnlyRSAKey(t *testing.T) any {
	t.Helper()
	block, _ := pem.Decode(readTestdata(t, "B20-TEST-ONLY-tee-rsa-private-key.pem"))
	if block == nil {
		t.Fatal("B20 private key file holds no PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		rsaKey, rsaErr := x509.ParsePKCS1PrivateKey(block.Bytes)
		if rsaErr != nil {
			t.Fatalf("parsing the B20 private key: %v / %v", err, rsaErr)
		}
		return rsaKey
	}
	return key
}

func TestDecryptResponseRFC7516(t *testing.T) {
	body := readTestdata(t, "B20-kbs-resource-response-rfc7516-flattened.json")
	want := readTestdata(t, "B20-plaintext.txt")

	got, err := DecryptResponse(body, testOnlyRSAKey(t))
	if err != nil {
		t.Fatalf("DecryptResponse: %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("plaintext = %q, want %q", got, want)
	}
}

func TestDecryptResponseRejectsLegacyForm(t *testing.T) {
	body := readTestdata(t, "B20-CONSTRUCTED-legacy-0.1.x-tag-in-ciphertext-no-aad.json")

	got, err := DecryptResponse(body, testOnlyRSAKey(t))
	if err == nil {
		t.Fatalf("DecryptResponse accepted the legacy form and returned %q", got)
	}
	if !errors.Is(err, ErrLegacyJWE) {
		t.Errorf("error = %v, want one wrapping ErrLegacyJWE", err)
	}
}

func TestDecryptResponseRejectsModifiedProtectedHeader(t *testing.T) {
	body := readTestdata(t, "B20-kbs-resource-response-rfc7516-flattened.json")
	// The same header with a "kid" added: RFC 7516 authenticates the
	// protected header as AAD, so the tag no longer matches.
	modified := []byte(`{"protected":"eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIiwia2lkIjoieCJ9",` +
		string(body[len(`{
 "protected": "eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIn0",`):]))

	if _, err := DecryptResponse(modified, testOnlyRSAKey(t)); err == nil {
		t.Fatal("DecryptResponse accepted a JWE whose protected header was changed")
	}
}
